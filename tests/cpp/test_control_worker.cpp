#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <memory>
#include <vector>

#include "ringlb/control_worker.hpp"

namespace {

using ringlb::ControlWorker;

TEST(ControlWorker, RunsJobsInOrderOnItsOwnThread) {
    ControlWorker w;
    EXPECT_FALSE(w.post([] {}));  // not started
    w.start();
    std::vector<int> order;
    std::promise<void> done;
    const auto caller = std::this_thread::get_id();
    std::atomic<bool> other_thread{true};
    for (int i = 0; i < 50; ++i) {
        ASSERT_TRUE(w.post([&, i] {
            order.push_back(i);
            if (std::this_thread::get_id() == caller) other_thread = false;
            if (!w.on_worker_thread()) other_thread = false;
        }));
    }
    w.post([&] { done.set_value(); });
    done.get_future().wait();
    w.stop();
    EXPECT_TRUE(other_thread);
    ASSERT_EQ(order.size(), 50u);
    for (int i = 0; i < 50; ++i) EXPECT_EQ(order[static_cast<std::size_t>(i)], i);
}

TEST(ControlWorker, StopFinishesTheRunningJobAndDropsTheQueued) {
    ControlWorker w;
    w.start();
    std::promise<void> entered;
    std::atomic<int> ran{0};
    auto token = std::make_shared<int>(0);
    w.post([&] {
        entered.set_value();
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        ++ran;
    });
    for (int i = 0; i < 5; ++i) w.post([&, token] { ++ran; });
    entered.get_future().wait();
    w.stop();
    EXPECT_EQ(ran.load(), 1);
    EXPECT_EQ(token.use_count(), 1);  // the dropped jobs were destroyed
    EXPECT_FALSE(w.post([] {}));
    w.stop();  // idempotent
    w.start();  // and restartable
    std::promise<void> again;
    EXPECT_TRUE(w.post([&] { again.set_value(); }));
    again.get_future().wait();
}

TEST(ControlWorker, AJobCannotStopItsWorker) {
    ControlWorker w;
    w.start();
    std::promise<bool> threw;
    w.post([&] {
        try {
            w.stop();
            threw.set_value(false);
        } catch (const std::logic_error&) {
            threw.set_value(true);
        }
    });
    EXPECT_TRUE(threw.get_future().get());
}

}  // namespace
