// AccessLog: the line format, the writer thread, and the bound on what waits.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "ringlb/access_log.hpp"

namespace {

using ringlb::AccessLog;
using namespace std::chrono_literals;

AccessLog::Entry entry(unsigned status) {
    AccessLog::Entry e;
    e.client = "127.0.0.1";
    e.method = "GET";
    e.target = "/home?id=7";
    e.key = 7;
    e.replica = "Server2";
    e.status = status;
    e.duration = 1500us;
    e.retries = 1;
    return e;
}

TEST(AccessLog, ALineIsLogfmtWithEveryField) {
    const auto when = std::chrono::system_clock::time_point(std::chrono::milliseconds(1764689640123));
    EXPECT_EQ(AccessLog::format(entry(200), when),
              "time=2025-12-02T15:34:00.123Z client=127.0.0.1 method=GET path=/home?id=7 key=7 "
              "replica=Server2 status=200 duration_ms=1.500 retries=1\n");
    AccessLog::Entry own;  // answered by the router itself, before any parse
    own.method = "-";
    own.target = "-";
    own.status = 400;
    EXPECT_EQ(AccessLog::format(own, when),
              "time=2025-12-02T15:34:00.123Z client=- method=- path=- key=0 replica=- status=400 "
              "duration_ms=0.000 retries=0\n");
}

TEST(AccessLog, EveryRecordFromManyThreadsReachesTheFileOnce) {
    const auto path = std::filesystem::temp_directory_path() /
                      ("ringlb-access-" + std::to_string(::getpid()) + ".log");
    {
        AccessLog log(path.string());
        std::vector<std::thread> threads;
        for (int t = 0; t < 4; ++t) {
            threads.emplace_back([&log] {
                for (int i = 0; i < 1000; ++i) log.record(entry(200));
            });
        }
        for (auto& t : threads) t.join();
        EXPECT_EQ(log.dropped(), 0u);
    }  // the destructor writes what is pending
    std::ifstream in(path);
    std::string line;
    int lines = 0;
    while (std::getline(in, line)) {
        ASSERT_TRUE(line.starts_with("time=")) << line;
        ++lines;
    }
    EXPECT_EQ(lines, 4000);
    std::filesystem::remove(path);
}

TEST(AccessLog, PastTheBoundLinesAreDroppedAndCountedNotKept) {
    // A pipe nobody reads stalls the writer once the pipe's buffer is full.
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    const std::string path = "/proc/self/fd/" + std::to_string(fds[1]);
    std::thread drain;
    {
        AccessLog log(path, 100);  // opens a descriptor of its own on the pipe
        ::close(fds[1]);
        for (int i = 0; i < 20000; ++i) log.record(entry(200));
        EXPECT_GT(log.dropped(), 0u);
        // Let the writer go on: read until every write end is closed, which
        // ~AccessLog does after writing what was kept.
        drain = std::thread([fd = fds[0]] {
            char buf[65536];
            while (::read(fd, buf, sizeof buf) > 0) {
            }
        });
    }
    drain.join();
    ::close(fds[0]);
}

TEST(AccessLog, AFileThatCannotBeOpenedIsAnError) {
    EXPECT_THROW(AccessLog("/nonexistent-dir/ringlb.log"), std::system_error);
}

}  // namespace
