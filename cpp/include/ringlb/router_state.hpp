// RouterState: what every I/O thread of one Router shares: the validated
// config, the key source, the replicas, the control worker and hooks, the
// per-replica counters, and the cross-thread counts. Internal to the router.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string_view>
#include <random>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <boost/asio/ip/address.hpp>

#include "ringlb/access_log.hpp"
#include "ringlb/admin_api.hpp"
#include "ringlb/control_worker.hpp"
#include "ringlb/cpu_budget.hpp"
#include "ringlb/event_log.hpp"
#include "ringlb/key_source.hpp"
#include "ringlb/name_resolver.hpp"
#include "ringlb/replica_set.hpp"
#include "ringlb/router.hpp"
#include "ringlb/upstream_pool.hpp"
#include "ringlb/worker_stats.hpp"

namespace ringlb {

// The listening socket a client connection came in on.
enum class Listener { data, admin };

class RouterState {
public:
    // Validates `config` (std::invalid_argument when something is off).
    explicit RouterState(RouterConfig config);

    // As constructed: its RouterLimits part may since have changed
    // (live_limits(); each I/O thread reads its own copy, IoWorker::limits()).
    const RouterConfig config;
    const KeySource key;
    const boost::asio::ip::address address;
    const CpuBudget threads;  // config.threads, or the usable CPUs when it is 0
    // config.admin_listen parsed; admin_port is meaningful only with has_admin_listener.
    const bool has_admin_listener;
    const boost::asio::ip::address admin_address;
    const std::uint16_t admin_port;
    ReplicaSet replicas;
    ControlWorker control;
    // Recent replica events (event_log.hpp): /status's "events".
    EventLog events;
    // Resolves the replicas' DNS names (name_resolver.hpp); runs while the router does.
    NameResolver names;
    // config.access_log opened; null when there is none.
    const std::unique_ptr<AccessLog> access_log;

    // One per I/O thread: [its index] is written by that thread only.
    std::vector<WorkerStats> worker_stats;
    // The sum of worker_stats, and the connections open now.
    RouterStats totals() const noexcept;

    std::atomic<bool> draining{false};
    std::atomic<std::uint64_t> total_in_flight{0};  // upstream tries in progress, all replicas
    std::atomic<std::size_t> connections{0};        // client connections open

    void set_failure_listener(FailureListener listener);
    void set_health_source(HealthSource source);
    // The health source's answer; empty without one (or when it throws).
    std::vector<ReplicaHealth> health();
    // Tells the failure listener (if any) that forwarding to `id` failed, and
    // the NameResolver (a replica with a name may have moved).
    // Called on an I/O thread; a listener that throws is ignored.
    void report_failure(std::uint32_t id) noexcept;

    // Is `path` an admin endpoint on `listener`? /rep is everywhere; /add and
    // /rm on the admin listener, and on the data port unless
    // admin_on_data_port is off (then they are proxied like any path);
    // /metrics, /status, /healthz and /readyz on the admin listener only (on
    // the data port every such path belongs to the service behind it).
    bool serves_admin(Listener listener, std::string_view path) const noexcept;
    // AdminApi::authorize for a membership change that came in on `listener`.
    std::optional<ControlError> authorize(Listener listener, std::string_view authorization) const;
    // config.min_replicas / max_replicas, the latter resolved (0 -> capacity, at most 64).
    const ReplicaLimits limits;

    // The live settings as last set (Router::reconfigure), from any thread:
    // for /status, Router::limits() and stop(); never on the request path.
    RouterLimits live_limits() const;
    // Checks `next` (check_limits: std::invalid_argument, nothing changes)
    // and records it; handing it to the I/O threads is the router's job.
    void set_live_limits(const RouterLimits& next);

    void set_control_handler(ControlHandler handler);
    // Validates an /add or /rm body and runs the control handler (on the
    // control worker thread). Returns the HTTP status and JSON body to answer.
    std::pair<unsigned, std::string> run_control(ControlRequest::Op op, const std::string& body);

    // The counters of replica `id`, shared by all I/O threads; a new set when
    // the id now belongs to another hostname.
    std::shared_ptr<ReplicaCounters> counters_for(std::uint32_t id, const std::string& hostname);
    // Per registered replica, in registration order: its address, whether it
    // is on the ring, its share of the id space there, and its counters
    // summed over the I/O threads. Safe from any thread.
    std::vector<ReplicaStats> replica_stats();

private:
    std::mutex hooks_mutex_;
    FailureListener failure_listener_;
    HealthSource health_source_;
    ControlHandler control_handler_;

    std::mutex counters_mutex_;
    std::unordered_map<std::uint32_t, std::pair<std::string, std::shared_ptr<ReplicaCounters>>>
        counters_;

    // key_space_shares of the last ring asked about: computed once per ring.
    std::mutex shares_mutex_;
    std::shared_ptr<const HashRing> shares_ring_;
    std::vector<double> shares_;

    mutable std::mutex live_mutex_;
    RouterLimits live_;

    std::mt19937_64 control_rng_{std::random_device{}()};  // control thread only
};

}  // namespace ringlb
