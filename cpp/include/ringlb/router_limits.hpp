// RouterLimits: the router settings that a running router can change
// (Router::reconfigure): retries, bounded loads, timeouts, size and
// connection limits, the replica field (what each request reads), and how
// often replicas' DNS names are resolved again (NameResolver); everything else in RouterConfig (addresses, threads, ring, key source,
// admin listener, access log) is fixed for the router's life.
#pragma once

#include <chrono>
#include <cstddef>

namespace ringlb {

struct RouterLimits {
    unsigned retries = 2;              // further distinct replicas tried after a failed upstream
    double bounded_load = 0.0;         // c of consistent hashing with bounded loads; 0 = off
    std::chrono::milliseconds connect_timeout{300};
    std::chrono::milliseconds upstream_timeout{5000};
    std::chrono::milliseconds header_timeout{5000};  // a client must send its headers within this
    std::chrono::milliseconds idle_timeout{60000};   // keep-alive connection with no request
    std::size_t max_header_bytes = 8 * 1024;         // beyond: 431
    std::size_t max_body_bytes = 1024 * 1024;        // beyond: 413; 0: no limit (admin: 64 KiB)
    std::size_t max_connections = 10000;             // client connections open at once
    std::size_t max_idle_upstream = 64;              // idle keep-alive connections kept per replica
    bool replica_header = true;  // X-Ringlb-Replica: <hostname> on every proxied answer
    std::chrono::milliseconds resolve_interval{30000};  // between two resolutions of a replica's name
};

// The one check of these values, for a new router and for Router::reconfigure:
// std::invalid_argument naming the first one out of range.
void check_limits(const RouterLimits& limits);

}  // namespace ringlb
