#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "ringlb/errors.hpp"
#include "ringlb/replica_set.hpp"

namespace {

using ringlb::Replica;
using ringlb::ReplicaSet;

Replica rep(std::uint32_t id, const std::string& name, std::uint16_t port) {
    return {id, name, "127.0.0.1", port};
}

TEST(ReplicaSet, AddAssignsSmallestFreeIds) {
    ReplicaSet set({});
    auto added = set.add({rep(0, "a", 1), rep(0, "b", 2), rep(5, "c", 3), rep(0, "d", 4)});
    EXPECT_EQ(added[0].id, 1u);
    EXPECT_EQ(added[1].id, 2u);
    EXPECT_EQ(added[2].id, 5u);
    EXPECT_EQ(added[3].id, 3u);
    EXPECT_EQ(set.snapshot()->serving.size(), 4u);
    EXPECT_EQ(set.next_free_id(), 4u);
}

TEST(ReplicaSet, AddIsAllOrNothing) {
    ReplicaSet set({});
    set.add({rep(0, "a", 1)});
    const auto version = set.version();
    EXPECT_THROW(set.add({rep(0, "b", 2), rep(0, "a", 3)}), std::invalid_argument);
    EXPECT_THROW(set.add({rep(0, "b", 2), rep(0, "c", 0)}), std::invalid_argument);
    EXPECT_EQ(set.version(), version);
    EXPECT_EQ(set.snapshot()->registered.size(), 1u);
}

TEST(ReplicaSet, FullRingAddsNothing) {
    ReplicaSet set({});
    std::vector<Replica> many;
    for (int i = 0; i < 57; ++i) many.push_back(rep(0, std::string("s").append(std::to_string(i)), 1000));
    EXPECT_THROW(set.add(many), ringlb::RingFullError);
    EXPECT_TRUE(set.snapshot()->registered.empty());
}

TEST(ReplicaSet, MembershipChangesAreCountedByKindAndFailedChangesCountNothing) {
    ReplicaSet set({});
    set.add({rep(0, "a", 1), rep(0, "b", 2), rep(0, "c", 3)});
    set.remove({3});
    set.set_serving(1, false);
    set.set_serving(1, false);  // no change: not counted
    set.set_serving(1, true);
    set.set_endpoint(2, "127.0.0.1", 9);
    EXPECT_THROW(set.add({rep(0, "a", 4)}), std::invalid_argument);
    EXPECT_THROW(set.remove({42}), std::invalid_argument);
    const auto c = set.snapshot()->changes;
    EXPECT_EQ(c.added, 3u);
    EXPECT_EQ(c.removed, 1u);
    EXPECT_EQ(c.down, 1u);
    EXPECT_EQ(c.up, 1u);
    EXPECT_EQ(c.moved, 1u);
}

TEST(ReplicaSet, ServingTogglesRingMembershipOnly) {
    ReplicaSet set({});
    set.add({rep(0, "a", 1), rep(0, "b", 2)});
    EXPECT_TRUE(set.set_serving(1, false));
    EXPECT_FALSE(set.set_serving(1, false));
    auto snap = set.snapshot();
    EXPECT_EQ(snap->registered.size(), 2u);
    ASSERT_EQ(snap->serving.size(), 1u);
    EXPECT_EQ(snap->serving[0]->hostname, "b");
    EXPECT_TRUE(set.set_serving(1, true));
    EXPECT_EQ(set.snapshot()->serving.size(), 2u);
    EXPECT_FALSE(set.set_serving(9, true));
}

TEST(ReplicaSet, ReplacementKeepsTheLayout) {
    ReplicaSet set({});
    set.add({rep(0, "a", 1), rep(0, "b", 2), rep(0, "c", 3)});
    const auto ids_by_slot = [](const ReplicaSet::Snapshot& snap) {
        std::vector<std::uint32_t> ids;
        for (auto i : snap.ring->slot_owners()) {
            ids.push_back(i < 0 ? 0u : snap.ring->members()[static_cast<std::size_t>(i)].id);
        }
        return ids;
    };
    const auto before = ids_by_slot(*set.snapshot());
    EXPECT_TRUE(set.set_serving(2, false));
    EXPECT_TRUE(set.set_endpoint(2, "127.0.0.1", 9));
    EXPECT_TRUE(set.set_serving(2, true));
    EXPECT_EQ(ids_by_slot(*set.snapshot()), before);
    EXPECT_EQ(set.find(2)->port, 9);
}

TEST(ReplicaSet, RemoveUnknownChangesNothing) {
    ReplicaSet set({});
    set.add({rep(0, "a", 1), rep(0, "b", 2)});
    EXPECT_THROW(set.remove({1, 7}), std::invalid_argument);
    EXPECT_EQ(set.snapshot()->registered.size(), 2u);
    set.remove({1});
    EXPECT_FALSE(set.find(1).has_value());
    EXPECT_EQ(set.find("b")->id, 2u);
}

TEST(ReplicaSet, ReadersSeeWholeSnapshotsWhileWritersChurn) {
    ReplicaSet set({});
    set.add({rep(0, "a", 1)});
    std::atomic<bool> stop{false};
    std::atomic<long> bad{0};
    std::thread reader([&] {
        while (!stop.load()) {
            auto snap = set.snapshot();
            if (snap->serving.size() != snap->ring->members().size()) ++bad;
            for (std::uint64_t id = 0; id < 64; ++id) {
                const auto i = snap->ring->lookup(id);
                if (i != ringlb::HashRing::npos && snap->serving[i]->id != snap->ring->members()[i].id) ++bad;
            }
        }
    });
    for (int round = 0; round < 300; ++round) {
        set.add({rep(0, "x", 2)});
        set.set_serving(1, round % 2 == 0);
        set.remove({set.find("x")->id});
    }
    stop = true;
    reader.join();
    EXPECT_EQ(bad.load(), 0);
}

}  // namespace

TEST(ReplicaSet, FreeIdsAndFreshNamesSkipWhatIsTaken) {
    ringlb::ReplicaSet set({});
    set.add({{2, "Node2", "127.0.0.1", 2}, {5, "Other", "127.0.0.1", 5}, {0, "Node1", "127.0.0.1", 1}});
    const auto snap = set.snapshot();
    EXPECT_EQ(snap->free_ids(3), (std::vector<std::uint32_t>{3, 4, 6}));
    EXPECT_EQ(snap->fresh_names(3, "Node"), (std::vector<std::string>{"Node3", "Node4", "Node5"}));
    EXPECT_EQ(snap->fresh_names(2, "Node", {"Node3"}), (std::vector<std::string>{"Node4", "Node5"}));
    EXPECT_TRUE(snap->free_ids(0).empty());
    // add() gives replicas without an id the smallest free ones, batch included.
    const auto added = set.add({{0, "A", "127.0.0.1", 7}, {0, "B", "127.0.0.1", 8}});
    EXPECT_EQ(added[0].id, 3u);
    EXPECT_EQ(added[1].id, 4u);
}
