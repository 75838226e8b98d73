// SlotRing against the assignment's arithmetic, worked independently here.
// The contract every ring keeps is in test_hash_ring_contract.cpp.
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <vector>

#include "ringlb/errors.hpp"
#include "ringlb/hash_ring.hpp"
#include "ringlb/hash_schemes.hpp"

namespace {

using ringlb::HashRing;
using ringlb::RingOptions;

std::shared_ptr<const HashRing> ring_with(std::initializer_list<std::uint32_t> ids,
                                          RingOptions o = {}) {
    auto r = ringlb::make_ring(o);
    for (auto id : ids) r = r->with_member({id, "Server" + std::to_string(id)});
    return r;
}

// The owner table for N = 3 placed by hand: Φ(i, j) = i² + j² + 2j + 25 mod 512 with linear probing.
std::vector<int> reference_owners(int n) {
    std::vector<int> owner(512, -1);
    for (int i = 1; i <= n; ++i) {
        for (int j = 0; j < 9; ++j) {
            int s = (i * i + j * j + 2 * j + 25) % 512;
            while (owner[static_cast<std::size_t>(s)] != -1) s = (s + 1) % 512;
            owner[static_cast<std::size_t>(s)] = i - 1;
        }
    }
    return owner;
}

TEST(SlotRing, AssignmentLayoutForThreeReplicasMatchesHandComputation) {
    auto r = ring_with({1, 2, 3});
    const auto owners = r->slot_owners();
    const auto expect = reference_owners(3);
    ASSERT_EQ(owners.size(), 512u);
    for (std::size_t s = 0; s < 512; ++s) EXPECT_EQ(owners[s], expect[s]) << "slot " << s;
}

TEST(SlotRing, GoldenSlots) {
    // Replica 1 goes first: Φ(1, 0) = 26, Φ(1, 1) = 1 + 1 + 2 + 25 = 29, Φ(1, 2) = 34.
    // Replica 2: Φ(2, 0) = 4 + 25 = 29 is taken, so it probes to 30; Φ(2, 1) = 32.
    // Replica 3: Φ(3, 0) = 9 + 25 = 34 is taken, so it probes to 35.
    auto r = ring_with({1, 2, 3});
    const auto o = r->slot_owners();
    EXPECT_EQ(o[26], 0);
    EXPECT_EQ(o[29], 0);
    EXPECT_EQ(o[34], 0);
    EXPECT_EQ(o[30], 1);
    EXPECT_EQ(o[32], 1);
    EXPECT_EQ(o[35], 2);
}

TEST(SlotRing, RequestGoesToFirstVirtualServerClockwise) {
    auto r = ring_with({1, 2, 3});
    const auto owners = r->slot_owners();
    const std::uint64_t ids[] = {0, 1, 3, 100000, 123456, 999999,
                                 std::numeric_limits<std::uint64_t>::max()};
    for (std::uint64_t id : ids) {
        const std::uint64_t r64 = id % 512;
        std::uint64_t s = (r64 * r64 + 2 * r64 + 17) % 512;
        EXPECT_EQ(r->slot_of(id), s);
        while (owners[s] == -1) s = (s + 1) % 512;
        EXPECT_EQ(r->lookup(id), static_cast<std::size_t>(owners[s])) << id;
    }
}

TEST(SlotRing, ExactlyOnAPointAndOnePast) {
    auto r = ring_with({1});
    // Replica 1's only points are Φ(1, j); a request hashed exactly onto 26 is served there,
    // one hashed past the last point wraps to the first.
    EXPECT_EQ(r->lookup(3), 0u);
    auto owners = r->slot_owners();
    EXPECT_EQ(owners[26], 0);
    EXPECT_EQ(owners[27], -1);
}

TEST(SlotRing, RemovalMovesNoOtherVirtualServer) {
    auto before = ring_with({1, 2, 3, 4, 5});
    auto after = before->without_member(3);
    const auto o1 = before->slot_owners();
    const auto o2 = after->slot_owners();
    for (std::size_t s = 0; s < o1.size(); ++s) {
        if (o1[s] == -1) {
            EXPECT_EQ(o2[s], -1);
        } else if (before->members()[static_cast<std::size_t>(o1[s])].id == 3) {
            EXPECT_EQ(o2[s], -1);
        } else {
            ASSERT_NE(o2[s], -1);
            EXPECT_EQ(after->members()[static_cast<std::size_t>(o2[s])].id,
                      before->members()[static_cast<std::size_t>(o1[s])].id);
        }
    }
    // Only keys that replica 3 served change hands.
    for (std::uint64_t id = 100000; id < 100000 + 20000; ++id) {
        const auto& was = before->members()[before->lookup(id)];
        const auto& now = after->members()[after->lookup(id)];
        if (was.id != 3) {
            EXPECT_EQ(was.id, now.id) << id;
        }
    }
}

TEST(SlotRing, CapacityIsFloorMOverK) {
    auto r = ringlb::make_ring({});
    for (std::uint32_t id = 1; id <= 56; ++id) r = r->with_member({id, std::string("S").append(std::to_string(id))});
    EXPECT_THROW(r->with_member({57, "S57"}), ringlb::RingFullError);
    EXPECT_EQ(r->members().size(), 56u);
    EXPECT_EQ(r->stats().occupied_slots, 504u);
}

TEST(SlotRing, QuadraticProbingPlacesEveryVirtualServer) {
    RingOptions o;
    o.probing = ringlb::Probing::quadratic;
    auto r = ring_with({1, 2, 3, 4}, o);
    EXPECT_EQ(r->stats().occupied_slots, 36u);
    // Replica 2's j = 0 lands on 29 (taken by replica 1's j = 1): 29 + 1 = 30 is free.
    EXPECT_EQ(r->slot_owners()[30], 1);
}

TEST(SlotRing, NoOverflowForLargeIds) {
    auto r = ring_with({0xffffffffU});
    EXPECT_EQ(r->members().size(), 1u);
    const std::uint64_t big = std::numeric_limits<std::uint64_t>::max();
    const std::uint64_t rr = big % 512;
    EXPECT_EQ(r->slot_of(big), (rr * rr + 2 * rr + 17) % 512);
}

TEST(SlotRing, BadOptionsAreRejected) {
    RingOptions o;
    o.scheme = "nope";
    EXPECT_THROW(ringlb::make_ring(o), std::invalid_argument);
    o = {};
    o.slots = 0x80000000U;  // (0 means the scheme's default: 512)
    EXPECT_THROW(ringlb::make_ring(o), std::invalid_argument);
    o = {};
    o.virtual_nodes = 513;
    EXPECT_THROW(ringlb::make_ring(o), std::invalid_argument);
}

TEST(KeyToRequestId, DecimalKeysAreTheIdItself) {
    EXPECT_EQ(ringlb::key_to_request_id("123456"), 123456u);
    EXPECT_EQ(ringlb::key_to_request_id("18446744073709551615"),
              std::numeric_limits<std::uint64_t>::max());
    // 2^64 does not fit: hashed, like any other non-decimal key.
    EXPECT_EQ(ringlb::key_to_request_id("18446744073709551616"),
              ringlb::hash_bytes("18446744073709551616"));
    EXPECT_EQ(ringlb::key_to_request_id("+5"), ringlb::hash_bytes("+5"));
    EXPECT_EQ(ringlb::key_to_request_id(""), ringlb::hash_bytes(""));
    EXPECT_EQ(ringlb::key_to_request_id("alice"), ringlb::key_to_request_id("alice"));
}

}  // namespace
