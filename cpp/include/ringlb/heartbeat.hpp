// HeartbeatEngine: active and passive health checks of the registered
// replicas (SPEC §4).
//
// Active: every replica's GET /heartbeat (config.path) is polled every
// `interval` over a keep-alive connection of its own; no 2xx or 3xx answer
// within `timeout` is a miss. Passive: on_failure(id), wired to the router's
// failure listener, counts as a miss at once and triggers an immediate probe
// so that the failure is confirmed (or cleared) without waiting for the next
// interval.
//
// States, as in HAProxy's health checks: a replica is `up`; a miss makes it
// `suspect` (it keeps serving: the router retries elsewhere meanwhile);
// `fall` misses in a row make it `down`, which takes it off the ring at once
// (ReplicaSet::set_serving(id, false)); `rise` successes in a row bring a
// down replica back on the ring. A suspect replica is up again after one
// success.
//
// Threading: all probes run on one strand of the executor given (the
// router's I/O threads), so they never block and never need a lock among
// themselves. State changes are queued to a notifier thread of the engine,
// which calls the listener: a slow listener (Python, the launcher) never
// holds up an I/O thread.
#pragma once

#include <boost/asio/any_io_executor.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ringlb/event_log.hpp"
#include "ringlb/replica_set.hpp"

namespace ringlb {

enum class Health { up, suspect, down };

// "up", "suspect" or "down".
const char* to_string(Health health) noexcept;

struct HeartbeatConfig {
    // Time between the starts of two probes of one replica.
    std::chrono::milliseconds interval{200};
    // A probe (connect + request + response) that takes longer is a miss.
    std::chrono::milliseconds timeout{200};
    unsigned fall = 2;  // misses in a row that make a replica down
    unsigned rise = 1;  // successes in a row that bring a down replica back
    // The path probed with GET; any 2xx or 3xx answer is healthy (a service's
    // own health path may redirect, as a login page does).
    std::string path = "/heartbeat";
};

// std::invalid_argument unless `path` is an origin-form target the probe can
// put on its request line as it is: '/' first, no space or control character.
void check_health_path(const std::string& path);

// What the engine knows about one registered replica.
struct ReplicaHealth {
    std::uint32_t id = 0;
    std::string hostname;
    std::string host;
    std::uint16_t port = 0;
    Health state = Health::up;
    unsigned misses = 0;     // consecutive
    unsigned successes = 0;  // consecutive
    // Round trip of the last successful probe; empty before the first one.
    std::optional<std::chrono::microseconds> last_latency;
    std::uint64_t checks = 0;            // probes completed, either way
    std::uint64_t passive_failures = 0;  // on_failure() calls that counted
    std::string last_error;              // the last miss, "" when none yet
};

// One state change of one replica.
struct HealthEvent {
    std::uint32_t id = 0;
    std::string hostname;
    Health from = Health::up;
    Health to = Health::up;
    std::string detail;  // why, in words: "connect: Connection refused", "rise 1/1"...
};

// Called on the engine's notifier thread, one event at a time, in order.
using HealthListener = std::function<void(const HealthEvent&)>;

class HeartbeatEngine {
public:
    // `replicas` must outlive the engine and the executor's pending work, and
    // so must `events` when given (the router's, Router::events()): every
    // state change is recorded there as it is made (kind: the new state).
    // Throws std::invalid_argument when interval or timeout is not positive
    // or fall or rise is 0.
    HeartbeatEngine(boost::asio::any_io_executor executor, ReplicaSet& replicas,
                    HeartbeatConfig config, EventLog* events = nullptr);
    ~HeartbeatEngine();  // stop()
    HeartbeatEngine(const HeartbeatEngine&) = delete;
    HeartbeatEngine& operator=(const HeartbeatEngine&) = delete;

    // Starts probing every registered replica (and those registered later).
    // The probes run only while the executor's context runs. Throws
    // std::logic_error when called a second time (an engine is started once).
    void start();
    // Stops probing: once it returns, no replica changes state and no listener
    // call starts, and the listener has been released (in the calling thread).
    // Idempotent; safe from the listener itself. Sockets close as soon as the
    // executor runs again.
    void stop();
    bool running() const noexcept;

    // A passive failure: forwarding to replica `id` failed (refused, reset,
    // timed out). Counts as a miss at once and probes the replica right away.
    // Unknown ids and calls before start() or after stop() are ignored.
    // Thread-safe and non-blocking (router I/O threads call it).
    void on_failure(std::uint32_t id);

    // A callable for Router::set_failure_listener that forwards to
    // on_failure() for as long as this engine exists and does nothing after.
    std::function<void(std::uint32_t)> failure_listener() const;

    // A callable for Router::set_health_source that returns states() for as
    // long as this engine exists and nothing after (it holds the engine weakly).
    std::function<std::vector<ReplicaHealth>()> health_source() const;

    // Re-reads the replica set now instead of at the next poll (every
    // min(interval, 50 ms)): new replicas get probed, changed endpoints get a
    // fresh connection, removed replicas are forgotten. Thread-safe.
    void refresh();

    // Replaces the listener; an empty function drops events. Thread-safe; a
    // call to the previous listener may still be under way when it returns.
    void set_listener(HealthListener listener);

    // Every replica the engine tracks, by ascending id. Empty before start()
    // and until the first poll has run. Thread-safe.
    std::vector<ReplicaHealth> states() const;

    const HeartbeatConfig& config() const noexcept;

private:
    struct Impl;
    std::shared_ptr<Impl> impl_;
};

}  // namespace ringlb
