// EventLog: bounded, ordered, thread-safe; the one list of event kinds.
#include <gtest/gtest.h>

#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "ringlb/event_log.hpp"

using namespace ringlb;

TEST(EventLog, KeepsEventsOldestFirstWithTheirFields) {
    EventLog log;
    const auto before = std::chrono::steady_clock::now();
    log.record(EventKind::suspect, 2, "Server2", "up -> suspect: miss 1/2");
    log.record(EventKind::stopped, 0, "", "cluster lb5000");
    const auto events = log.recent();
    ASSERT_EQ(events.size(), 2u);
    EXPECT_EQ(events[0].seq, 1u);
    EXPECT_EQ(events[0].kind, EventKind::suspect);
    EXPECT_EQ(events[0].id, 2u);
    EXPECT_EQ(events[0].hostname, "Server2");
    EXPECT_EQ(events[0].detail, "up -> suspect: miss 1/2");
    EXPECT_GE(events[0].monotonic, before);
    EXPECT_EQ(events[1].seq, 2u);
    EXPECT_EQ(events[1].kind, EventKind::stopped);
    EXPECT_EQ(events[1].id, 0u);
    EXPECT_LE(events[0].monotonic, events[1].monotonic);
    EXPECT_EQ(log.recorded(), 2u);
}

TEST(EventLog, KeepsOnlyTheLastCapacityEvents) {
    EventLog log(5);
    for (std::uint32_t i = 1; i <= 12; ++i) log.record(EventKind::added, i, "Server", std::to_string(i));
    const auto events = log.recent();
    ASSERT_EQ(events.size(), 5u);
    for (std::size_t k = 0; k < 5; ++k) {
        EXPECT_EQ(events[k].seq, 8 + k);
        EXPECT_EQ(events[k].id, 8 + k);
    }
    EXPECT_EQ(log.recorded(), 12u);
    EXPECT_EQ(EventLog().capacity(), 200u);
    EXPECT_THROW(EventLog(0), std::invalid_argument);
}

TEST(EventLog, CutsALongDetailAtACharacterBoundary) {
    EventLog log;
    // "é" is two bytes: a cut in the middle of one would leave invalid UTF-8.
    std::string detail;
    while (detail.size() < 2000) detail += "\xC3\xA9";
    log.record(EventKind::failed, 1, "Server1", detail);
    const std::string kept = log.recent().front().detail;
    EXPECT_LE(kept.size(), EventLog::max_detail_bytes);
    EXPECT_GT(kept.size(), EventLog::max_detail_bytes - 8);
    EXPECT_EQ(kept.substr(kept.size() - 3), "\xE2\x80\xA6");  // the ellipsis
    const std::string body = kept.substr(0, kept.size() - 3);
    EXPECT_EQ(body.size() % 2, 0u);  // whole "é"s only
    EXPECT_EQ(body, detail.substr(0, body.size()));
}

TEST(EventLog, KindNamesRoundTripAndUnknownNamesAreRefused) {
    for (std::size_t i = 0; i < event_kind_names.size(); ++i) {
        const auto kind = static_cast<EventKind>(i);
        EXPECT_EQ(parse_event_kind(to_string(kind)), kind);
    }
    EXPECT_EQ(to_string(EventKind::replaced), "replaced");
    try {
        parse_event_kind("exploded");
        FAIL() << "no exception";
    } catch (const std::invalid_argument& e) {
        EXPECT_NE(std::string(e.what()).find("'exploded'"), std::string::npos);
        EXPECT_NE(std::string(e.what()).find("suspect"), std::string::npos);
    }
}

TEST(EventLog, ManyWritersAndAReaderAtOnce) {
    EventLog log(64);
    constexpr int writers = 4, each = 500;
    std::vector<std::thread> threads;
    for (int w = 0; w < writers; ++w) {
        threads.emplace_back([&log, w] {
            for (int i = 0; i < each; ++i) {
                log.record(EventKind::up, static_cast<std::uint32_t>(w + 1), "Server", "ok");
            }
        });
    }
    std::uint64_t last_seq = 0;
    for (int i = 0; i < 200; ++i) {
        const auto events = log.recent();
        for (std::size_t k = 1; k < events.size(); ++k) ASSERT_EQ(events[k].seq, events[k - 1].seq + 1);
        if (!events.empty()) {
            ASSERT_GE(events.back().seq, last_seq);
            last_seq = events.back().seq;
        }
    }
    for (auto& t : threads) t.join();
    EXPECT_EQ(log.recorded(), std::uint64_t{writers * each});
    const auto events = log.recent();
    ASSERT_EQ(events.size(), 64u);
    EXPECT_EQ(events.back().seq, std::uint64_t{writers * each});
}
