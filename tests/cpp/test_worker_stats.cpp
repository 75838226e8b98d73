// ReplicaWorkerStats::record: status classes and histogram buckets.
#include <gtest/gtest.h>

#include <chrono>

#include "ringlb/worker_stats.hpp"

namespace {

using namespace std::chrono_literals;
using ringlb::ReplicaWorkerStats;
using ringlb::request_duration_bounds;

std::uint64_t at(const std::atomic<std::uint64_t>& c) { return c.load(); }

TEST(ReplicaWorkerStats, StatusesAreCountedByClass) {
    ReplicaWorkerStats s;
    for (unsigned status : {101u, 200u, 204u, 302u, 400u, 404u, 499u, 500u, 503u, 599u}) {
        s.record(status, 1ms);
    }
    EXPECT_EQ(at(s.responses[0]), 1u);  // 1xx
    EXPECT_EQ(at(s.responses[1]), 2u);  // 2xx
    EXPECT_EQ(at(s.responses[2]), 1u);  // 3xx
    EXPECT_EQ(at(s.responses[3]), 3u);  // 4xx
    EXPECT_EQ(at(s.responses[4]), 3u);  // 5xx
}

TEST(ReplicaWorkerStats, ADurationLandsInTheFirstBucketWhoseBoundIsAtLeastIt) {
    ASSERT_EQ(request_duration_bounds[0], 0.0005);
    ASSERT_EQ(request_duration_bounds[1], 0.001);
    ReplicaWorkerStats s;
    s.record(200, 0ns);           // bucket 0 (le 0.0005)
    s.record(200, 500us);         // exactly on the bound: still bucket 0 (le is inclusive)
    s.record(200, 501us);         // bucket 1 (le 0.001)
    s.record(200, 1ms);           // bucket 1
    s.record(200, 10s);           // the last bound, 10 s: its own bucket
    s.record(200, 11s);           // beyond every bound: +Inf
    s.record(200, -5ms);          // a clock that went back counts as 0
    const std::size_t last = request_duration_bounds.size();
    EXPECT_EQ(at(s.duration_buckets[0]), 3u);
    EXPECT_EQ(at(s.duration_buckets[1]), 2u);
    EXPECT_EQ(at(s.duration_buckets[last - 1]), 1u);
    EXPECT_EQ(at(s.duration_buckets[last]), 1u);
    std::uint64_t total = 0;
    for (const auto& b : s.duration_buckets) total += at(b);
    EXPECT_EQ(total, 7u);
    EXPECT_EQ(at(s.duration_ns),
              static_cast<std::uint64_t>(std::chrono::nanoseconds(500us + 501us + 1ms + 10s + 11s).count()));
}

TEST(ReplicaWorkerStats, TwoThreadsRecordsOfOneReplicaDoNotShareACacheLine) {
    ringlb::ReplicaCounters c(2);
    const auto a = reinterpret_cast<std::uintptr_t>(&c.per_worker[0]);
    const auto b = reinterpret_cast<std::uintptr_t>(&c.per_worker[1]);
    EXPECT_EQ(a % 64, 0u);
    EXPECT_GE(b - a, 64u);
}

}  // namespace
