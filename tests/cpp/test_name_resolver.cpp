// Replicas given DNS names: the ReplicaSet keeps them off the ring until they
// have an address (set_address), and the NameResolver resolves them with
// Asio's resolver off the I/O threads. Real names only: "localhost" (in
// /etc/hosts everywhere) and "nonexistent.invalid" (RFC 6761: never resolves).
#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <thread>

#include "ringlb/event_log.hpp"
#include "ringlb/name_resolver.hpp"
#include "ringlb/replica_set.hpp"
#include "ringlb/router.hpp"

#include "upstream_server.hpp"

namespace {

using ringlb::Replica;
using ringlb::ReplicaSet;
using namespace router_test;

bool on_ring(const ReplicaSet& set, std::uint32_t id) {
    return set.snapshot()->ring->index_of(id) != ringlb::HashRing::npos;
}

// Waits (bounded) until `done`; returns it.
bool eventually(const std::function<bool()>& done, std::chrono::seconds limit = std::chrono::seconds(10)) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done()) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return true;
}

TEST(ReplicaSetNames, ANameIsOffTheRingUntilItHasAnAddress) {
    ReplicaSet set({});
    set.add({{1, "a", "127.0.0.1", 80}, {2, "b", "web.internal", 80}});
    const auto b = set.find(2);
    ASSERT_TRUE(b);
    EXPECT_EQ(b->name, "web.internal");
    EXPECT_EQ(b->host, "");
    EXPECT_FALSE(on_ring(set, 2));
    EXPECT_FALSE(set.set_serving(2, true));  // nowhere to send it requests yet
    EXPECT_FALSE(set.set_address(2, "other.internal", "10.0.0.2"));  // renamed meanwhile
    EXPECT_TRUE(set.set_address(2, "web.internal", "10.0.0.2"));
    EXPECT_TRUE(on_ring(set, 2));
    EXPECT_EQ(set.snapshot()->changes.moved, 0u);
    EXPECT_FALSE(set.set_address(2, "web.internal", "10.0.0.2"));  // the same: nothing
    EXPECT_TRUE(set.set_address(2, "web.internal", "10.0.0.3"));  // moved, stays on
    EXPECT_EQ(set.find(2)->host, "10.0.0.3");
    EXPECT_EQ(set.snapshot()->changes.moved, 1u);
    EXPECT_TRUE(on_ring(set, 2));
    // Another name: off the ring until it resolves; an address: on at once (as before).
    EXPECT_TRUE(set.set_endpoint(2, "api.internal", 81));
    EXPECT_FALSE(on_ring(set, 2));
    EXPECT_EQ(set.find(2)->name, "api.internal");
    EXPECT_TRUE(set.set_endpoint(1, "10.0.0.9", 82));
    EXPECT_EQ(set.find(1)->name, "");
    EXPECT_TRUE(on_ring(set, 1));
    EXPECT_THROW(set.add({{3, "c", "bad host!", 80}}), std::invalid_argument);
    EXPECT_THROW(set.set_endpoint(1, "-x", 80), std::invalid_argument);
    EXPECT_THROW(set.set_address(2, "api.internal", "not-an-address"), std::invalid_argument);
}

TEST(NameResolver, LocalhostResolvesAndANameThatDoesNotStaysOff) {
    ReplicaSet set({});
    ringlb::EventLog events;
    ringlb::NameResolver names(set, events, std::chrono::seconds(30));
    set.add({{1, "Local", "localhost", 8080}, {2, "Nowhere", "nonexistent.invalid", 8080}});
    names.start();
    ASSERT_TRUE(eventually([&] { return on_ring(set, 1); }));
    EXPECT_EQ(set.find(1)->host, "127.0.0.1");  // IPv4 first
    EXPECT_EQ(set.find(1)->name, "localhost");
    ASSERT_TRUE(eventually([&] {
        for (const auto& e : events.recent()) {
            if (e.kind == ringlb::EventKind::failed && e.id == 2) return true;
        }
        return false;
    }));
    EXPECT_FALSE(on_ring(set, 2));
    EXPECT_EQ(set.find(2)->host, "");
    // Given a name that resolves, it comes onto the ring.
    set.set_endpoint(2, "localhost", 8081);
    ASSERT_TRUE(eventually([&] { return on_ring(set, 2); }));
    EXPECT_EQ(set.find(2)->host, "127.0.0.1");
    names.stop();
    names.stop();
}

TEST(NameResolver, ADownReplicaIsResolvedAgain) {
    ReplicaSet set({});
    ringlb::EventLog events;
    ringlb::NameResolver names(set, events, std::chrono::hours(1));
    set.add({{1, "Local", "localhost", 8080}});
    names.start();
    ASSERT_TRUE(eventually([&] { return on_ring(set, 1); }));
    // Pretend it had moved: taken off the ring (the health checks' down), its
    // name is resolved again at once, not an hour later, and the address corrected.
    set.set_address(1, "localhost", "127.0.0.2");
    set.set_serving(1, false);
    ASSERT_TRUE(eventually([&] { return set.find(1)->host == "127.0.0.1"; }));
    names.stop();
}

TEST(NameResolver, TheRouterServesAReplicaGivenAName) {
    Upstream web("web");
    ringlb::Router router(config());
    router.replicas().add({{1, "Web", "localhost", web.port()}});
    EXPECT_FALSE(on_ring(router.replicas(), 1));  // not before the router runs
    const auto stats = router.replica_stats();
    ASSERT_EQ(stats.size(), 1u);
    EXPECT_EQ(stats[0].name, "localhost");
    EXPECT_EQ(stats[0].host, "");
    router.start();
    ASSERT_TRUE(eventually([&] { return on_ring(router.replicas(), 1); }));
    const Reply r = fetch(router.port(), http::verb::get, "/x?id=1");
    EXPECT_EQ(r.status, 200u);
    EXPECT_EQ(r.body, "up:web");
    router.stop();
}

}  // namespace
