// Canonical rings (issue 15.1): the same set of (id, hostname, weight) gives
// the same ring whatever order the replicas joined and left in. Rings are
// built from 1,000 random join/leave histories that end in one member set and
// compared entry by entry, by server id (member indices follow join order).
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "ringlb/hash_ring.hpp"
#include "ringlb/errors.hpp"
#include "ringlb/ketama_ring.hpp"

namespace ringlb {
namespace {

using RingPtr = std::shared_ptr<const HashRing>;

constexpr std::uint32_t kPool = 12;  // ids 1..12 come and go
const std::set<std::uint32_t> kFinal{2, 3, 5, 7, 8, 11};
constexpr int kHistories = 1000;

RingOptions options(const std::string& scheme, bool canonical) {
    RingOptions o;
    o.scheme = scheme;
    o.canonical = canonical;
    // Small tables keep 1,000 histories fast (a Maglev change rebuilds its
    // table, a ketama one its points); order-freedom does not depend on size.
    if (scheme == "maglev") o.slots = 1009;
    if (scheme.rfind("ketama", 0) == 0) o.virtual_nodes = 64;
    return o;
}

Member member(const RingPtr& ring, std::uint32_t id) {
    // Weights differ by id where the scheme takes them.
    return {id, std::string("S").append(std::to_string(id)), ring->weighted() ? 1 + id % 3 : 1};
}

// Everything a router reads from a ring, by server id: who is placed at and
// who serves each slot (point, table entry), the owner and the retry order of
// sample request ids, and for ketama the point positions.
std::vector<std::uint64_t> fingerprint(const RingPtr& r) {
    const auto id_of = [&r](std::int64_t idx) -> std::uint64_t {
        return idx < 0 ? 0 : r->members()[static_cast<std::size_t>(idx)].id;
    };
    std::vector<std::uint64_t> out;
    for (const auto o : r->slot_owners()) out.push_back(id_of(o));
    for (const auto o : r->slot_servers()) out.push_back(id_of(o));
    std::mt19937_64 keys(99);
    for (int k = 0; k < 256; ++k) {
        std::vector<std::size_t> c(4);
        c.resize(r->candidates(keys(), c));
        for (const auto idx : c) out.push_back(id_of(static_cast<std::int64_t>(idx)));
        out.push_back(~0ULL);
    }
    if (const auto* ketama = dynamic_cast<const KetamaRing*>(r.get())) {
        out.insert(out.end(), ketama->points().begin(), ketama->points().end());
    }
    return out;
}

// A ring after a random history of joins and leaves among ids 1..kPool that
// ends with exactly kFinal on it.
RingPtr random_history(const RingOptions& o, std::mt19937_64& rng) {
    RingPtr r = make_ring(o);
    const auto present = [&r](std::uint32_t id) { return r->index_of(id) != HashRing::npos; };
    const int steps = static_cast<int>(rng() % 16);
    for (int s = 0; s < steps; ++s) {
        const auto id = static_cast<std::uint32_t>(1 + rng() % kPool);
        r = present(id) ? r->without_member(id) : r->with_member(member(r, id));
    }
    // Then to the final set, leaves and joins shuffled together.
    std::vector<std::uint32_t> todo;
    for (std::uint32_t id = 1; id <= kPool; ++id) {
        if (present(id) != (kFinal.count(id) == 1)) todo.push_back(id);
    }
    std::shuffle(todo.begin(), todo.end(), rng);
    for (const auto id : todo) {
        r = present(id) ? r->without_member(id) : r->with_member(member(r, id));
    }
    return r;
}

// The ring built by joining kFinal in ascending id order, nothing else.
RingPtr ascending_build(const RingOptions& o) {
    RingPtr r = make_ring(o);
    for (const auto id : kFinal) r = r->with_member(member(r, id));
    return r;
}

class CanonicalRing : public testing::TestWithParam<std::string> {};

TEST_P(CanonicalRing, ThousandHistoriesOfOneSetGiveOneRing) {
    const RingOptions o = options(GetParam(), true);
    const auto want = fingerprint(ascending_build(o));
    std::mt19937_64 rng(2026);
    for (int h = 0; h < kHistories; ++h) {
        const RingPtr r = random_history(o, rng);
        ASSERT_EQ(r->members().size(), kFinal.size());
        ASSERT_EQ(fingerprint(r), want) << GetParam() << ", history " << h;
    }
}

INSTANTIATE_TEST_SUITE_P(EveryScheme, CanonicalRing, testing::ValuesIn(ring_scheme_names()),
                         [](const auto& info) {
                             std::string name = info.param;
                             std::replace(name.begin(), name.end(), '-', '_');
                             return name;
                         });

TEST(CanonicalRing, KetamaAndMaglevAreOrderFreeWithoutTheOption) {
    for (const std::string scheme : {"ketama", "ketama-xxh3", "maglev"}) {
        const RingOptions o = options(scheme, false);
        const auto want = fingerprint(ascending_build(o));
        std::mt19937_64 rng(7);
        for (int h = 0; h < 200; ++h) {
            ASSERT_EQ(fingerprint(random_history(o, rng)), want) << scheme << ", history " << h;
        }
    }
}

TEST(CanonicalRing, SlotRingsInJoinOrderDependOnTheHistory) {
    // SPEC §2's default: a removal moves no other virtual server, so the
    // layout remembers who probed past whom. This is what the canonical
    // mode exists for (and shows the comparison above can fail).
    const RingOptions o = options("assignment", false);
    std::set<std::vector<std::uint64_t>> seen;
    std::mt19937_64 rng(5);
    for (int h = 0; h < 200; ++h) seen.insert(fingerprint(random_history(o, rng)));
    EXPECT_GT(seen.size(), 1u);
}

TEST(CanonicalRing, SlotPlacementKeepsCapacityAndTheEmptyRing) {
    RingOptions o = options("xxh3", true);
    o.slots = 64;
    o.virtual_nodes = 16;  // room for 4
    RingPtr r = make_ring(o);
    for (std::uint32_t id : {4U, 1U, 3U, 2U}) {
        r = r->with_member({id, std::string("S").append(std::to_string(id))});
    }
    EXPECT_EQ(r->stats().occupied_slots, 64u);
    EXPECT_THROW(r->with_member({5, "S5"}), RingFullError);
    for (std::uint32_t id : {3U, 1U, 4U, 2U}) r = r->without_member(id);
    EXPECT_EQ(r->stats().occupied_slots, 0u);
    EXPECT_EQ(r->lookup(1), HashRing::npos);
    EXPECT_TRUE(r->options().canonical);
}

}  // namespace
}  // namespace ringlb
