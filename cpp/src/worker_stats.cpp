#include "ringlb/worker_stats.hpp"

#include <algorithm>

namespace ringlb {

void ReplicaWorkerStats::record(unsigned status, std::chrono::nanoseconds took) noexcept {
    const std::size_t cls = std::clamp<unsigned>(status / 100, 1, status_classes) - 1;
    bump(responses[cls]);
    const double seconds = std::chrono::duration<double>(took).count();
    // Buckets are upper-inclusive (Prometheus' "le"): the first bound >= seconds.
    const auto it = std::lower_bound(request_duration_bounds.begin(),
                                     request_duration_bounds.end(), seconds);
    bump(duration_buckets[static_cast<std::size_t>(it - request_duration_bounds.begin())]);
    bump(duration_ns, static_cast<std::uint64_t>(std::max<std::int64_t>(0, took.count())));
}

}  // namespace ringlb
