#include "ringlb/router_metrics.hpp"

#include <boost/json.hpp>

#include <array>
#include <chrono>
#include <optional>
#include <string_view>

#include "ringlb/admin_api.hpp"
#include "ringlb/prometheus_text.hpp"

namespace ringlb {
namespace {

namespace json = boost::json;

constexpr std::array<std::string_view, status_classes> class_names{"1xx", "2xx", "3xx", "4xx",
                                                                   "5xx"};

// HOST:PORT ([v6]:PORT) of `host`.
std::string host_port(const std::string& host, std::uint16_t port) {
    const bool v6 = host.find(':') != std::string::npos;
    return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

// What the health checks know of `r`, or null (no health source, or not probed yet).
const ReplicaHealth* health_of(const std::vector<ReplicaHealth>& all, const ReplicaStats& r) {
    for (const auto& h : all) {
        if (h.id == r.id && h.hostname == r.hostname) return &h;
    }
    return nullptr;
}

// The health checks' state (up, suspect, down) when they know the replica;
// else "up" on the ring and "down" off it.
std::string_view state_of(const ReplicaStats& r, const ReplicaHealth* h) {
    if (r.host.empty()) return "resolving";  // a DNS name without an address yet
    if (h) return to_string(h->state);
    return r.serving ? "up" : "down";
}

double seconds_since_epoch(std::chrono::system_clock::time_point t) {
    return std::chrono::duration<double>(t.time_since_epoch()).count();
}

double seconds_since_epoch(std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double>(t.time_since_epoch()).count();
}

// The event log, oldest first (newest last), as /status's "events".
json::array events_json(const EventLog& log) {
    json::array out;
    for (const Event& e : log.recent()) {
        json::object one;
        one["seq"] = e.seq;
        one["time"] = seconds_since_epoch(e.time);
        one["monotonic_seconds"] = seconds_since_epoch(e.monotonic);
        one["kind"] = to_string(e.kind);
        if (e.id != 0) one["id"] = e.id;
        else one["id"] = nullptr;
        if (!e.hostname.empty()) one["hostname"] = e.hostname;
        else one["hostname"] = nullptr;
        one["detail"] = e.detail;
        out.emplace_back(std::move(one));
    }
    return out;
}

std::optional<double> rtt_of(const ReplicaHealth* h) {
    if (!h || !h->last_latency) return std::nullopt;
    return std::chrono::duration<double>(*h->last_latency).count();
}

}  // namespace

std::string RouterMetrics::prometheus(RouterState& state) {
    const RouterStats totals = state.totals();
    const std::vector<ReplicaStats> replicas = state.replica_stats();
    const auto snap = state.replicas.snapshot();
    PrometheusText t;
    using L = PrometheusText::Labels;

    t.family("ringlb_build_info", "ringlb's version, hash scheme and key source; always 1.",
             "gauge");
    const std::string key = state.key.spec();
    t.sample("ringlb_build_info",
             L{{"version", RINGLB_VERSION}, {"scheme", state.replicas.options().scheme}, {"key", key}},
             std::uint64_t{1});

    t.family("ringlb_requests_total",
             "Requests a replica answered, by replica and the class of the status the client got.",
             "counter");
    for (const auto& r : replicas) {
        for (std::size_t k = 0; k < status_classes; ++k) {
            // 2xx..5xx always, so that rate() has a series from the start;
            // 1xx (protocol upgrades) only once there is one.
            if (k == 0 && r.responses[k] == 0) continue;
            t.sample("ringlb_requests_total", L{{"replica", r.hostname}, {"code", class_names[k]}},
                     r.responses[k]);
        }
    }

    t.family("ringlb_request_duration_seconds",
             "Time from routing a request to the replica's whole answer, by replica.",
             "histogram");
    for (const auto& r : replicas) {
        t.histogram("ringlb_request_duration_seconds", L{{"replica", r.hostname}},
                    request_duration_bounds, r.duration_buckets, r.duration_seconds);
    }

    t.family("ringlb_upstream_failures_total",
             "Tries that failed with a refused, reset or timed-out connection, by replica.",
             "counter");
    for (const auto& r : replicas) {
        t.sample("ringlb_upstream_failures_total", L{{"replica", r.hostname}}, r.failures);
    }

    t.family("ringlb_retries_total", "Tries on a further replica after a failed one.", "counter");
    t.sample("ringlb_retries_total", L{}, totals.retries);

    t.family("ringlb_errors_total",
             "Requests the router answered itself with a 5xx (no replica, every try failed...).",
             "counter");
    t.sample("ringlb_errors_total", L{}, totals.errors);

    t.family("ringlb_replica_up", "1 while the replica is on the ring, 0 while it is taken off.",
             "gauge");
    for (const auto& r : replicas) {
        t.sample("ringlb_replica_up", L{{"replica", r.hostname}}, std::uint64_t{r.serving ? 1u : 0u});
    }

    t.family("ringlb_replica_weight",
             "The replica's ring weight: its share of the ring is weight / the sum of weights "
             "(ketama, Maglev; 1 on slot rings).",
             "gauge");
    for (const auto& r : replicas) {
        t.sample("ringlb_replica_weight", L{{"replica", r.hostname}}, std::uint64_t{r.weight});
    }

    t.family("ringlb_replica_in_flight", "Requests the replica is answering now.", "gauge");
    for (const auto& r : replicas) {
        t.sample("ringlb_replica_in_flight", L{{"replica", r.hostname}}, r.in_flight);
    }

    t.family("ringlb_replicas", "Replicas on the ring.", "gauge");
    t.sample("ringlb_replicas", L{}, std::uint64_t{snap->ring->members().size()});

    t.family("ringlb_ring_share",
             "Fraction of the request-id space the replica serves on the current ring.", "gauge");
    for (const auto& r : replicas) {
        t.sample("ringlb_ring_share", L{{"replica", r.hostname}}, r.share);
    }

    const std::vector<ReplicaHealth> health = state.health();
    t.family("ringlb_heartbeat_rtt_seconds",
             "Round trip of the replica's last successful health probe.", "gauge");
    for (const auto& r : replicas) {
        if (const auto rtt = rtt_of(health_of(health, r))) {
            t.sample("ringlb_heartbeat_rtt_seconds", L{{"replica", r.hostname}}, *rtt);
        }
    }

    t.family("ringlb_connections_active", "Client connections open now.", "gauge");
    t.sample("ringlb_connections_active", L{}, totals.active_connections);

    t.family("ringlb_membership_changes_total",
             "Membership changes: replicas added, removed, taken off the ring (down), put back "
             "(up), or moved to a new address (a replacement).",
             "counter");
    for (const auto& [kind, n] : snap->changes.by_kind()) {
        t.sample("ringlb_membership_changes_total", L{{"kind", kind}}, n);
    }
    return t.take();
}

std::string RouterMetrics::status_json(RouterState& state) {
    const RouterStats totals = state.totals();
    const std::vector<ReplicaStats> replicas = state.replica_stats();
    const auto snap = state.replicas.snapshot();
    const RingOptions& o = state.replicas.options();

    json::object ring;
    ring["scheme"] = o.scheme;
    ring["slots"] = o.slots;
    ring["virtual_nodes"] = o.virtual_nodes;
    ring["probing"] = o.probing == Probing::linear ? "linear" : "quadratic";
    ring["canonical"] = o.canonical;
    ring["replicas"] = snap->ring->members().size();
    ring["capacity"] = snap->ring->max_members();

    json::object router;
    router["version"] = RINGLB_VERSION;
    router["key"] = state.key.spec();
    const RouterLimits live = state.live_limits();
    router["retries"] = live.retries;
    router["bounded_load"] = live.bounded_load;
    router["threads"] = state.threads.cpus;
    router["min_replicas"] = state.limits.min;
    router["max_replicas"] = state.limits.max;
    // Router::stats(): every request answered (admin ones too), by whom and how.
    json::object counts;
#define RINGLB_COUNTER_KEY(name, what) counts[#name] = totals.name;
    RINGLB_ROUTER_COUNTERS(RINGLB_COUNTER_KEY)
#undef RINGLB_COUNTER_KEY
    counts["connections_active"] = totals.active_connections;
    router["totals"] = std::move(counts);

    const std::vector<ReplicaHealth> health = state.health();
    json::array list;
    for (const auto& r : replicas) {
        const ReplicaHealth* h = health_of(health, r);
        json::object responses;
        for (std::size_t k = 0; k < status_classes; ++k) responses[class_names[k]] = r.responses[k];
        json::object one;
        one["id"] = r.id;
        one["hostname"] = r.hostname;
        // Where the router connects (null while its name resolves), and the
        // DNS name it was given (null when it was given an address).
        if (r.host.empty()) one["address"] = nullptr;
        else one["address"] = host_port(r.host, r.port);
        if (r.name.empty()) one["name"] = nullptr;
        else one["name"] = host_port(r.name, r.port);
        one["state"] = state_of(r, h);
        one["on_ring"] = r.serving;
        one["weight"] = r.weight;
        one["share"] = r.share;
        one["requests"] = r.requests;
        one["responses"] = std::move(responses);
        one["in_flight"] = r.in_flight;
        one["failures"] = r.failures;
        one["duration_seconds_sum"] = r.duration_seconds;
        // Per bucket of duration_bounds_seconds (not cumulative), the last one
        // above the largest bound: a reader takes p99 from two polls' difference.
        json::array buckets;
        for (const auto n : r.duration_buckets) buckets.emplace_back(n);
        one["duration_buckets"] = std::move(buckets);
        if (const auto rtt = rtt_of(h)) one["heartbeat_rtt_seconds"] = *rtt;
        else one["heartbeat_rtt_seconds"] = nullptr;
        list.emplace_back(std::move(one));
    }

    json::object changes;
    for (const auto& [kind, n] : snap->changes.by_kind()) changes[kind] = n;

    json::array bounds;
    for (const double b : request_duration_bounds) bounds.emplace_back(b);

    json::object out;
    // The router's steady clock: a reader's rates between two polls come from
    // it, not from its own clock (a headless browser's may run virtual time).
    out["monotonic_seconds"] = seconds_since_epoch(std::chrono::steady_clock::now());
    out["duration_bounds_seconds"] = std::move(bounds);
    out["ring"] = std::move(ring);
    out["router"] = std::move(router);
    out["replicas"] = std::move(list);
    out["membership_changes"] = std::move(changes);
    out["events_recorded"] = state.events.recorded();
    out["events"] = events_json(state.events);
    return json::serialize(out);
}

std::pair<unsigned, std::string> RouterMetrics::health(const RouterState& state) {
    if (state.draining.load(std::memory_order_relaxed)) {
        return {503, AdminApi::error_body("the router is stopping")};
    }
    return {200, AdminApi::success_body("serving")};
}

std::pair<unsigned, std::string> RouterMetrics::readiness(const RouterState& state) {
    const std::size_t on_ring = state.replicas.snapshot()->ring->members().size();
    const std::string counts = std::to_string(on_ring) + " replicas on the ring, min-replicas is " +
                               std::to_string(state.limits.min);
    if (on_ring >= state.limits.min && on_ring > 0) return {200, AdminApi::success_body("ready: " + counts)};
    return {503, AdminApi::error_body("not ready: " + counts)};
}

}  // namespace ringlb
