// CoarseClock: std::chrono::steady_clock's time, read at the kernel's tick
// resolution (CLOCK_MONOTONIC_COARSE, a few milliseconds) for about a quarter
// of the cost. The router reads the time several times per request only to
// place deadlines that are hundreds of milliseconds away, where a tick of
// error does not matter. Its time points are steady_clock's (both count
// CLOCK_MONOTONIC), so the two can be compared and mixed.
#pragma once

#include <chrono>
#include <ctime>

namespace ringlb {

struct CoarseClock {
    static std::chrono::steady_clock::time_point now() noexcept {
        timespec ts{};
        clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
        return std::chrono::steady_clock::time_point(
            std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec)));
    }
};

}  // namespace ringlb
