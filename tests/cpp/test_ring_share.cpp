// key_space_shares: the fraction of request ids each replica serves.
#include <gtest/gtest.h>

#include <numeric>

#include "ringlb/hash_ring.hpp"
#include "ringlb/ring_share.hpp"

namespace {

using ringlb::IdSpace;

std::shared_ptr<const ringlb::HashRing> ring_of(const std::string& scheme, int n) {
    ringlb::RingOptions o;
    o.scheme = scheme;
    auto ring = ringlb::make_ring(o);
    for (int i = 1; i <= n; ++i) {
        ring = ring->with_member({static_cast<std::uint32_t>(i), "Server" + std::to_string(i)});
    }
    return ring;
}

TEST(RingShare, TheAssignmentsRingGivesServer1The84PercentOfExperimentA1) {
    const auto ring = ring_of("assignment", 3);
    const auto shares = ringlb::key_space_shares(*ring, IdSpace::six_digit);
    ASSERT_EQ(shares.size(), 3u);
    EXPECT_NEAR(std::accumulate(shares.begin(), shares.end(), 0.0), 1.0, 1e-12);
    EXPECT_GT(shares[0], 0.83);
    EXPECT_LT(shares[0], 0.85);
}

TEST(RingShare, SixDigitSharesCountEveryIdExactly) {
    const auto ring = ring_of("splitmix64", 4);
    const auto shares = ringlb::key_space_shares(*ring, IdSpace::six_digit);
    std::vector<std::uint64_t> hits(4, 0);
    for (std::uint64_t id = 100000; id <= 999999; ++id) ++hits[ring->lookup(id)];
    for (std::size_t m = 0; m < 4; ++m) {
        EXPECT_DOUBLE_EQ(shares[m], static_cast<double>(hits[m]) / 900000.0);
    }
}

TEST(RingShare, MaglevSplitsHashedIdsEvenly) {
    const auto ring = ring_of("maglev", 4);
    const auto shares = ringlb::key_space_shares(*ring, IdSpace::hashed64);
    ASSERT_EQ(shares.size(), 4u);
    for (const double s : shares) EXPECT_NEAR(s, 0.25, 0.01);
    // A fixed sample: the same ring gives the same numbers.
    EXPECT_EQ(shares, ringlb::key_space_shares(*ring, IdSpace::hashed64));
}

TEST(RingShare, AnEmptyRingHasNoShares) {
    EXPECT_TRUE(ringlb::key_space_shares(*ring_of("ketama", 0), IdSpace::hashed64).empty());
}

}  // namespace
