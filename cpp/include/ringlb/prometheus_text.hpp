// PrometheusText: writes the Prometheus text exposition format, version
// 0.0.4 (https://prometheus.io/docs/instrumenting/exposition_formats/):
//
//   # HELP name help text          (\ and newline escaped)
//   # TYPE name counter|gauge|histogram
//   name{label="value",...} 42     (\, " and newline escaped in values)
//
// A histogram is written as Prometheus defines it: cumulative
// name_bucket{...,le="bound"} lines ending with le="+Inf", then name_sum and
// name_count (equal to the +Inf bucket).
//
// The caller keeps each family's samples together, after its family() call.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ringlb {

class PrometheusText {
public:
    // What a /metrics answer says it is (the format's version 0.0.4).
    static constexpr std::string_view content_type = "text/plain; version=0.0.4; charset=utf-8";

    using Labels = std::vector<std::pair<std::string_view, std::string_view>>;

    // Starts a family: its HELP and TYPE lines. Throws std::invalid_argument
    // for a name that is not [a-zA-Z_:][a-zA-Z0-9_:]* or an unknown type.
    void family(std::string_view name, std::string_view help, std::string_view type);

    // One sample. Throws std::invalid_argument for a bad metric or label name
    // (labels: [a-zA-Z_][a-zA-Z0-9_]*, not starting with "__").
    void sample(std::string_view name, const Labels& labels, std::uint64_t value);
    void sample(std::string_view name, const Labels& labels, double value);

    // A histogram's samples. `counts` has one entry per bound plus the +Inf
    // bucket, each the observations in that bucket alone (not cumulative);
    // `bounds` ascend. Throws std::invalid_argument when the sizes disagree,
    // the bounds do not ascend, or `labels` has an "le".
    void histogram(std::string_view name, const Labels& labels, std::span<const double> bounds,
                   std::span<const std::uint64_t> counts, double sum);

    const std::string& text() const noexcept { return out_; }
    std::string take() noexcept { return std::move(out_); }

    // A label value with \, " and newline escaped.
    static std::string escape_label_value(std::string_view value);
    // HELP text with \ and newline escaped.
    static std::string escape_help(std::string_view help);
    // A sample value as Go's strconv.ParseFloat reads it: the shortest text
    // that reads back as the same double; "+Inf", "-Inf", "NaN".
    static std::string format_value(double value);

private:
    void line(std::string_view name, const Labels& labels, std::string_view extra_label,
              std::string_view extra_value, std::string_view value);

    std::string out_;
};

}  // namespace ringlb
