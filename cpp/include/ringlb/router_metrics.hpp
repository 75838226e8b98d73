// RouterMetrics: what the admin listener tells about the router itself:
// GET /metrics (Prometheus text), GET /status (JSON), GET /healthz and
// GET /readyz. Each answer is built from the counters RouterState owns,
// summed over the I/O threads at the time of the request, so that counting
// costs the data plane nothing more than its per-thread stores.
#pragma once

#include <string>
#include <utility>

#include "ringlb/router_state.hpp"

namespace ringlb {

struct RouterMetrics {
    // The /metrics body (PrometheusText::content_type). The first call after
    // a membership change works out the ring shares (ring_share.hpp).
    static std::string prometheus(RouterState& state);
    // The /status body: the ring's settings, the router's settings and
    // totals, every registered replica with its state, share and counters,
    // and the recent events (EventLog), oldest first.
    static std::string status_json(RouterState& state);
    // /healthz: 200 while the router serves, 503 once it drains.
    static std::pair<unsigned, std::string> health(const RouterState& state);
    // /readyz: 200 when at least min_replicas replicas are on the ring, else 503.
    static std::pair<unsigned, std::string> readiness(const RouterState& state);
};

}  // namespace ringlb
