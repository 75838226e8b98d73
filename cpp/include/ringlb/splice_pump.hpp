// SplicePump: moves a body of known length from one socket to another
// through a kernel pipe with splice(2), so that its bytes never enter the
// router's memory: each piece is two system calls and no copy, where a
// read and a write through a user-space window copy it twice. This is what
// HAProxy's "option splice-auto" does for the same reason; nginx has no
// equivalent for proxied bodies. Neither Asio nor Beast offers splice (it is
// Linux-only), so it is written here: Asio's reactor says when a socket is
// ready (async_wait), and the pump does the non-blocking splices itself.
//
// Used for an answer's Content-Length body once its header went out
// (ProxySession): the bytes pass verbatim, so there is nothing to parse.
// Chunked answers, answers of at most one window and request bodies keep
// the window path. For uploads splicing measured slower (bench/streaming.py
// with 1 GiB: ~1,050 MB/s spliced against ~1,270 MB/s through the window,
// the origin's CPU up by a third; tried again against the pumped window,
// 0.66x of direct against 0.87-0.89x), while for downloads it is ~1,430
// against ~1,100 MB/s at a third of the router's CPU.
//
// While the destination is full, the pipe still takes what the source has,
// up to its capacity, so that the source's sender is not held up meanwhile.
//
// The owner keeps both sockets and the deadlines: `waiting` is called before
// every wait with the side waited on, so that the owner can set the deadline
// of that phase (its deadline closes the socket, and the wait ends with an
// error), and `done` once, with the outcome and the side that failed.
#pragma once

#include <boost/system/error_code.hpp>

#include <cstdint>
#include <functional>
#include <memory>

#include "ringlb/upstream_pool.hpp"

namespace ringlb {

class SplicePump {
public:
    enum class Side { from, to };
    using Waiting = std::function<void(Side)>;
    using Done = std::function<void(boost::system::error_code, Side)>;

    // Opens the pipe and puts both sockets in non-blocking mode; nullptr
    // when that fails (no file descriptor left): the caller then copies
    // through its window as before.
    static std::unique_ptr<SplicePump> make(Socket& from, Socket& to);
    ~SplicePump();
    SplicePump(const SplicePump&) = delete;
    SplicePump& operator=(const SplicePump&) = delete;

    // Moves exactly `length` bytes. `owner` is held by every pending handler.
    // A source that ends (EOF) before `length` is partial_message on `from`.
    void start(std::shared_ptr<void> owner, std::uint64_t length, Waiting waiting, Done done);

    // Bytes still to read from `from` (0 once all of them are in the pipe or out).
    std::uint64_t left() const noexcept { return left_; }

private:
    SplicePump(Socket& from, Socket& to, int read_end, int write_end) noexcept;
    // One non-blocking splice each way; `failed` has called finish().
    enum class Step { moved, blocked, failed };
    void pump();
    Step drain();  // pipe -> `to`
    Step fill();   // `from` -> pipe, up to its capacity
    void wait(Side side);
    void finish(boost::system::error_code ec, Side side);

    Socket& from_;
    Socket& to_;
    int read_end_;
    int write_end_;
    std::uint64_t left_ = 0;     // not yet spliced out of `from`
    std::uint64_t in_pipe_ = 0;  // spliced in, not yet out to `to`
    bool guard_sigpipe_ = true;  // the process does not ignore SIGPIPE (splice_pump.cpp)
    std::shared_ptr<void> owner_;
    Waiting waiting_;
    Done done_;
};

}  // namespace ringlb
