// NameResolver: turns the DNS names replicas were given (Replica::name) into
// the addresses the router connects to, with Asio's asynchronous resolver on
// a thread of its own, never on an I/O thread (getaddrinfo may block).
//
// It follows the ReplicaSet: a replica with a name is resolved as soon as it
// is registered (until then it is off the ring, "resolving"), again when it
// goes off the ring (the health checks took it down), when the router
// reports a failed connection to it (refresh), and every interval. Each
// answer goes to ReplicaSet::set_address: the first address puts the replica
// on the ring, a new one moves it. A name that does not resolve keeps its
// last address (or stays off the ring) and is asked again after
// min(interval, retry_delay); the first failure of a run and every move are
// recorded in the EventLog.
#pragma once

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>

#include "ringlb/event_log.hpp"
#include "ringlb/replica_set.hpp"

namespace ringlb {

class NameResolver {
public:
    // How often the replica set is looked at for new names and replicas that
    // went off the ring (one atomic load when nothing changed).
    static constexpr std::chrono::milliseconds poll{100};
    // A name that failed, or a refresh soon after a resolution, waits this long.
    static constexpr std::chrono::milliseconds retry_delay{1000};

    NameResolver(ReplicaSet& replicas, EventLog& events, std::chrono::milliseconds interval);
    ~NameResolver();  // stop()
    NameResolver(const NameResolver&) = delete;
    NameResolver& operator=(const NameResolver&) = delete;

    // Starts the thread (again after a stop()); names registered meanwhile
    // are resolved at once.
    void start();
    // Stops the thread, dropping resolutions in progress. Idempotent.
    void stop();
    // Every name is resolved again this long after its last answer.
    void set_interval(std::chrono::milliseconds interval) noexcept;
    // Replica `id` could not be reached: resolve its name again soon (at most
    // once per retry_delay). Any thread; nothing when it has no name.
    void refresh(std::uint32_t id);

private:
    using Clock = std::chrono::steady_clock;
    struct Entry {
        std::string name;
        std::string hostname;
        bool serving = false;
        bool busy = false;     // a resolution is in progress
        bool failing = false;  // the last one failed
        Clock::time_point due{};
        Clock::time_point started{};
    };

    void tick();
    void sync();
    void resolve(std::uint32_t id, Entry& e);
    void on_resolved(std::uint32_t id, const std::string& name,
                     const boost::system::error_code& ec,
                     const boost::asio::ip::tcp::resolver::results_type& results);
    std::chrono::milliseconds interval() const noexcept {
        return std::chrono::milliseconds(interval_ms_.load(std::memory_order_relaxed));
    }

    ReplicaSet& replicas_;
    EventLog& events_;
    std::atomic<std::int64_t> interval_ms_;
    std::mutex lifecycle_;
    boost::asio::io_context ioc_{1};
    std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_;
    boost::asio::ip::tcp::resolver resolver_{ioc_};
    boost::asio::steady_timer timer_{ioc_};
    std::thread thread_;
    // The resolver thread's own: the names it follows, by replica id.
    std::unordered_map<std::uint32_t, Entry> entries_;
    std::uint64_t seen_version_ = 0;
};

}  // namespace ringlb
