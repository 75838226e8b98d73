// PrometheusText: the text exposition format 0.0.4, byte for byte.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <stdexcept>
#include <vector>

#include "ringlb/prometheus_text.hpp"

namespace {

using ringlb::PrometheusText;
using L = PrometheusText::Labels;

TEST(PrometheusText, FamilyAndSamplesAreWrittenAsTheFormatSays) {
    PrometheusText t;
    t.family("ringlb_x_total", "Things counted.", "counter");
    t.sample("ringlb_x_total", L{{"replica", "Server1"}, {"code", "2xx"}}, std::uint64_t{42});
    t.sample("ringlb_x_total", L{}, std::uint64_t{18446744073709551615ULL});
    EXPECT_EQ(t.text(),
              "# HELP ringlb_x_total Things counted.\n"
              "# TYPE ringlb_x_total counter\n"
              "ringlb_x_total{replica=\"Server1\",code=\"2xx\"} 42\n"
              "ringlb_x_total 18446744073709551615\n");
}

TEST(PrometheusText, LabelValuesEscapeBackslashQuoteAndNewline) {
    EXPECT_EQ(PrometheusText::escape_label_value("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
    EXPECT_EQ(PrometheusText::escape_label_value("plain é"), "plain é");
    PrometheusText t;
    t.sample("m", L{{"path", "C:\\dir \"x\"\n"}}, std::uint64_t{1});
    EXPECT_EQ(t.text(), "m{path=\"C:\\\\dir \\\"x\\\"\\n\"} 1\n");
}

TEST(PrometheusText, HelpEscapesBackslashAndNewlineButNotQuotes) {
    EXPECT_EQ(PrometheusText::escape_help("a\\b\n\"c\""), "a\\\\b\\n\"c\"");
    PrometheusText t;
    t.family("m", "line one\nline \"two\"", "gauge");
    EXPECT_EQ(t.text(), "# HELP m line one\\nline \"two\"\n# TYPE m gauge\n");
}

TEST(PrometheusText, ValuesReadBackAsTheSameDouble) {
    EXPECT_EQ(PrometheusText::format_value(0.0005), "0.0005");
    EXPECT_EQ(PrometheusText::format_value(1.0), "1");
    EXPECT_EQ(PrometheusText::format_value(2.5), "2.5");
    EXPECT_EQ(PrometheusText::format_value(0.1 + 0.2), "0.30000000000000004");
    EXPECT_EQ(PrometheusText::format_value(1e-7), "1e-07");
    EXPECT_EQ(PrometheusText::format_value(std::numeric_limits<double>::infinity()), "+Inf");
    EXPECT_EQ(PrometheusText::format_value(-std::numeric_limits<double>::infinity()), "-Inf");
    EXPECT_EQ(PrometheusText::format_value(std::nan("")), "NaN");
}

TEST(PrometheusText, HistogramBucketsAreCumulativeEndingWithInfAndCountEqualsIt) {
    PrometheusText t;
    const std::vector<double> bounds{0.001, 0.01, 0.1};
    // 3 observations <= 1 ms, 0 in (1 ms, 10 ms], 2 in (10 ms, 100 ms], 1 beyond.
    const std::vector<std::uint64_t> counts{3, 0, 2, 1};
    t.histogram("d_seconds", L{{"replica", "A"}}, bounds, counts, 0.5);
    EXPECT_EQ(t.text(),
              "d_seconds_bucket{replica=\"A\",le=\"0.001\"} 3\n"
              "d_seconds_bucket{replica=\"A\",le=\"0.01\"} 3\n"
              "d_seconds_bucket{replica=\"A\",le=\"0.1\"} 5\n"
              "d_seconds_bucket{replica=\"A\",le=\"+Inf\"} 6\n"
              "d_seconds_sum{replica=\"A\"} 0.5\n"
              "d_seconds_count{replica=\"A\"} 6\n");
}

TEST(PrometheusText, AHistogramWithoutObservationsHasZeroBucketsAndCount) {
    PrometheusText t;
    const std::vector<double> bounds{1};
    const std::vector<std::uint64_t> counts{0, 0};
    t.histogram("h", L{}, bounds, counts, 0);
    EXPECT_EQ(t.text(), "h_bucket{le=\"1\"} 0\nh_bucket{le=\"+Inf\"} 0\nh_sum 0\nh_count 0\n");
}

TEST(PrometheusText, BadNamesTypesAndHistogramShapesAreRefusedAndWriteNothing) {
    PrometheusText t;
    EXPECT_THROW(t.family("1abc", "x", "counter"), std::invalid_argument);
    EXPECT_THROW(t.family("a-b", "x", "counter"), std::invalid_argument);
    EXPECT_THROW(t.family("ok", "x", "summary_of_sorts"), std::invalid_argument);
    EXPECT_THROW(t.sample("m", L{{"bad-label", "v"}}, std::uint64_t{1}), std::invalid_argument);
    EXPECT_THROW(t.sample("m", L{{"__reserved", "v"}}, std::uint64_t{1}), std::invalid_argument);
    EXPECT_THROW(t.sample("m", L{{"a:b", "v"}}, std::uint64_t{1}), std::invalid_argument);
    const std::vector<double> bounds{1, 2};
    const std::vector<std::uint64_t> short_counts{1, 2};
    EXPECT_THROW(t.histogram("h", L{}, bounds, short_counts, 0), std::invalid_argument);
    const std::vector<double> descending{2, 1};
    const std::vector<std::uint64_t> counts{1, 2, 3};
    EXPECT_THROW(t.histogram("h", L{}, descending, counts, 0), std::invalid_argument);
    EXPECT_THROW(t.histogram("h", L{{"le", "1"}}, bounds, counts, 0), std::invalid_argument);
    EXPECT_EQ(t.text(), "");
    // Colons are allowed in metric names (recording rules use them).
    t.sample("job:m:rate5m", L{}, 1.5);
    EXPECT_EQ(t.text(), "job:m:rate5m 1.5\n");
}

}  // namespace
