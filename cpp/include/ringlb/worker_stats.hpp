// The router's counters, in one place: what each I/O thread counts for the
// whole router (WorkerStats), what it counts per replica (ReplicaWorkerStats),
// and the per-replica record that every thread shares (ReplicaCounters).
//
// Counting must not slow the data plane: every counter but in_flight has one
// writer, the I/O thread that owns it, and is bumped with a relaxed load and
// store (no locked instruction, no cache line shared with another writer).
// Readers (Router::stats(), /metrics, /status) sum the threads' values at
// read time. A sum read while requests flow is a moment's view, never torn.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace ringlb {

// Bumps a counter that has a single writer (the calling thread).
inline void bump(std::atomic<std::uint64_t>& c, std::uint64_t by = 1) noexcept {
    c.store(c.load(std::memory_order_relaxed) + by, std::memory_order_relaxed);
}

// The router-wide counters, declared once: each line gives the per-thread
// counter (WorkerStats), its sum (RouterStats, RouterState::totals()), and its
// key in Router.stats() (Python) and in /status's "totals". An X-macro because
// C++20 has no reflection over a struct's fields.
#define RINGLB_ROUTER_COUNTERS(X)                                                     \
    X(requests, "client requests answered")                                           \
    X(proxied, "answered by a replica")                                               \
    X(retries, "upstream tries after a failure")                                      \
    X(upstream_failures, "tries refused, reset or timed out")                        \
    X(errors, "answered with a 5xx by the router itself")                             \
    X(upstream_connects, "connections opened to replicas (the rest were reused)")

// Router-wide counters of one I/O thread, written by that thread only; a
// cache line of its own (RouterState keeps them side by side).
struct alignas(64) WorkerStats {
#define RINGLB_COUNTER_FIELD(name, what) std::atomic<std::uint64_t> name{0};
    RINGLB_ROUTER_COUNTERS(RINGLB_COUNTER_FIELD)
#undef RINGLB_COUNTER_FIELD
    static void bump(std::atomic<std::uint64_t>& c) noexcept { ringlb::bump(c); }
};

// Upper bounds (seconds) of the request duration histogram's buckets, the
// +Inf bucket not included. Prometheus' default buckets start at 5 ms; a
// proxy on a LAN answers in well under that, so three finer ones come first.
inline constexpr std::array<double, 14> request_duration_bounds{
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

// Status classes counted per replica: 1xx (upgrades) … 5xx.
inline constexpr std::size_t status_classes = 5;

// What one I/O thread counts for one replica. Cache-line aligned so that two
// threads' records of the same replica never share a line.
struct alignas(64) ReplicaWorkerStats {
    // Answers the replica gave, by the class of the status the client got.
    std::array<std::atomic<std::uint64_t>, status_classes> responses{};
    std::atomic<std::uint64_t> failures{0};  // refused / reset / timed-out tries
    // Per bucket, not cumulative (the exposition cumulates); the last is +Inf.
    std::array<std::atomic<std::uint64_t>, request_duration_bounds.size() + 1> duration_buckets{};
    std::atomic<std::uint64_t> duration_ns{0};  // sum of the durations observed

    // An answer with `status` (100..599) that took `took`. Owning thread only.
    void record(unsigned status, std::chrono::nanoseconds took) noexcept;
};

// The shared record of one replica: its in-flight count, which every thread
// reads and writes (bounded loads compare it), and one ReplicaWorkerStats
// per I/O thread.
struct ReplicaCounters {
    explicit ReplicaCounters(unsigned threads) : per_worker(threads) {}
    std::atomic<std::uint64_t> in_flight{0};
    std::vector<ReplicaWorkerStats> per_worker;  // [the I/O thread's index], never resized
};

}  // namespace ringlb
