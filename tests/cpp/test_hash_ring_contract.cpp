// The HashRing contract (hash_ring.hpp), checked once for every scheme the
// registry lists: a new ring type or scheme is tested here without a line
// added. What only one scheme promises (its layout, balance, disruption)
// stays in test_<type>_ring.cpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "ringlb/hash_ring.hpp"

namespace ringlb {
namespace {

using RingPtr = std::shared_ptr<const HashRing>;

class HashRingContract : public ::testing::TestWithParam<std::string> {
protected:
    // The scheme with its default sizes, replicas joined in the order given.
    RingPtr ring_of(std::initializer_list<std::uint32_t> ids) const {
        RingOptions o;
        o.scheme = GetParam();
        RingPtr r = make_ring(o);
        for (auto id : ids) r = r->with_member({id, "Server" + std::to_string(id)});
        return r;
    }
};

// Request ids that reach the edges of every hash: 0, small, six-digit, the largest.
const std::uint64_t kEdgeIds[] = {0, 1, 3, 100000, 123456, 999999, ~0ULL};

TEST_P(HashRingContract, IsListedOnceAndBuildsItsScheme) {
    const auto names = ring_scheme_names();
    EXPECT_EQ(std::count(names.begin(), names.end(), GetParam()), 1);
    const RingPtr r = ring_of({});
    EXPECT_EQ(r->options().scheme, GetParam());
    EXPECT_GE(r->max_members(), 1u);
}

TEST_P(HashRingContract, ResolvingTwiceChangesNothing) {
    RingOptions o;
    o.scheme = GetParam();
    const RingOptions once = resolve_ring_options(o);
    const RingOptions twice = resolve_ring_options(once);
    EXPECT_EQ(once.slots, twice.slots);
    EXPECT_EQ(once.virtual_nodes, twice.virtual_nodes);
    // A built ring reports what it resolved to.
    EXPECT_EQ(make_ring(o)->options().slots, once.slots);
    EXPECT_EQ(make_ring(o)->options().virtual_nodes, once.virtual_nodes);
}

TEST_P(HashRingContract, EmptyRingServesNothing) {
    const RingPtr r = ring_of({});
    std::vector<std::size_t> out(3);
    for (std::uint64_t id : kEdgeIds) {
        EXPECT_EQ(r->lookup(id), HashRing::npos) << id;
        EXPECT_EQ(r->candidates(id, out), 0u) << id;
    }
    EXPECT_EQ(r->stats().occupied_slots, 0u);
}

TEST_P(HashRingContract, OneReplicaServesEverything) {
    const RingPtr r = ring_of({7});
    std::vector<std::size_t> out(3);
    for (std::uint64_t id : kEdgeIds) {
        EXPECT_EQ(r->lookup(id), 0u) << id;
        ASSERT_EQ(r->candidates(id, out), 1u) << id;
        EXPECT_EQ(out[0], 0u);
    }
}

TEST_P(HashRingContract, RemovingTheLastReplicaEmptiesTheRing) {
    const RingPtr r = ring_of({3})->without_member(3);
    EXPECT_TRUE(r->members().empty());
    EXPECT_EQ(r->lookup(1), HashRing::npos);
    EXPECT_EQ(r->lookup(42), HashRing::npos);
    EXPECT_THROW(r->without_member(3), std::invalid_argument);
}

TEST_P(HashRingContract, RejectsDuplicatesIdZeroAndUnknownIds) {
    const RingPtr r = ring_of({1, 2});
    EXPECT_THROW(r->with_member({1, "other"}), std::invalid_argument);
    EXPECT_THROW(r->with_member({2, "other"}), std::invalid_argument);
    EXPECT_THROW(r->with_member({5, "Server1"}), std::invalid_argument);
    EXPECT_THROW(r->with_member({0, "zero"}), std::invalid_argument);
    EXPECT_THROW(r->with_member({5, ""}), std::invalid_argument);
    EXPECT_THROW(r->without_member(9), std::invalid_argument);
    EXPECT_EQ(r->members().size(), 2u);
}

TEST_P(HashRingContract, MembershipChangesLeaveTheOldRingAsItWas) {
    const RingPtr before = ring_of({1, 2, 3});
    std::vector<std::size_t> served;
    for (std::uint64_t id = 100000; id < 101000; ++id) served.push_back(before->lookup(id));
    const RingPtr added = before->with_member({4, "Server4"});
    const RingPtr removed = before->without_member(2);
    ASSERT_EQ(before->members().size(), 3u);
    for (std::uint64_t id = 100000; id < 101000; ++id) {
        ASSERT_EQ(before->lookup(id), served[id - 100000]) << id;
    }
    // Members keep their join order; indices above a removed one shift down.
    ASSERT_EQ(added->members().size(), 4u);
    EXPECT_EQ(added->members()[3].id, 4u);
    ASSERT_EQ(removed->members().size(), 2u);
    EXPECT_EQ(removed->members()[0].id, 1u);
    EXPECT_EQ(removed->members()[1].id, 3u);
    EXPECT_EQ(removed->index_of(3), 1u);
    EXPECT_EQ(removed->index_of(std::string_view("Server2")), HashRing::npos);
}

TEST_P(HashRingContract, CandidatesAreDistinctAndStartWithTheOwner) {
    std::mt19937_64 rng(9);
    for (const RingPtr& r : {ring_of({1, 2, 3}), ring_of({1, 2, 3, 4, 5, 6})}) {
        const std::size_t members = r->members().size();
        std::vector<std::size_t> out(10);
        for (const auto walk : {HashRing::Walk::clockwise, HashRing::Walk::jump}) {
            for (int k = 0; k < 2000; ++k) {
                const std::uint64_t id = k < 1000 ? 100000 + static_cast<std::uint64_t>(k) : rng();
                ASSERT_EQ(r->candidates(id, out, walk), members) << id;
                EXPECT_EQ(out[0], r->lookup(id)) << id;
                const std::set<std::size_t> distinct(out.begin(),
                                                     out.begin() + static_cast<std::ptrdiff_t>(members));
                EXPECT_EQ(distinct.size(), members) << id;
                EXPECT_LT(*distinct.rbegin(), members) << id;
                // A shorter buffer gets the same order, cut short; a second call the same.
                for (const std::size_t len : {std::size_t{1}, std::size_t{2}, members}) {
                    std::vector<std::size_t> few(len);
                    ASSERT_EQ(r->candidates(id, few, walk), len);
                    EXPECT_TRUE(std::equal(few.begin(), few.end(), out.begin())) << id;
                }
            }
        }
    }
}

TEST_P(HashRingContract, NextFreeIdIsTheSmallestUnused) {
    EXPECT_EQ(ring_of({1, 2, 4})->next_free_id(), 3u);
    EXPECT_EQ(ring_of({2, 3})->next_free_id(), 1u);
    EXPECT_EQ(ring_of({})->next_free_id(), 1u);
}

INSTANTIATE_TEST_SUITE_P(EveryScheme, HashRingContract, ::testing::ValuesIn(ring_scheme_names()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                             // Test names allow [A-Za-z0-9_] only: "ketama-xxh3" → "ketama_xxh3".
                             std::string name = info.param;
                             std::replace(name.begin(), name.end(), '-', '_');
                             return name;
                         });

}  // namespace
}  // namespace ringlb
