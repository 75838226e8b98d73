#include "ringlb/upstream_pool.hpp"

#include <boost/asio/ip/address.hpp>

#include "ringlb/coarse_clock.hpp"

namespace ringlb {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

void close_quietly(UpstreamConnection& c) noexcept {
    boost::system::error_code ignored;
    c.socket.shutdown(tcp::socket::shutdown_both, ignored);
    c.socket.close(ignored);
}

}  // namespace

UpstreamPool::UpstreamPool(asio::io_context& ioc, const Replica& replica, std::size_t max_idle,
                           std::shared_ptr<ReplicaCounters> counters, unsigned worker)
    : ioc_(ioc), id_(replica.id), hostname_(replica.hostname), port_(replica.port),
      max_idle_(max_idle), counters_(std::move(counters)),
      worker_stats_(&counters_->per_worker.at(worker)) {
    set_endpoint(replica);
    idle_.reserve(std::min<std::size_t>(max_idle_, 64));
}

UpstreamPool::~UpstreamPool() { clear(); }

bool UpstreamPool::same_endpoint(const Replica& replica) const noexcept {
    return replica.host == host_ && replica.port == port_;
}

void UpstreamPool::set_endpoint(const Replica& replica) {
    clear();
    host_ = replica.host;
    port_ = replica.port;
    boost::system::error_code ec;
    const auto address = asio::ip::make_address(host_, ec);
    endpoint_valid_ = !ec;
    endpoint_ = ec ? tcp::endpoint() : tcp::endpoint(address, port_);
}

std::unique_ptr<UpstreamConnection> UpstreamPool::acquire() {
    const auto now = CoarseClock::now();
    while (!idle_.empty()) {
        auto conn = std::move(idle_.back());
        idle_.pop_back();
        if (now - conn->idle_since < max_idle_age) return conn;
        close_quietly(*conn);
    }
    return std::make_unique<UpstreamConnection>(ioc_);
}

void UpstreamPool::release(std::unique_ptr<UpstreamConnection> conn, const tcp::endpoint& to) {
    if (idle_.size() >= max_idle_ || to != endpoint_ || !conn->socket.is_open()) {
        close_quietly(*conn);
        return;
    }
    conn->idle_since = CoarseClock::now();
    // An idle connection keeps no read buffer (16 KiB after one answer): a
    // pool of hundreds would hold megabytes. The next use allocates it again.
    conn->buffer.shrink_to_fit();
    idle_.push_back(std::move(conn));
}

void UpstreamPool::clear() noexcept {
    for (auto& c : idle_) close_quietly(*c);
    idle_.clear();
}

}  // namespace ringlb
