// Router: the data plane. Listens on a port, serves the admin API (/rep, /add,
// /rm) and proxies every other GET to the replica the ring picks (SPEC §3, §4).
//
// PUBLIC CONTRACT (the heartbeat engine, the launcher and the bindings build
// on it): keep these declarations; internals are free.
#pragma once

#include <boost/asio/any_io_executor.hpp>

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "ringlb/event_log.hpp"
#include "ringlb/hash_ring.hpp"
#include "ringlb/heartbeat.hpp"
#include "ringlb/replica_set.hpp"
#include "ringlb/router_limits.hpp"
#include "ringlb/worker_stats.hpp"

namespace ringlb {

// What a Router is made with. The fields of RouterLimits (retries, timeouts,
// size and connection limits, the replica field) can change while it runs
// (Router::reconfigure); the rest are fixed for its life.
struct RouterConfig : RouterLimits {
    std::string host = "127.0.0.1";
    std::uint16_t port = 5000;         // 0 = any free port; see Router::port()
    unsigned threads = 0;              // I/O threads; 0 = the CPUs usable (see cpu_budget.hpp)
    RingOptions ring;                  // M, K, scheme, probing, canonical placement
    std::string key = "random";        // random | header:NAME | query:NAME | cookie:NAME | path | client-ip
    // Who may change the membership. /rep is open everywhere; /add and /rm:
    std::string admin_token;         // non-empty: they need "Authorization: Bearer <token>" (else 401)
    std::string admin_listen;        // "HOST:PORT" ([v6]:PORT): a second listener for the admin API; "" = none
    bool admin_on_data_port = true;  // false: on the data port they are proxied like any other path
    // Without a token, a listener on a non-loopback address answers them 403.
    std::size_t min_replicas = 1;    // /rm may not leave fewer registered replicas
    std::size_t max_replicas = 0;    // /add may not make more; 0 = the ring's capacity, at most 64
    std::string hostname_prefix = "Server";  // /add names replicas nobody named <prefix><k>
    std::string access_log;      // a line per request to this file, "-": stdout; "": none
};

// A membership change that the router validated (SPEC §3) and hands to the
// control plane: the exact hostnames to add or remove (generated names and
// the random picks of /rm already filled in).
struct ControlRequest {
    enum class Op { add, remove };
    Op op = Op::add;
    std::vector<std::string> hostnames;
    // /add with "addresses": where each new replica (in hostnames' order)
    // already listens, for servers that ringlb does not start. Else empty.
    std::vector<std::string> addresses;
    // /add with "weights": each new replica's ring weight (in hostnames'
    // order), already checked against the ring (HashRing::check_weight).
    // Empty: the control plane's default weight.
    std::vector<std::uint32_t> weights;
};

// A refused admin request: thrown by AdminApi's checks and by a control
// handler, to answer with `status` and
// {"message": "<Error> " + message, "status": "failure"}.
struct ControlError : std::runtime_error {
    ControlError(int status, const std::string& message)
        : std::runtime_error(message), status(status) {}
    int status;
};

// Runs on the router's control worker thread, never on an I/O thread; one
// request at a time. It starts or stops replicas and registers them through
// replicas() before returning; the router then answers like /rep.
using ControlHandler = std::function<void(const ControlRequest&)>;

// Called on an I/O thread when forwarding to replica `id` failed with a
// refused, reset or timed-out connection. Must not block.
using FailureListener = std::function<void(std::uint32_t id)>;

// What the health checks know of each replica (HeartbeatEngine::health_source):
// /metrics and /status call it when asked, on an I/O thread. Must not block.
using HealthSource = std::function<std::vector<ReplicaHealth>()>;

struct RouterStats {
    // Every I/O thread's RINGLB_ROUTER_COUNTERS (worker_stats.hpp), summed.
#define RINGLB_COUNTER_SUM(name, what) std::uint64_t name = 0;
    RINGLB_ROUTER_COUNTERS(RINGLB_COUNTER_SUM)
#undef RINGLB_COUNTER_SUM
    std::uint64_t active_connections = 0;  // client connections open now
};

// Per registered replica, from Router::replica_stats().
struct ReplicaStats {
    std::uint32_t id = 0;
    std::string hostname;
    std::string host;                // where the router reaches it; "" while `name` resolves
    std::string name;                // the DNS name it was given (Replica::name), or ""
    std::uint16_t port = 0;
    bool serving = false;            // on the ring
    std::uint32_t weight = 1;        // its ring weight (Member::weight)
    double share = 0;                // of the id space on the ring now (ring_share.hpp); 0 off it
    std::uint64_t requests = 0;      // requests it answered (the sum of responses)
    std::uint64_t in_flight = 0;     // requests it is answering now
    std::uint64_t failures = 0;      // refused / reset / timed-out tries
    // Its answers by the class of the status the client got: [0] 1xx … [4] 5xx.
    std::array<std::uint64_t, status_classes> responses{};
    // Time from routing to its whole answer, per request_duration_bounds
    // bucket (not cumulative; the last is +Inf), and the sum in seconds.
    std::array<std::uint64_t, request_duration_bounds.size() + 1> duration_buckets{};
    double duration_seconds = 0;
};

class Router {
public:
    // Throws std::invalid_argument for a bad config (unknown scheme or key source...).
    explicit Router(RouterConfig config);
    ~Router();  // stop()
    Router(const Router&) = delete;
    Router& operator=(const Router&) = delete;

