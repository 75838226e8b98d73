// UpstreamPool: keep-alive HTTP/1.1 connections to one replica, owned by one
// I/O thread (IoWorker), so nothing in it locks.
//
// A request takes a connection (an idle one when there is one, else a new
// one that still has to connect), and gives it back when the response came
// in whole and the replica kept the connection open. Idle connections are
// handed out last-in first-out (the warmest socket first) and never older
// than max_idle_age: a replica closes idle connections on its own schedule,
// and one that it already closed would cost the request a reconnect.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ringlb/replica_set.hpp"
#include "ringlb/worker_stats.hpp"

namespace ringlb {

// A socket bound to its io_context's own executor type (no type-erased
// any_io_executor on the hot path).
using Socket = boost::asio::basic_stream_socket<boost::asio::ip::tcp,
                                                boost::asio::io_context::executor_type>;

// One connection to a replica. Timeouts are the owning session's business
// (it closes the socket when its deadline passes), so there is no timer here.
struct UpstreamConnection {
    explicit UpstreamConnection(boost::asio::io_context& ioc) : socket(ioc) {}
    Socket socket;
    boost::beast::flat_buffer buffer;
    std::chrono::steady_clock::time_point idle_since{};
    bool connected = false;  // false: a fresh connection that must connect first
    boost::asio::ip::tcp::endpoint peer;  // where it is connected to
};

class UpstreamPool {
public:
    static constexpr std::chrono::seconds max_idle_age{15};

    // `replica.host` must be an IP literal; an unparsable one leaves the pool
    // with an unusable endpoint, so every connect fails (and is reported).
    // `worker`: the owning IoWorker's index, which of counters->per_worker it writes.
    UpstreamPool(boost::asio::io_context& ioc, const Replica& replica, std::size_t max_idle,
                 std::shared_ptr<ReplicaCounters> counters, unsigned worker);
    ~UpstreamPool();
    UpstreamPool(const UpstreamPool&) = delete;
    UpstreamPool& operator=(const UpstreamPool&) = delete;

    std::uint32_t id() const noexcept { return id_; }
    const std::string& hostname() const noexcept { return hostname_; }
    const boost::asio::ip::tcp::endpoint& endpoint() const noexcept { return endpoint_; }
    bool endpoint_valid() const noexcept { return endpoint_valid_; }
    ReplicaCounters& counters() noexcept { return *counters_; }
    // The owning thread's counters of this replica.
    ReplicaWorkerStats& worker_stats() noexcept { return *worker_stats_; }

    // True when `replica` is where this pool connects to.
    bool same_endpoint(const Replica& replica) const noexcept;
    // Points the pool at a replica's new address: idle connections to the old one are closed.
    void set_endpoint(const Replica& replica);

    // An idle keep-alive connection (connected == true), or else a new one
    // that has not connected yet. Never null.
    std::unique_ptr<UpstreamConnection> acquire();
    // Keeps a connection that finished a response and may be reused; closes
    // it instead when the pool is full or it belongs to an old endpoint.
    void release(std::unique_ptr<UpstreamConnection> conn, const boost::asio::ip::tcp::endpoint& to);
    // Closes every idle connection.
    void clear() noexcept;

private:
    boost::asio::io_context& ioc_;
    std::uint32_t id_;
    std::string hostname_;
    boost::asio::ip::tcp::endpoint endpoint_;
    bool endpoint_valid_ = false;
    std::string host_;
    std::uint16_t port_;
    std::size_t max_idle_;
    std::shared_ptr<ReplicaCounters> counters_;
    ReplicaWorkerStats* worker_stats_;  // in *counters_
    std::vector<std::unique_ptr<UpstreamConnection>> idle_;  // the back is the newest
};

}  // namespace ringlb
