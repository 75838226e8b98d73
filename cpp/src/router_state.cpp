#include "ringlb/router_state.hpp"

#include <cmath>
#include <stdexcept>
#include <thread>

#include "ringlb/admin_api.hpp"

namespace ringlb {
namespace {

const RouterConfig& checked(const RouterConfig& c) {
    using std::chrono::milliseconds;
    if (c.retries > 64) throw std::invalid_argument("retries must be between 0 and 64");
    if (!(c.bounded_load == 0.0 || (c.bounded_load >= 1.0 && std::isfinite(c.bounded_load)))) {
        throw std::invalid_argument("bounded_load must be 0 (off) or a finite number >= 1");
    }
    if (c.threads > 1024) throw std::invalid_argument("threads must be between 0 and 1024");
    const auto positive = [](milliseconds d, const char* what) {
        if (d <= milliseconds::zero()) throw std::invalid_argument(std::string(what) + " must be > 0");
    };
    positive(c.connect_timeout, "connect_timeout");
    positive(c.upstream_timeout, "upstream_timeout");
    positive(c.header_timeout, "header_timeout");
    positive(c.idle_timeout, "idle_timeout");
    if (c.max_header_bytes < 64) throw std::invalid_argument("max_header_bytes must be >= 64");
    if (c.max_connections < 1) throw std::invalid_argument("max_connections must be >= 1");
    return c;
}

boost::asio::ip::address parse_host(const std::string& host) {
    boost::system::error_code ec;
    auto a = boost::asio::ip::make_address(host, ec);
    if (ec) throw std::invalid_argument("host must be an IP address, got '" + host + "'");
    return a;
}

unsigned resolve_threads(unsigned t) {
    if (t != 0) return t;
    const unsigned cores = std::thread::hardware_concurrency();
    return cores == 0 ? 1 : cores;
}

}  // namespace

RouterState::RouterState(RouterConfig c)
    : config(checked(c)), key(c.key), address(parse_host(c.host)),
      threads(resolve_threads(c.threads)), replicas(c.ring) {}

void RouterState::set_failure_listener(FailureListener listener) {
    std::lock_guard lock(hooks_mutex_);
    failure_listener_ = std::move(listener);
}

void RouterState::report_failure(std::uint32_t id) noexcept {
    FailureListener listener;
    {
        std::lock_guard lock(hooks_mutex_);
        listener = failure_listener_;
    }
    if (!listener) return;
    try {
        listener(id);
    } catch (...) {
        // A listener must not break the request that saw the failure.
    }
}

void RouterState::set_control_handler(ControlHandler handler) {
    std::lock_guard lock(hooks_mutex_);
    control_handler_ = std::move(handler);
}

std::pair<unsigned, std::string> RouterState::run_control(ControlRequest::Op op,
                                                          const std::string& body) {
    ControlHandler handler;
    {
        std::lock_guard lock(hooks_mutex_);
        handler = control_handler_;
    }
    if (!handler) {
        return {503, AdminApi::error_body(
                         "no control plane: this router's replicas are managed from Python")};
    }
    try {
        const auto snap = replicas.snapshot();
        const ControlRequest req = op == ControlRequest::Op::add
                                       ? AdminApi::validate_add(body, *snap)
                                       : AdminApi::validate_remove(body, *snap, control_rng_);
        handler(req);
        return {200, AdminApi::rep_body(*replicas.snapshot())};
    } catch (const AdminError& e) {
        return {static_cast<unsigned>(e.status), AdminApi::error_body(e.what())};
    } catch (const ControlError& e) {
        const unsigned status = e.status >= 400 && e.status <= 599 ? e.status : 500;
        return {status, AdminApi::error_body(e.what())};
    } catch (const std::exception& e) {
        return {500, AdminApi::error_body(e.what())};
    } catch (...) {
        return {500, AdminApi::error_body("the control handler failed")};
    }
}

std::shared_ptr<ReplicaCounters> RouterState::counters_for(std::uint32_t id,
                                                           const std::string& hostname) {
    std::lock_guard lock(counters_mutex_);
    auto& slot = counters_[id];
    if (!slot.second || slot.first != hostname) {
        slot.first = hostname;
        slot.second = std::make_shared<ReplicaCounters>();
    }
    return slot.second;
}

std::vector<RouterState::ReplicaCount> RouterState::replica_counts() {
    const auto snap = replicas.snapshot();
    std::vector<ReplicaCount> out;
    std::lock_guard lock(counters_mutex_);
    for (const auto& r : snap->registered) {
        ReplicaCount c{r->id, r->hostname, 0, 0, 0, snap->ring->index_of(r->id) != HashRing::npos};
        const auto it = counters_.find(r->id);
        if (it != counters_.end() && it->second.first == r->hostname) {
            c.requests = it->second.second->requests.load(std::memory_order_relaxed);
            c.in_flight = it->second.second->in_flight.load(std::memory_order_relaxed);
            c.failures = it->second.second->failures.load(std::memory_order_relaxed);
        }
        out.push_back(std::move(c));
    }
    return out;
}

}  // namespace ringlb
