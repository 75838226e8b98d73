#include "ringlb/prometheus_text.hpp"

#include <array>
#include <charconv>
#include <cmath>
#include <stdexcept>

namespace ringlb {
namespace {

bool name_char(char c, bool first, bool colon) {
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    return alpha || (colon && c == ':') || (!first && c >= '0' && c <= '9');
}

void check_name(std::string_view name, bool metric) {
    bool ok = !name.empty();
    for (std::size_t i = 0; ok && i < name.size(); ++i) ok = name_char(name[i], i == 0, metric);
    // Label names starting with __ are reserved for Prometheus itself.
    if (ok && !metric && name.starts_with("__")) ok = false;
    if (!ok) {
        throw std::invalid_argument(std::string(metric ? "metric" : "label") + " name '" +
                                    std::string(name) + "' is not valid in the Prometheus format");
    }
}

std::string format_count(std::uint64_t v) {
    std::array<char, 24> buf{};
    const auto r = std::to_chars(buf.data(), buf.data() + buf.size(), v);
    return std::string(buf.data(), r.ptr);
}

// The format's one escaping: a backslash before \ (and before " when
// `quotes`: label values are quoted, HELP text is not), \n for a line feed.
std::string escaped(std::string_view text, bool quotes) {
    std::string out;
    out.reserve(text.size());
    for (const char c : text) {
        if (c == '\\' || (quotes && c == '"')) out += '\\';
        if (c == '\n') out += "\\n";
        else out += c;
    }
    return out;
}

}  // namespace

std::string PrometheusText::escape_label_value(std::string_view value) {
    return escaped(value, true);
}

std::string PrometheusText::escape_help(std::string_view help) { return escaped(help, false); }

std::string PrometheusText::format_value(double value) {
    if (std::isnan(value)) return "NaN";
    if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
    // chars_format::general without a precision: the shortest round-trip
    // text, in %g's style (0.0005 rather than 5e-04, as Go's 'g' -1 writes it).
    std::array<char, 32> buf{};
    const auto r = std::to_chars(buf.data(), buf.data() + buf.size(), value,
                                 std::chars_format::general);
    return std::string(buf.data(), r.ptr);
}

void PrometheusText::family(std::string_view name, std::string_view help, std::string_view type) {
    check_name(name, true);
    if (type != "counter" && type != "gauge" && type != "histogram") {
        throw std::invalid_argument("metric type '" + std::string(type) +
                                    "' is not one of counter, gauge, histogram");
    }
    out_.append("# HELP ").append(name).append(" ").append(escape_help(help)).append("\n");
    out_.append("# TYPE ").append(name).append(" ").append(type).append("\n");
}

void PrometheusText::line(std::string_view name, const Labels& labels, std::string_view extra_label,
                          std::string_view extra_value, std::string_view value) {
    // Every name is checked before anything is written: a bad one leaves the text as it was.
    check_name(name, true);
    for (const auto& [k, v] : labels) check_name(k, false);
    std::string out(name);
    if (!labels.empty() || !extra_label.empty()) {
        out += '{';
        bool first = true;
        const auto label = [&](std::string_view k, std::string_view v) {
            if (!first) out += ',';
            first = false;
            out.append(k).append("=\"").append(escape_label_value(v)).append("\"");
        };
        for (const auto& [k, v] : labels) label(k, v);
        if (!extra_label.empty()) label(extra_label, extra_value);
        out += '}';
    }
    out.append(" ").append(value).append("\n");
    out_.append(out);
}

void PrometheusText::sample(std::string_view name, const Labels& labels, std::uint64_t value) {
    line(name, labels, {}, {}, format_count(value));
}

void PrometheusText::sample(std::string_view name, const Labels& labels, double value) {
    line(name, labels, {}, {}, format_value(value));
}

void PrometheusText::histogram(std::string_view name, const Labels& labels,
                               std::span<const double> bounds,
                               std::span<const std::uint64_t> counts, double sum) {
    if (counts.size() != bounds.size() + 1) {
        throw std::invalid_argument("a histogram needs one count per bound plus the +Inf bucket");
    }
    for (std::size_t i = 1; i < bounds.size(); ++i) {
        if (!(bounds[i - 1] < bounds[i])) throw std::invalid_argument("histogram bounds must ascend");
    }
    for (const auto& [k, v] : labels) {
        if (k == "le") throw std::invalid_argument("a histogram's labels must not include le");
    }
    const std::string base(name);
    const std::string bucket = base + "_bucket";
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i < counts.size(); ++i) {
        cumulative += counts[i];
        const std::string le = i < bounds.size() ? format_value(bounds[i]) : "+Inf";
        line(bucket, labels, "le", le, format_count(cumulative));
    }
    line(base + "_sum", labels, {}, {}, format_value(sum));
    line(base + "_count", labels, {}, {}, format_count(cumulative));
}

}  // namespace ringlb
