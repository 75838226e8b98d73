#include "ringlb/bounded_load.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "ringlb/hash_ring.hpp"

namespace ringlb {
namespace {

using Loads = std::vector<std::uint64_t>;
using Cands = std::vector<std::size_t>;

TEST(BoundedLoadCap, MatchesTheFormula) {
    // ceil(c (total + 1) / N)
    EXPECT_EQ(bounded_load_cap(7, 4, 1.25), 3u);     // ceil(2.5)
    EXPECT_EQ(bounded_load_cap(0, 3, 1.25), 1u);     // ceil(0.4166) and never below 1
    EXPECT_EQ(bounded_load_cap(11, 4, 1.0), 3u);     // exactly 3
    EXPECT_EQ(bounded_load_cap(99, 10, 1.25), 13u);  // ceil(12.5)
    EXPECT_EQ(bounded_load_cap(999, 1, 2.0), 2000u);
}

TEST(BoundedLoadCap, RoundingErrorDoesNotLoosenAnExactQuotient) {
    // 1.1 × 10 is 11.000000000000002 in binary floating point.
    EXPECT_EQ(bounded_load_cap(9, 11, 1.1), 1u);
    EXPECT_EQ(bounded_load_cap(29, 33, 1.1), 1u);
    EXPECT_EQ(bounded_load_cap(99, 11, 1.1), 10u);
}

TEST(BoundedLoadCap, OffWhenCBelowOneOrNoReplicas) {
    constexpr auto max = std::numeric_limits<std::uint64_t>::max();
    EXPECT_EQ(bounded_load_cap(10, 3, 0.0), max);
    EXPECT_EQ(bounded_load_cap(10, 3, 0.99), max);
    EXPECT_EQ(bounded_load_cap(10, 3, -1.0), max);
    EXPECT_EQ(bounded_load_cap(10, 3, std::numeric_limits<double>::quiet_NaN()), max);
    EXPECT_EQ(bounded_load_cap(10, 0, 1.25), max);
    EXPECT_EQ(bounded_load_cap(10, 3, std::numeric_limits<double>::infinity()), max);
    EXPECT_EQ(bounded_load_cap(max, 1, 1.25), max);  // no overflow at the top
}

TEST(BoundedLoadPick, WorkedExampleFromTheHeader) {
    const Cands cands{2, 0, 3, 1};
    const Loads loads{1, 2, 3, 1};  // total 7, cap 3 at c = 1.25
    EXPECT_EQ(bounded_load_pick(cands, loads, 7, 4, 1.25), 0u);
}

TEST(BoundedLoadPick, FirstCandidateWhenItHasRoom) {
    const Cands cands{1, 0, 2};
    const Loads loads{1, 1, 0};  // total 2, N 3 → cap ceil(1.25) = 2
    EXPECT_EQ(bounded_load_pick(cands, loads, 2, 3, 1.25), 1u);
}

TEST(BoundedLoadPick, EmptyCandidatesGiveNone) {
    const Loads loads{0, 0};
    EXPECT_EQ(bounded_load_pick(std::span<const std::size_t>{}, loads, 0, 2, 1.25),
              bounded_load_none);
}

TEST(BoundedLoadPick, FallsBackToTheFirstCandidateWhenNoneQualifies) {
    // Only two of three replicas offered, both full: the ring's own choice.
    const Cands cands{2, 1};
    const Loads loads{0, 5, 5};  // total 10, N 3, c 1.25 → cap ceil(4.58) = 5
    EXPECT_EQ(bounded_load_pick(cands, loads, 10, 3, 1.25), 2u);
}

TEST(BoundedLoadPick, BoundingOffReturnsTheRingChoice) {
    const Cands cands{0, 1};
    const Loads loads{1000, 0};
    EXPECT_EQ(bounded_load_pick(cands, loads, 1000, 2, 0.0), 0u);
    EXPECT_EQ(bounded_load_pick(cands, loads, 1000, 2, std::numeric_limits<double>::quiet_NaN()),
              0u);
    EXPECT_EQ(bounded_load_pick(cands, loads, 1000, 2, 1.25), 1u);
}

TEST(BoundedLoadPick, CandidateWithoutALoadNeverQualifies) {
    const Cands cands{7, 1, 0};
    const Loads loads{0, 0};
    EXPECT_EQ(bounded_load_pick(cands, loads, 0, 3, 1.25), 1u);
    const Cands only_unknown{7, 9};
    EXPECT_EQ(bounded_load_pick(only_unknown, loads, 0, 3, 1.25), 7u);
}

TEST(BoundedLoadPick, AcceptsACallable) {
    const Cands cands{0, 1, 2};
    const std::uint64_t raw[3] = {4, 4, 0};
    auto load_of = [&raw](std::size_t i) { return raw[i]; };
    EXPECT_EQ(bounded_load_pick(cands, load_of, 8, 3, 1.25), 2u);  // cap ceil(3.75) = 4
}

// A simulated run: requests arrive on keys drawn from `keys` distinct values
// (1 = every request on the same key, the worst case for plain consistent
// hashing) and leave at random. Every placement must respect the cap, and with
// all N replicas as candidates the fallback must never be needed.
void simulate(double c, std::size_t replicas, std::uint64_t keys, std::uint64_t seed,
              HashRing::Walk walk) {
    RingOptions opt;
    opt.scheme = "splitmix64";
    auto ring = make_ring(opt);
    for (std::uint32_t id = 1; id <= replicas; ++id) {
        ring = ring->with_member({id, std::to_string(id)});
    }
    std::mt19937_64 rng(seed);
    std::uniform_int_distribution<std::uint64_t> key(1, keys);
    Loads loads(replicas, 0);
    std::vector<std::size_t> in_flight;  // the replica of each open request
    std::uint64_t total = 0;
    std::vector<std::size_t> cands(replicas);
    std::size_t skipped = 0;
    for (int step = 0; step < 20000; ++step) {
        // Arrivals outnumber departures 3:2 until 400 are open, then 1:1.
        const bool arrive = in_flight.empty() ||
                            (in_flight.size() < 400 ? rng() % 5 < 3 : rng() % 2 == 0);
        if (arrive) {
            const std::size_t n = ring->candidates(key(rng), cands, walk);
            ASSERT_EQ(n, replicas);
            const std::uint64_t cap = bounded_load_cap(total, replicas, c);
            const std::size_t pick = bounded_load_pick(cands, loads, total, replicas, c);
            ASSERT_LT(pick, replicas);
            ASSERT_LE(loads[pick] + 1, cap) << "c=" << c << " step=" << step;
            if (pick != cands[0]) ++skipped;
            ++loads[pick];
            ++total;
            in_flight.push_back(pick);
        } else {
            const std::size_t k = rng() % in_flight.size();
            --loads[in_flight[k]];
            --total;
            in_flight[k] = in_flight.back();
            in_flight.pop_back();
        }
    }
    // One hot key must spill over, unless c >= N lets one replica take all.
    if (keys == 1 && c < static_cast<double>(replicas)) {
        EXPECT_GT(skipped, 0u);
    }
}

TEST(BoundedLoadSimulation, NeverExceedsTheCap) {
    for (double c : {1.0, 1.05, 1.25, 2.0}) {
        for (std::size_t n : {2u, 3u, 5u, 8u}) {
            for (const auto walk : {HashRing::Walk::clockwise, HashRing::Walk::jump}) {
                simulate(c, n, 1, 11, walk);
                simulate(c, n, 20, 12, walk);
                simulate(c, n, 1u << 30, 13, walk);
            }
        }
    }
}

std::shared_ptr<const HashRing> ring_of(std::size_t replicas, const std::string& scheme) {
    RingOptions opt;
    opt.scheme = scheme;
    auto ring = make_ring(opt);
    for (std::uint32_t id = 1; id <= replicas; ++id) {
        ring = ring->with_member({id, "Server" + std::to_string(id)});
    }
    return ring;
}

// Where the requests of one hot replica go once it is full and every other
// replica has room: the second candidate of each key. Keys from one stretch of
// the ring (one slot of the hot replica) share their clockwise neighbour.
std::vector<std::size_t> overflow_of_one_slot(const HashRing& ring, HashRing::Walk walk,
                                              std::size_t keys) {
    const std::size_t n = ring.members().size();
    std::uint64_t id = 1;
    while (ring.lookup(id) != 0) ++id;
    const std::uint64_t slot = ring.slot_of(id);
    std::vector<std::size_t> landed(n, 0);
    Cands cands(n);
    Loads loads(n, 0);
    loads[0] = 1000;  // the hot replica: far above any cap
    const std::uint64_t total = 1000;
    for (std::size_t found = 0; found < keys; ++id) {
        if (ring.slot_of(id) != slot) continue;
        ++found;
        EXPECT_EQ(ring.candidates(id, cands, walk), n);
        EXPECT_EQ(cands[0], 0u);
        ++landed[bounded_load_pick(cands, loads, total, n, 1.25)];
    }
    return landed;
}

// The slot rings, with K = 9 virtual servers per replica, are where the walk
// matters most: all the keys of one of the hot replica's arcs have one
// clockwise neighbour. (Ketama's 2,048 points per replica already scatter a
// replica's clockwise neighbours; its slot_of is a 64-bit position, so keys
// cannot be grouped by slot there.)
TEST(BoundedLoadJump, AHotReplicasOverflowSpreadsInsteadOfCascadingOntoItsNeighbour) {
    for (const std::string scheme : {"splitmix64", "xxh3"}) {
        const auto ring = ring_of(8, scheme);
        const std::size_t keys = 700;
        const auto clockwise = overflow_of_one_slot(*ring, HashRing::Walk::clockwise, keys);
        const auto jump = overflow_of_one_slot(*ring, HashRing::Walk::jump, keys);
        EXPECT_EQ(clockwise[0], 0u) << scheme;
        EXPECT_EQ(jump[0], 0u) << scheme;
        // Clockwise: every key of that stretch lands on the one neighbour.
        EXPECT_EQ(*std::max_element(clockwise.begin(), clockwise.end()), keys) << scheme;
        // The jump: on every other replica, none with much more than its 1/7.
        for (std::size_t r = 1; r < 8; ++r) EXPECT_GT(jump[r], keys / 7 / 3) << scheme << " " << r;
        EXPECT_LT(*std::max_element(jump.begin(), jump.end()), keys * 2 / 7) << scheme;
    }
}

TEST(BoundedLoadJump, TheSameKeyMeetsTheSameOrder) {
    const auto ring = ring_of(6, "xxh3");
    Cands a(6), b(6);
    std::size_t differs = 0;
    for (std::uint64_t id = 0; id < 5000; ++id) {
        ASSERT_EQ(ring->candidates(id, a, HashRing::Walk::jump), 6u);
        ASSERT_EQ(ring->candidates(id, b, HashRing::Walk::jump), 6u);
        ASSERT_EQ(a, b) << id;
        ASSERT_EQ(ring->candidates(id, b, HashRing::Walk::clockwise), 6u);
        if (a[1] != b[1]) ++differs;
    }
    // The jump's second choice is the clockwise neighbour only by chance (~1/5).
    EXPECT_GT(differs, 5000u * 6 / 10);
}

}  // namespace
}  // namespace ringlb
