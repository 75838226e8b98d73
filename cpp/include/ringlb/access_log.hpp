// AccessLog: one line per proxied request (issue 14.5), written by a thread
// of its own so that no I/O thread ever waits on a disk or a pipe.
//
// An I/O thread formats its line (a few hundred nanoseconds) and hands it
// over under a short lock; the writer thread takes every waiting line at
// once and writes them with one fwrite and one flush. The queue holds at most
// `max_pending` lines: past that (a stalled disk), lines are dropped and
// counted rather than kept, so the log can never make the router hold
// unbounded memory. The format is logfmt (key=value), which people read and
// log shippers parse:
//   time=2026-12-02T15:34:00.123Z client=127.0.0.1 method=GET path=/home?id=1
//   key=1 replica=Server1 status=200 duration_ms=0.42 retries=0
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace ringlb {

class AccessLog {
public:
    // `path`: a file (appended to) or "-" for standard output. Throws
    // std::system_error when the file cannot be opened.
    explicit AccessLog(const std::string& path, std::size_t max_pending = 65536);
    ~AccessLog();  // writes what is pending, then stops the thread
    AccessLog(const AccessLog&) = delete;
    AccessLog& operator=(const AccessLog&) = delete;

    struct Entry {
        std::string_view client;
        std::string_view method;
        std::string_view target;
        std::uint64_t key = 0;        // the request id the ring was asked for
        std::string_view replica;     // empty: the router answered itself
        unsigned status = 0;
        std::chrono::nanoseconds duration{};
        std::size_t retries = 0;
    };
    // Any thread; never blocks on I/O.
    void record(const Entry& e);

    std::uint64_t dropped() const;
    // Lines as they go to the file (exposed for tests).
    static std::string format(const Entry& e, std::chrono::system_clock::time_point when);

private:
    void run();

    std::FILE* out_;
    bool owned_;
    const std::size_t max_pending_;
    mutable std::mutex mutex_;
    std::condition_variable wake_;
    std::vector<std::string> pending_;
    std::uint64_t dropped_ = 0;
    bool stopping_ = false;
    std::thread writer_;
};

}  // namespace ringlb
