// KetamaRing's own promises: pinned hashes, exact successors, balance and
// minimal disruption. The contract every ring keeps is in
// test_hash_ring_contract.cpp.
#include "ringlb/ketama_ring.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <stdexcept>
#include <vector>

#include "mix_inverse.hpp"
#include "ringlb/errors.hpp"
#include "ringlb/hash_schemes.hpp"

namespace ringlb {
namespace {

using testing::unmix64;
using RingPtr = std::shared_ptr<const HashRing>;

RingPtr ketama(std::vector<std::uint32_t> ids, std::uint32_t points = 0,
               const char* scheme = "ketama") {
    RingOptions o;
    o.scheme = scheme;
    o.virtual_nodes = points;
    RingPtr r = make_ring(o);
    for (auto id : ids) r = r->with_member({id, std::to_string(id)});
    return r;
}

const KetamaRing& as_ketama(const RingPtr& r) { return dynamic_cast<const KetamaRing&>(*r); }

// Server id serving request_id.
std::uint32_t owner_id(const RingPtr& r, std::uint64_t request_id) {
    return r->members()[r->lookup(request_id)].id;
}

// The reference answer: the first point at or after the key's position by a
// plain binary search, wrapping to the first point.
std::uint32_t reference_owner(const RingPtr& r, std::uint64_t request_id) {
    const auto pts = as_ketama(r).points();
    const auto owners = r->slot_owners();
    const auto it = std::lower_bound(pts.begin(), pts.end(), r->slot_of(request_id));
    const auto i = it == pts.end() ? 0 : static_cast<std::size_t>(it - pts.begin());
    return r->members()[static_cast<std::size_t>(owners[i])].id;
}

TEST(KetamaRing, OptionsDefaultsAndErrors) {
    RingOptions o;
    o.scheme = "ketama";
    const RingOptions r = resolve_ring_options(o);
    EXPECT_EQ(r.virtual_nodes, KetamaRing::kDefaultPoints);
    EXPECT_EQ(r.slots, 0u);
    EXPECT_EQ(make_ring(o)->options().virtual_nodes, KetamaRing::kDefaultPoints);

    o.slots = 512;  // the assignment's M means nothing on a 64-bit circle
    EXPECT_THROW(make_ring(o), std::invalid_argument);
    o.slots = 0;
    o.virtual_nodes = KetamaRing::kMaxPoints + 1;
    EXPECT_THROW(make_ring(o), std::invalid_argument);
    o.virtual_nodes = 160;
    o.probing = Probing::quadratic;
    EXPECT_THROW(make_ring(o), std::invalid_argument);
    o.probing = Probing::linear;
    EXPECT_EQ(make_ring(o)->options().virtual_nodes, 160u);
    EXPECT_EQ(make_ring(o)->max_members(), KetamaRing::kMaxRingPoints / 160);
}

TEST(KetamaRing, GoldenPointsAndLookups) {
    // Pinned: changing a hash would silently remap every deployment's keys.
    const auto* s = KetamaRing::find_scheme("ketama");
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(s->key(0), 0u);  // splitmix64's finalizer fixes 0
    EXPECT_EQ(s->key(1), mix64(1));
    EXPECT_EQ(s->point(1, 0), mix64(mix64(1) + 0x9e3779b97f4a7c15ULL));
    EXPECT_EQ(s->point(1, 0), 0xbfef8030ddc2d772ULL);
    EXPECT_EQ(s->point(2, 7), 0x92f1f140930f6530ULL);

    // Cross-checked against a pure-Python ring (tests/python/test_quality.py).
    const RingPtr r = ketama({1, 2, 3}, 160);
    const std::uint64_t ids[] = {0, 1, 100000, 123456, 999999, ~0ULL};
    const std::uint32_t want[] = {3, 3, 2, 2, 3, 3};
    for (std::size_t k = 0; k < std::size(ids); ++k) {
        EXPECT_EQ(owner_id(r, ids[k]), want[k]) << "request id " << ids[k];
    }
}

TEST(KetamaRing, EdgePositions) {
    for (std::uint32_t points : {1u, 3u, 160u, 2048u}) {
        const RingPtr r = ketama({1, 2, 3, 4, 5}, points);
        const auto pts = as_ketama(r).points();
        const auto owners = r->slot_owners();
        ASSERT_EQ(pts.size(), 5u * points);
        ASSERT_TRUE(std::is_sorted(pts.begin(), pts.end()));
        const auto id_at = [&](std::size_t i) {
            return r->members()[static_cast<std::size_t>(owners[i])].id;
        };
        // Position 0 → the first point; the top → wraps to the first point.
        EXPECT_EQ(owner_id(r, unmix64(0)), id_at(0));
        EXPECT_EQ(owner_id(r, unmix64(~0ULL)), pts.back() == ~0ULL ? id_at(pts.size() - 1)
                                                                      : id_at(0));
        for (std::size_t i = 0; i < pts.size(); i += std::max<std::size_t>(1, pts.size() / 97)) {
            // Exactly on a point → that point's owner; one past → the next point's.
            EXPECT_EQ(owner_id(r, unmix64(pts[i])), id_at(i));
            if (pts[i] != ~0ULL && (i + 1 == pts.size() || pts[i + 1] != pts[i] + 1)) {
                EXPECT_EQ(owner_id(r, unmix64(pts[i] + 1)),
                          id_at(i + 1 == pts.size() ? 0 : i + 1));
            }
            if (pts[i] != 0) {
                EXPECT_EQ(owner_id(r, unmix64(pts[i] - 1)), id_at(i));
            }
        }
        // The last point exactly, and one past it (wraps).
        EXPECT_EQ(owner_id(r, unmix64(pts.back())), id_at(pts.size() - 1));
        if (pts.back() != ~0ULL) {
            EXPECT_EQ(owner_id(r, unmix64(pts.back() + 1)), id_at(0));
        }
    }
}

TEST(KetamaRing, AgreesWithBinarySearch) {
    std::mt19937_64 rng(7);
    for (const char* scheme : {"ketama", "ketama-xxh3"}) {
        for (std::uint32_t points : {1u, 2u, 40u, 2048u}) {
            const RingPtr r = ketama({3, 1, 4, 15, 9, 2, 6}, points, scheme);
            for (int k = 0; k < 20000; ++k) {
                const std::uint64_t id = rng();
                ASSERT_EQ(owner_id(r, id), reference_owner(r, id)) << scheme << " " << id;
            }
        }
    }
}

TEST(KetamaRing, EmptyRingHasNoPoints) {
    EXPECT_TRUE(ketama({})->slot_owners().empty());
    EXPECT_TRUE(ketama({7})->without_member(7)->slot_owners().empty());
}

TEST(KetamaRing, DeterministicAndIndependentOfJoinOrder) {
    const RingPtr a = ketama({1, 2, 3, 4});
    const RingPtr b = ketama({4, 2, 1, 3});
    const RingPtr c = ketama({1, 2, 3, 4, 5})->without_member(5);
    std::mt19937_64 rng(3);
    for (int k = 0; k < 50000; ++k) {
        const std::uint64_t id = rng();
        const auto want = owner_id(a, id);
        ASSERT_EQ(owner_id(b, id), want);
        ASSERT_EQ(owner_id(c, id), want);
    }
}

TEST(KetamaRing, MinimalDisruption) {
    const RingPtr base = ketama({1, 2, 3, 4, 5});
    const RingPtr added = base->with_member({6, "6"});
    const RingPtr removed = base->without_member(3);
    std::mt19937_64 rng(11);
    constexpr int kKeys = 200000;
    int moved_add = 0, moved_rm = 0;
    for (int k = 0; k < kKeys; ++k) {
        const std::uint64_t id = rng();
        const auto before = owner_id(base, id);
        const auto after_add = owner_id(added, id);
        if (after_add != before) {
            ASSERT_EQ(after_add, 6u) << "a key moved between replicas that stayed";
            ++moved_add;
        }
        const auto after_rm = owner_id(removed, id);
        if (before != 3) {
            ASSERT_EQ(after_rm, before) << "a key moved between replicas that stayed";
        } else {
            ++moved_rm;
        }
    }
    // About 1/6 and 1/5 of the keys, within the 2048-point spread (σ ≈ 2.2 %).
    EXPECT_NEAR(moved_add / double(kKeys), 1.0 / 6, 0.1 / 6);
    EXPECT_NEAR(moved_rm / double(kKeys), 1.0 / 5, 0.1 / 5);
}

TEST(KetamaRing, BalanceWithinItsBoundAtAMillionKeys) {
    // A replica's share is a sum of P arcs: relative spread ≈ 1/sqrt(P), so
    // the largest of N stays under 1 + 4/sqrt(P) (plus 10^6-key sampling noise).
    std::mt19937_64 rng(5);
    for (std::uint32_t n : {3u, 4u, 5u, 6u, 50u}) {
        std::vector<std::uint32_t> ids(n);
        for (std::uint32_t i = 0; i < n; ++i) ids[i] = i + 1;
        const RingPtr r = ketama(ids);
        std::vector<std::uint64_t> count(n, 0);
        constexpr int kKeys = 1000000;
        for (int k = 0; k < kKeys; ++k) ++count[r->lookup(rng())];
        const double mean = double(kKeys) / n;
        const double max_over_mean = *std::max_element(count.begin(), count.end()) / mean;
        EXPECT_LE(max_over_mean, 1.0 + 4.0 / std::sqrt(double(KetamaRing::kDefaultPoints)))
            << "N = " << n;
    }
}

TEST(KetamaRing, StatsCountPoints) {
    const RingPtr r = ketama({1, 2, 3}, 100);
    EXPECT_EQ(r->stats().occupied_slots, 300u);
    EXPECT_GE(r->stats().memory_bytes, 300u * 12);
    EXPECT_EQ(r->slot_owners().size(), 300u);
    EXPECT_EQ(r->slot_servers(), r->slot_owners());
}

}  // namespace
}  // namespace ringlb
