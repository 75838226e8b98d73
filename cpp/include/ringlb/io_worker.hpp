// IoWorker: one I/O thread of the router with its own io_context, as in the
// "io_context per core" design of Asio's HTTP server 2 example: every
// connection belongs to one worker for its whole life, so each session runs
// on one thread (an implicit strand: Asio guarantees that handlers of an
// io_context run by a single thread never run concurrently) and the upstream
// pools, the cached routes and the counters of a worker need no lock.
//
// Routing state is cached per worker: the ring snapshot and the upstream
// pools parallel to its members are rebuilt only when ReplicaSet::version()
// changes, so a request costs one atomic load to learn that nothing changed.
#pragma once

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/intrusive/list.hpp>

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "ringlb/deadline_queue.hpp"
#include "ringlb/field_arena.hpp"
#include "ringlb/replica_set.hpp"
#include "ringlb/router_state.hpp"
#include "ringlb/upstream_pool.hpp"
#include "ringlb/worker_limits.hpp"
#include "ringlb/worker_stats.hpp"

namespace ringlb {

class ProxySession;

// The routes of one snapshot: pools[i] reaches ring member i.
struct RouteTable {
    std::shared_ptr<const ReplicaSet::Snapshot> snap;
    std::vector<std::shared_ptr<UpstreamPool>> pools;
};

// What links a session into its worker's list (drain, close): held in the
// session itself, so that a connection costs no container node (an
// unordered_set's was ~40 bytes per idle connection).
struct SessionLink : boost::intrusive::list_base_hook<> {};

class IoWorker {
public:
    IoWorker(RouterState& state, unsigned index);
    ~IoWorker();
    IoWorker(const IoWorker&) = delete;
    IoWorker& operator=(const IoWorker&) = delete;

    boost::asio::io_context& ioc() noexcept { return *ioc_; }
    FieldArena& arena() noexcept { return arena_; }
    RouterState& state() noexcept { return state_; }
    WorkerStats& stats() noexcept { return state_.worker_stats[index_]; }
    std::mt19937_64& rng() noexcept { return rng_; }
    // This thread's copy of the live settings (worker_limits.hpp): sessions
    // lease the version their request starts with.
    WorkerLimits& limits() noexcept { return limits_; }
    // Router::reconfigure: requests that start from now on read `next`. A new
    // max_idle_upstream drops the cached pools (their idle connections
    // close), so that routes() makes them again with it. Worker thread, or
    // while it is stopped.
    void set_limits(const RouterLimits& next);
    // The quota of sessions that keep their exchange and a read buffer for a
    // short grace after an answer (ProxySession::do_wait_request): memory
    // kept for speed stays bounded (max_in_grace × a few KB) whatever the
    // number of connections. take_grace() is false when it is used up.
    static constexpr std::size_t max_in_grace = 128;
    bool take_grace() noexcept { return in_grace_ < max_in_grace ? (++in_grace_, true) : false; }
    void give_grace() noexcept { --in_grace_; }

    // The deadlines of this thread's sessions, under one timer.
    DeadlineQueue& deadlines() noexcept { return deadlines_; }

    // Starts the thread that runs the io_context (restarting it after a stop).
    void start();
    // Stops the io_context and joins the thread. Idempotent.
    void join();
    bool on_thread() const noexcept;

    // The routes for the current replica set. Worker thread only.
    const std::shared_ptr<const RouteTable>& routes();

    // Fills `out` with the member indices to try for `request_id`, first
    // choice first, then the next distinct replicas clockwise; at most
    // out.size(). With bounded loads the order is the random jump's
    // (HashRing::Walk::jump) and the first choice is the first candidate in
    // it under the load cap (bounded_load.hpp). Returns how many were written
    // (0: no replica serves). The cap is the thread's current bounded_load.
    // Worker thread only; `table` from routes().
    // With `complete` false and no bounded loads, only the first choice is
    // written (a ring lookup, cheaper than walking the candidates).
    std::size_t plan(const RouteTable& table, std::uint64_t request_id, std::span<std::size_t> out,
                     bool complete);

    // Session registry for draining; worker thread only.
    void add_session(SessionLink& s) noexcept { sessions_.push_back(s); }
    void remove_session(SessionLink& s) noexcept { sessions_.erase(sessions_.iterator_to(s)); }
    // Asks every session to finish its request and close (stop()); worker thread only.
    void drain_sessions();
    // Closes every session at once; worker thread only.
    void close_sessions();
    // Closes idle upstream connections and forgets the cached routes and
    // pools. Worker thread, or while it is stopped.
    void clear_pools();

private:
    RouterState& state_;
    unsigned index_;
    // Reset first in the destructor, while the members below still exist:
    // handlers destroyed with the io_context can own sessions that
    // deregister themselves here.
    std::unique_ptr<boost::asio::io_context> ioc_;
    std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_;
    std::thread thread_;
    std::atomic<std::thread::id> thread_id_{};

    WorkerLimits limits_;
    std::size_t in_grace_ = 0;
    // After ioc_, and shut down before it goes (see ~IoWorker).
    DeadlineQueue deadlines_;
    std::mt19937_64 rng_;
    std::shared_ptr<const RouteTable> routes_;
    std::uint64_t routes_version_ = 0;
    std::unordered_map<std::uint32_t, std::shared_ptr<UpstreamPool>> pools_;
    std::vector<std::size_t> all_candidates_;  // scratch for bounded loads
    boost::intrusive::list<SessionLink, boost::intrusive::constant_time_size<false>> sessions_;
    // The header fields of this thread's sessions (field_arena.hpp): blocks an
    // idle connection gives back serve the next busy one.
    FieldArena arena_{256 * 1024};
};

}  // namespace ringlb
