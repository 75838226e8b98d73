// DeadlineQueue on a real io_context: deadlines expire in order, once, not
// early; moving or cancelling one keeps it from expiring; lanes of a timeout
// nobody uses any more are dropped; a destroyed Deadline leaves its lane.
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "ringlb/deadline_queue.hpp"

namespace {

using namespace std::chrono_literals;
using ringlb::Deadline;
using ringlb::DeadlineQueue;
using Clock = std::chrono::steady_clock;

struct Probe final : Deadline {
    Probe(std::vector<std::string>& log, std::string name) : log(log), name(std::move(name)) {}
    std::vector<std::string>& log;
    std::string name;
    Clock::time_point fired_at{};
    std::function<void()> then;  // run inside expired()
    void expired() override {
        fired_at = Clock::now();
        log.push_back(name);
        if (then) then();
    }
};

// A queue on its own io_context, and the order its deadlines expired in.
class DeadlineQueueTest : public ::testing::Test {
protected:
    ~DeadlineQueueTest() override { q.shutdown(); }
    boost::asio::io_context ioc;
    DeadlineQueue q{ioc};
    std::vector<std::string> log;
};

TEST_F(DeadlineQueueTest, ExpiresInDeadlineOrderAcrossLanesAndNotEarly) {
    Probe a(log, "a"), b(log, "b"), c(log, "c");
    const auto start = Clock::now();
    q.schedule(a, 60ms);
    q.schedule(b, 20ms);
    q.schedule(c, 40ms);
    EXPECT_EQ(q.lanes(), 3u);
    EXPECT_EQ(q.size(), 3u);
    ioc.run_for(1s);
    EXPECT_EQ(log, (std::vector<std::string>{"b", "c", "a"}));
    // The coarse clock that places a deadline may lag by a few ms, no more.
    EXPECT_GE(b.fired_at - start, 10ms);
    EXPECT_GE(a.fired_at - start, 50ms);
    EXPECT_FALSE(a.scheduled());
    EXPECT_EQ(q.size(), 0u);
}

TEST_F(DeadlineQueueTest, MovingADeadlinePushesItBackAndCancellingDropsIt) {
    Probe moved(log, "moved"), cancelled(log, "cancelled"), kept(log, "kept");
    q.schedule(moved, 200ms);
    q.schedule(cancelled, 200ms);
    q.schedule(kept, 200ms);
    DeadlineQueue::cancel(cancelled);
    // Each step of a request moves its deadline: the earliest lane front
    // moves back, and the wait armed for it ends early and re-arms.
    ioc.run_for(100ms);
    q.schedule(moved, 200ms);  // now due at ~300 ms
    // Wide margins: the coarse clock may lag a few ms, a busy machine more.
    while (log.empty()) ioc.run_one_for(1s);
    EXPECT_EQ(log, (std::vector<std::string>{"kept"}));
    EXPECT_TRUE(moved.scheduled());
    ioc.run_for(400ms);
    EXPECT_EQ(log, (std::vector<std::string>{"kept", "moved"}));
    EXPECT_FALSE(cancelled.scheduled());
}

TEST_F(DeadlineQueueTest, AnEarlierDeadlineRearmsTheTimer) {
    Probe slow(log, "slow"), fast(log, "fast");
    q.schedule(slow, 10s);
    q.schedule(fast, 10ms);
    ioc.run_for(300ms);
    EXPECT_EQ(log, (std::vector<std::string>{"fast"}));
    EXPECT_TRUE(slow.scheduled());
}

TEST_F(DeadlineQueueTest, ADestroyedDeadlineLeavesItsLane) {
    {
        Probe gone(log, "gone");
        q.schedule(gone, 10ms);
        EXPECT_EQ(q.size(), 1u);
    }
    EXPECT_EQ(q.size(), 0u);
    ioc.run_for(100ms);
    EXPECT_TRUE(log.empty());
}

TEST_F(DeadlineQueueTest, ExpiredMayScheduleAndCancelOthersAndAddLanes) {
    Probe first(log, "first"), victim(log, "victim"), later(log, "later");
    q.schedule(first, 10ms);
    q.schedule(victim, 10ms);
    first.then = [&] {
        DeadlineQueue::cancel(victim);
        q.schedule(later, 17ms);  // a lane of its own, added while the queue sweeps
        q.schedule(first, 10ms);  // itself again, once
        first.then = nullptr;
    };
    ioc.run_for(300ms);
    EXPECT_EQ(log, (std::vector<std::string>{"first", "first", "later"}));
}

TEST_F(DeadlineQueueTest, LanesOfTimeoutsNoLongerUsedAreDropped) {
    Probe p(log, "p");
    Probe idle(log, "idle");
    q.schedule(idle, 60s);
    // Reloads that change a timeout again and again: one lane per value,
    // but the empty ones go once there are eight.
    for (int ms = 1000; ms < 1100; ++ms) q.schedule(p, std::chrono::milliseconds(ms));
    EXPECT_LE(q.lanes(), 8u);
    EXPECT_EQ(q.size(), 2u);
    EXPECT_TRUE(idle.scheduled());
}

TEST(DeadlineQueue, AfterShutdownDeadlinesCanStillBeMovedAndDestroyed) {
    boost::asio::io_context ioc;
    auto q = std::make_unique<DeadlineQueue>(ioc);
    std::vector<std::string> log;
    Probe p(log, "p");
    q->schedule(p, 10ms);
    q->shutdown();
    q->schedule(p, 10ms);  // as a session does while the io_context winds down
    ioc.run_for(50ms);
    EXPECT_TRUE(log.empty());
    DeadlineQueue::cancel(p);
    q.reset();
}

}  // namespace
