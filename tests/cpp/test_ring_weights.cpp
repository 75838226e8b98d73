// Weighted replicas (issue 13.8): ketama gives a replica weight × points,
// Maglev weight turns in its population, slot rings refuse weights.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "ringlb/hash_ring.hpp"
#include "ringlb/ketama_ring.hpp"
#include "ringlb/replica_set.hpp"

namespace ringlb {
namespace {

using RingPtr = std::shared_ptr<const HashRing>;

RingPtr weighted(const std::string& scheme, const std::vector<std::uint32_t>& weights,
                 std::uint32_t slots = 0) {
    RingOptions o;
    o.scheme = scheme;
    o.slots = slots;
    RingPtr r = make_ring(o);
    for (std::uint32_t i = 0; i < weights.size(); ++i) {
        r = r->with_member({i + 1, std::string("S").append(std::to_string(i + 1)), weights[i]});
    }
    return r;
}

// Keys per server id over `keys` random request ids.
std::map<std::uint32_t, std::size_t> loads(const RingPtr& r, std::size_t keys) {
    std::mt19937_64 rng(11);
    std::map<std::uint32_t, std::size_t> out;
    for (std::size_t k = 0; k < keys; ++k) ++out[r->members()[r->lookup(rng())].id];
    return out;
}

TEST(RingWeights, RangeIsCheckedEverywhere) {
    for (const auto& scheme : ring_scheme_names()) {
        RingPtr r = weighted(scheme, {});
        for (const std::int64_t bad : {std::int64_t{0}, std::int64_t{-1}, std::int64_t{257}}) {
            try {
                r->check_weight(bad);
                ADD_FAILURE() << scheme << " took weight " << bad;
            } catch (const std::invalid_argument& e) {
                EXPECT_EQ(std::string(e.what()),
                          "weight must be between 1 and 256, got " + std::to_string(bad));
            }
        }
        EXPECT_THROW(r->with_member({1, "a", 0}), std::invalid_argument) << scheme;
        EXPECT_NO_THROW(r->with_member({1, "a", 1})) << scheme;
    }
}

TEST(RingWeights, SlotSchemesRefuseWeights) {
    for (const auto& scheme : {"assignment", "linear", "splitmix64", "xxh3"}) {
        RingPtr r = weighted(scheme, {1, 1});
        EXPECT_FALSE(r->weighted());
        EXPECT_THROW(r->with_member({3, "S3", 2}), std::invalid_argument) << scheme;
        EXPECT_EQ(r->members().size(), 2u);
    }
    for (const auto& scheme : {"ketama", "ketama-xxh3", "maglev"}) {
        EXPECT_TRUE(weighted(scheme, {})->weighted()) << scheme;
    }
}

TEST(RingWeights, KetamaPlacesWeightTimesPoints) {
    RingPtr r = weighted("ketama", {1, 3});
    EXPECT_EQ(r->stats().occupied_slots, 4u * KetamaRing::kDefaultPoints);
    // Shares follow the weights: 1/4 and 3/4, within 4 sigma of 2048 points.
    const auto l = loads(r, 400000);
    EXPECT_NEAR(static_cast<double>(l.at(2)) / 400000, 0.75, 0.75 * 4 / std::sqrt(3 * 2048.0));
}

TEST(RingWeights, KetamaRaisingAWeightMovesKeysOntoThatReplicaOnly) {
    const RingPtr before = weighted("ketama", {1, 1, 1});
    const RingPtr after = weighted("ketama", {1, 2, 1});
    std::mt19937_64 rng(3);
    std::size_t moved = 0;
    for (int k = 0; k < 100000; ++k) {
        const std::uint64_t id = rng();
        const auto a = before->members()[before->lookup(id)].id;
        const auto b = after->members()[after->lookup(id)].id;
        if (a != b) {
            EXPECT_EQ(b, 2u);
            ++moved;
        }
    }
    EXPECT_GT(moved, 10000u);  // about 1/2 - 1/3 of the keys
}

TEST(RingWeights, MaglevEntriesFollowTheWeights) {
    const std::vector<std::uint32_t> w{1, 2, 3, 4};
    RingPtr r = weighted("maglev", w);
    std::map<std::uint32_t, std::size_t> entries;
    for (const auto o : r->slot_owners()) ++entries[r->members()[static_cast<std::size_t>(o)].id];
    const double m = 65537;
    for (std::uint32_t i = 0; i < w.size(); ++i) {
        const double want = m * w[i] / 10.0;
        EXPECT_NEAR(static_cast<double>(entries[i + 1]), want, want * 0.005) << "id " << i + 1;
    }
}

TEST(RingWeights, MaglevEqualWeightsAreTheUnweightedTable) {
    // Only the ratios count: all 7 is all 1, the paper's loop.
    EXPECT_EQ(weighted("maglev", {7, 7, 7}, 1009)->slot_owners(),
              weighted("maglev", {1, 1, 1}, 1009)->slot_owners());
}

TEST(RingWeights, MaglevLightReplicasKeepAnEntry) {
    // In round 1 every replica claims one entry, so candidates() finds all.
    RingPtr r = weighted("maglev", {256, 1, 1, 1, 256}, 13);
    std::vector<std::size_t> out(5);
    EXPECT_EQ(r->candidates(12345, out), 5u);
}

TEST(RingWeights, ReplicaSetKeepsTheWeightOffTheRing) {
    RingOptions o;
    o.scheme = "maglev";
    ReplicaSet set(o);
    set.add({{0, "A", "127.0.0.1", 1, 3}, {0, "B", "127.0.0.1", 2}});
    const auto before = set.snapshot()->ring->slot_owners();
    ASSERT_TRUE(set.set_serving(1, false));
    ASSERT_TRUE(set.set_serving(1, true));
    const auto snap = set.snapshot();
    EXPECT_EQ(snap->ring->members()[snap->ring->index_of(1U)].weight, 3u);
    // Back in join order B, A: the same member set, the same table by id.
    std::vector<std::uint32_t> ids_before, ids_after;
    for (auto o2 : before) ids_before.push_back(o2 == 0 ? 1 : 2);
    for (auto o2 : snap->ring->slot_owners()) {
        ids_after.push_back(snap->ring->members()[static_cast<std::size_t>(o2)].id);
    }
    EXPECT_EQ(ids_before, ids_after);
    EXPECT_THROW(set.add({{0, "C", "127.0.0.1", 3, 0}}), std::invalid_argument);
    ReplicaSet slots({});
    EXPECT_THROW(slots.add({{0, "C", "127.0.0.1", 3, 2}}), std::invalid_argument);
    EXPECT_TRUE(slots.snapshot()->registered.empty());
}

}  // namespace
}  // namespace ringlb
