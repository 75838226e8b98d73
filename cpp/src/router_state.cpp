#include "ringlb/router_state.hpp"

#include "ringlb/admin_routes.hpp"

#include <algorithm>
#include <stdexcept>

#include "ringlb/admin_api.hpp"
#include "ringlb/ring_share.hpp"

namespace ringlb {
namespace {

const RouterConfig& checked(const RouterConfig& c) {
    check_limits(c);
    if (c.threads > 1024) throw std::invalid_argument("threads must be between 0 and 1024");
    if (!AdminApi::valid_hostname(c.hostname_prefix + "1")) {
        throw std::invalid_argument("hostname_prefix '" + c.hostname_prefix +
                                    "' does not make valid hostnames (<prefix>1 must match "
                                    "^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$)");
    }
    if (c.max_replicas != 0 && c.min_replicas > c.max_replicas) {
        throw std::invalid_argument("min_replicas must not exceed max_replicas");
    }
    return c;
}

boost::asio::ip::address parse_host(const std::string& host) {
    boost::system::error_code ec;
    auto a = boost::asio::ip::make_address(host, ec);
    if (ec) throw std::invalid_argument("host must be an IP address, got '" + host + "'");
    return a;
}

// "HOST:PORT" or "[V6]:PORT" -> (address, port); "" -> no admin listener.
std::pair<boost::asio::ip::address, std::uint16_t> parse_listen(const std::string& text) {
    if (text.empty()) return {};
    const auto fail = [&]() -> std::pair<boost::asio::ip::address, std::uint16_t> {
        throw std::invalid_argument("admin_listen must be HOST:PORT with HOST an IP address "
                                    "([::1]:PORT for IPv6), got '" + text + "'");
    };
    const auto colon = text.rfind(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == text.size()) return fail();
    std::string host = text.substr(0, colon);
    if (host.front() == '[') {
        if (host.size() < 3 || host.back() != ']') return fail();
        host = host.substr(1, host.size() - 2);
    } else if (host.find(':') != std::string::npos) {
        return fail();  // an IPv6 address needs its brackets
    }
    const std::string port = text.substr(colon + 1);
    if (port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos) return fail();
    const unsigned long p = std::stoul(port);
    if (p > 65535) return fail();
    boost::system::error_code ec;
    const auto address = boost::asio::ip::make_address(host, ec);
    if (ec) return fail();
    return {address, static_cast<std::uint16_t>(p)};
}

ReplicaLimits resolve_limits(const RouterConfig& c) {
    // The default bound: what fits on the ring, and never more than 64, so one
    // /add cannot start hundreds of replicas (Maglev's ring holds thousands).
    constexpr std::size_t default_cap = 64;
    const std::size_t capacity = make_ring(c.ring)->max_members();
    ReplicaLimits l;
    l.min = c.min_replicas;
    l.max = c.max_replicas != 0 ? c.max_replicas : std::min(capacity, default_cap);
    return l;
}

CpuBudget resolve_threads(unsigned t) {
    if (t != 0) return {t, "set by threads"};
    return usable_cpus();
}

}  // namespace

RouterState::RouterState(RouterConfig c)
    : config(checked(c)), key(c.key), address(parse_host(c.host)),
      threads(resolve_threads(c.threads)),
      has_admin_listener(!c.admin_listen.empty()),
      admin_address(parse_listen(c.admin_listen).first),
      admin_port(parse_listen(c.admin_listen).second),
      replicas(c.ring), names(replicas, events, c.resolve_interval),
      access_log(c.access_log.empty() ? nullptr : std::make_unique<AccessLog>(c.access_log)),
      worker_stats(threads.cpus), limits(resolve_limits(c)), live_(c) {}

RouterLimits RouterState::live_limits() const {
    std::lock_guard lock(live_mutex_);
    return live_;
}

void RouterState::set_live_limits(const RouterLimits& next) {
    check_limits(next);
    std::lock_guard lock(live_mutex_);
    live_ = next;
    names.set_interval(next.resolve_interval);
}

RouterStats RouterState::totals() const noexcept {
    RouterStats s;
    const auto get = [](const std::atomic<std::uint64_t>& c) {
        return c.load(std::memory_order_relaxed);
    };
    for (const auto& ws : worker_stats) {
#define RINGLB_COUNTER_ADD(name, what) s.name += get(ws.name);
        RINGLB_ROUTER_COUNTERS(RINGLB_COUNTER_ADD)
#undef RINGLB_COUNTER_ADD
    }
    s.active_connections = connections.load(std::memory_order_relaxed);
    return s;
}

bool RouterState::serves_admin(Listener listener, std::string_view path) const noexcept {
    const AdminRoute* route = find_admin_route(path);
    return route && route->served_on(listener, config.admin_on_data_port);
}

std::optional<ControlError> RouterState::authorize(Listener listener,
                                                 std::string_view authorization) const {
    const bool loopback = listener == Listener::admin ? admin_address.is_loopback()
                                                      : address.is_loopback();
    return AdminApi::authorize(config.admin_token, authorization, loopback);
}

void RouterState::set_failure_listener(FailureListener listener) {
    std::lock_guard lock(hooks_mutex_);
    failure_listener_ = std::move(listener);
}

void RouterState::set_health_source(HealthSource source) {
    std::lock_guard lock(hooks_mutex_);
    health_source_ = std::move(source);
}

std::vector<ReplicaHealth> RouterState::health() {
    HealthSource source;
    {
        std::lock_guard lock(hooks_mutex_);
        source = health_source_;
    }
    if (!source) return {};
    try {
        return source();
    } catch (...) {
        return {};  // a scrape without health states beats a failed scrape
    }
}

void RouterState::report_failure(std::uint32_t id) noexcept {
    try {
        names.refresh(id);
    } catch (...) {
        // Out of memory for the post: the next interval resolves it anyway.
    }
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
                                       ? AdminApi::validate_add(body, *snap, limits, config.hostname_prefix)
                                       : AdminApi::validate_remove(body, *snap, control_rng_, limits);
        handler(req);
        return {200, AdminApi::rep_body(*replicas.snapshot())};
    } catch (const ControlError& e) {  // AdminApi's refusals and the control plane's
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
        slot.second = std::make_shared<ReplicaCounters>(threads.cpus);
    }
    return slot.second;
}

