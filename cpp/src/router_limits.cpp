#include "ringlb/router_limits.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace ringlb {

void check_limits(const RouterLimits& l) {
    using std::chrono::milliseconds;
    if (l.retries > 64) throw std::invalid_argument("retries must be between 0 and 64");
    if (!(l.bounded_load == 0.0 || (l.bounded_load >= 1.0 && std::isfinite(l.bounded_load)))) {
        throw std::invalid_argument("bounded_load must be 0 (off) or a finite number >= 1");
    }
    const auto positive = [](milliseconds d, const char* what) {
        if (d <= milliseconds::zero()) throw std::invalid_argument(std::string(what) + " must be > 0");
    };
    positive(l.connect_timeout, "connect_timeout");
    positive(l.upstream_timeout, "upstream_timeout");
    positive(l.header_timeout, "header_timeout");
    positive(l.idle_timeout, "idle_timeout");
    positive(l.resolve_interval, "resolve_interval");
    if (l.max_header_bytes < 64) throw std::invalid_argument("max_header_bytes must be >= 64");
    if (l.max_connections < 1) throw std::invalid_argument("max_connections must be >= 1");
}

}  // namespace ringlb
