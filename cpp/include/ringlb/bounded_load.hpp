// Consistent hashing with bounded loads (Mirrokni, Thorup, Zadimoghaddam,
// "Consistent Hashing with Bounded Loads", SODA 2018, arXiv:1608.01350).
//
// The rule: with `total` requests in flight and N replicas, the request about
// to be placed makes total + 1, so no replica may hold more than
//     cap = ceil(c × (total + 1) / N)
// requests. The request walks the candidates it is given and goes to the
// first replica whose load + 1 ≤ cap, i.e. load < cap. The router gives it
// the random jump's order (HashRing::Walk::jump, Chen et al. 2019,
// arXiv:1908.08762), not the clockwise one: with the clockwise order every
// key of a full replica overflows onto its neighbour, which fills and
// overflows onto the next (the cascade that paper measures); with the jump
// each key continues at positions drawn from its own hash, so the overflow
// spreads over all replicas and the same key always meets the same order.
//
// Worked example: c = 1.25, N = 4, total = 7 in flight → cap = ceil(1.25 × 8 /
// 4) = ceil(2.5) = 3. A key whose candidates are (2, 0, 3, 1) with loads
// {0: 1, 1: 2, 2: 3, 3: 1} skips replica 2 (3 + 1 > 3) and goes to replica 0.
//
// Why a full candidate list never comes up empty (c ≥ 1): if every one of the
// N replicas had load ≥ cap ≥ c(total + 1)/N, the loads would sum to at least
// c(total + 1) > total, which they cannot. So the fallback below (the first
// candidate, i.e. the plain consistent-hash choice) happens only when the
// caller passes fewer than N candidates or loads that were read while other
// threads were changing them; it keeps the key on its own replica rather than
// scattering it.
//
// Everything here is noexcept, allocation-free and O(candidates.size()): it
// runs on the router's hot path once per request.
#pragma once

#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <type_traits>

namespace ringlb {

// The result of bounded_load_pick when there is nothing to pick.
inline constexpr std::size_t bounded_load_none = static_cast<std::size_t>(-1);

// The most requests one replica may hold once the next request is placed:
// ceil(c × (total_in_flight + 1) / replicas), at least 1.
// Bounding is off (the largest uint64 is returned) when replicas == 0 or when
// c is not ≥ 1 (NaN, or the router's "0 = off"). A quotient within a relative
// 1e-12 of an integer counts as that integer, so that c = 1.1, total + 1 = 10,
// N = 11 gives 1 and not 2 through rounding error.
inline std::uint64_t bounded_load_cap(std::uint64_t total_in_flight, std::size_t replicas,
                                      double c) noexcept {
    constexpr auto unbounded = std::numeric_limits<std::uint64_t>::max();
    if (replicas == 0 || !(c >= 1.0)) return unbounded;
    const double x = c * (static_cast<double>(total_in_flight) + 1.0) /
                     static_cast<double>(replicas);
    if (!(x < 9.0e18)) return unbounded;  // beyond uint64 range or +inf: no bound to enforce
    const double nearest = std::round(x);
    const double cap = std::fabs(x - nearest) <= 1e-12 * x ? nearest : std::ceil(x);
    return cap < 1.0 ? 1 : static_cast<std::uint64_t>(cap);
}

// The member index that a request goes to under bounded loads.
//   candidates: member indices in the ring's retry order (from
//               HashRing::candidates), the ring's own choice first. Ideally
//               all N replicas, so that one always qualifies.
//   load_of:    load_of(member index) → requests that replica has in flight;
//               must not throw (this function is noexcept).
//   total_in_flight: requests in flight on all replicas, not counting this one.
//   replicas:   N, the number of replicas serving.
//   c:          the balance parameter (≥ 1; e.g. 1.25 allows 25 % above the mean).
// Returns the first candidate whose load + 1 ≤ bounded_load_cap(total, N, c);
// candidates[0] when none qualifies or bounding is off; bounded_load_none when
// candidates is empty.
template <class LoadOf>
    requires std::invocable<const LoadOf&, std::size_t> &&
             std::convertible_to<std::invoke_result_t<const LoadOf&, std::size_t>, std::uint64_t>
std::size_t bounded_load_pick(std::span<const std::size_t> candidates, const LoadOf& load_of,
                              std::uint64_t total_in_flight, std::size_t replicas,
                              double c) noexcept {
    if (candidates.empty()) return bounded_load_none;
    const std::uint64_t cap = bounded_load_cap(total_in_flight, replicas, c);
    for (const std::size_t idx : candidates) {
        const std::uint64_t load = load_of(idx);
        if (load < cap) return idx;  // load + 1 <= cap without overflow at load = max
    }
    return candidates.front();
}

// The same, with loads[member index] as the loads. A candidate at or past
// loads.size() never qualifies (its load is unknown), so it is chosen only as
// the fallback candidates[0].
inline std::size_t bounded_load_pick(std::span<const std::size_t> candidates,
                                     std::span<const std::uint64_t> loads,
                                     std::uint64_t total_in_flight, std::size_t replicas,
                                     double c) noexcept {
    return bounded_load_pick(
        candidates,
        [loads](std::size_t idx) noexcept {
            return idx < loads.size() ? loads[idx] : std::numeric_limits<std::uint64_t>::max();
        },
        total_in_flight, replicas, c);
}

}  // namespace ringlb