std::vector<ReplicaStats> RouterState::replica_stats() {
    const auto snap = replicas.snapshot();
    std::vector<double> shares;
    {
        std::lock_guard lock(shares_mutex_);
        if (shares_ring_ != snap->ring) {
            shares_ = key_space_shares(*snap->ring, key.kind() == KeySource::Kind::random
                                                        ? IdSpace::six_digit
                                                        : IdSpace::hashed64);
            shares_ring_ = snap->ring;
        }
        shares = shares_;
    }
    const auto get = [](const std::atomic<std::uint64_t>& c) {
        return c.load(std::memory_order_relaxed);
    };
    std::vector<ReplicaStats> out;
    std::lock_guard lock(counters_mutex_);
    for (const auto& r : snap->registered) {
        ReplicaStats s;
        s.id = r->id;
        s.hostname = r->hostname;
        s.host = r->host;
        s.name = r->name;
        s.port = r->port;
        s.weight = r->weight;
        const std::size_t member = snap->ring->index_of(r->id);
        s.serving = member != HashRing::npos;
        if (s.serving && member < shares.size()) s.share = shares[member];
        const auto it = counters_.find(r->id);
        if (it != counters_.end() && it->second.first == r->hostname) {
            const ReplicaCounters& c = *it->second.second;
            s.in_flight = get(c.in_flight);
            double nanoseconds = 0;
            for (const auto& w : c.per_worker) {
                for (std::size_t k = 0; k < status_classes; ++k) s.responses[k] += get(w.responses[k]);
                for (std::size_t b = 0; b < s.duration_buckets.size(); ++b) {
                    s.duration_buckets[b] += get(w.duration_buckets[b]);
                }
                s.failures += get(w.failures);
                nanoseconds += static_cast<double>(get(w.duration_ns));
            }
            s.duration_seconds = nanoseconds * 1e-9;
            for (const auto n : s.responses) s.requests += n;
        }
        out.push_back(std::move(s));
    }
    return out;
}

}  // namespace ringlb