    // Binds and starts the I/O threads. Throws std::system_error when the
    // address cannot be bound, std::logic_error when already started.
    void start();
    // Stops accepting, lets requests in flight finish (bounded by
    // upstream_timeout), closes every connection and joins the threads.
    // Idempotent.
    void stop();
    bool running() const noexcept;

    // The bound port (after start()).
    std::uint16_t port() const noexcept;
    // The admin listener's bound port (after start()); 0 when there is none.
    std::uint16_t admin_port() const noexcept;
    // The replica bounds /add and /rm enforce (max_replicas resolved).
    std::size_t min_replicas() const noexcept;
    std::size_t max_replicas() const noexcept;
    // The I/O threads (config.threads, or the usable CPUs when 0), and why
    // that many, for the log.
    unsigned threads() const noexcept;
    const std::string& threads_reason() const noexcept;
    // The config the router was made with; its RouterLimits part as they
    // were then (limits() has them as they are now).
    const RouterConfig& config() const noexcept;
    // The live settings: config()'s, or what reconfigure() set since.
    RouterLimits limits() const;
    // Changes the live settings, all or nothing: std::invalid_argument (and
    // nothing changes) when one is out of range, by the same check as the
    // constructor's (check_limits). Each I/O thread takes the new values
    // before this returns; a request already being read or answered finishes
    // with the values it started with (a keep-alive connection takes the new
    // ones at its next request). max_connections applies to connections
    // accepted from then on. std::logic_error on one of the router's own threads.
    void reconfigure(const RouterLimits& limits);

    ReplicaSet& replicas() noexcept;
    // The recent events /status serves (the last EventLog::default_capacity):
    // the heartbeat engine and the control plane record into it. Lives as
    // long as the router.
    EventLog& events() noexcept;
    // The executor of the I/O threads, for timers that must share their loop
    // (the heartbeat engine). Valid from construction until destruction.
    boost::asio::any_io_executor executor() noexcept;

    void set_control_handler(ControlHandler handler);
    void set_failure_listener(FailureListener listener);
    // Where /metrics and /status learn health states and heartbeat round
    // trips; without one, a replica's state is whether it is on the ring.
    void set_health_source(HealthSource source);

    RouterStats stats() const noexcept;
    // Counters of every registered replica, in registration order.
    std::vector<ReplicaStats> replica_stats() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace ringlb
