// ReplicaSession: one client connection of ringlb-replica; Sessions: the
// live ones, so that a stop can close the idle ones at once.
//
// Each connection belongs to one io_context run by one thread (main.cpp
// gives every thread its own), so a session needs no strand and its socket
// is bound to the io_context's own executor type (no type-erased executor
// per operation). Reading is Beast's buffer-oriented parsing over plain
// reads; every request that arrived whole is answered from Answers, and the
// answers to pipelined requests go out together in one write, in order.
//
// Timeout: a connection with no completed read or write for idle_timeout is
// closed. One timer per session fires at most once per idle_timeout and
// re-arms itself from the time of the last activity, so a request costs a
// clock read rather than a timer-queue insert and cancel.
#pragma once

#include <boost/asio/basic_waitable_timer.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_set>

#include "answers.hpp"

namespace ringlb::replica {

using Socket = boost::asio::basic_stream_socket<boost::asio::ip::tcp,
                                                boost::asio::io_context::executor_type>;

class ReplicaSession;

// Thread-safe: sessions of every thread register here.
class Sessions {
public:
    // Runs once stop_all() was called and no session is left (on the thread
    // that removed the last one, or in stop_all()).
    void on_drained(std::function<void()> f);
    // False once stopping: the new session must close at once.
    bool add(ReplicaSession* s);
    void remove(ReplicaSession* s);
    // Asks every session to finish; on_drained runs once none is left (now,
    // if none is).
    void stop_all();

private:
    std::mutex mutex_;
    std::unordered_set<ReplicaSession*> live_;
    bool stopping_ = false;
    std::function<void()> on_drained_;
};

class ReplicaSession : public std::enable_shared_from_this<ReplicaSession> {
public:
    // At most this many pipelined requests are answered by one write.
    static constexpr std::size_t max_batch = 64;

    ReplicaSession(Socket socket, const Answers& answers, Sessions& sessions,
                   std::chrono::milliseconds idle_timeout);
    ~ReplicaSession();
    ReplicaSession(const ReplicaSession&) = delete;
    ReplicaSession& operator=(const ReplicaSession&) = delete;

    void run();
    // On the session's thread: an idle connection closes now, a busy one
    // after its answer (which then says Connection: close).
    void stop();
    boost::asio::io_context::executor_type executor() { return socket_.get_executor(); }

private:
    using Clock = std::chrono::steady_clock;
    using Timer = boost::asio::basic_waitable_timer<Clock, boost::asio::wait_traits<Clock>,
                                                    boost::asio::io_context::executor_type>;

    void do_read();
    void on_read(boost::beast::error_code ec, std::size_t n);
    // Parses what the buffer holds, answers every complete request (up to
    // max_batch), then writes or reads on.
    void serve();
    void answer(Resource r, unsigned version, bool keep_alive, bool head);
    void do_write();
    void on_write(boost::beast::error_code ec, std::size_t n);
    void arm_timer(Clock::time_point at);
    void on_timer(boost::beast::error_code ec);
    // Idle: waiting for a request of which no byte has come yet.
    bool idle() const noexcept;
    void close();

    Socket socket_;
    Timer timer_;
    const Answers& answers_;
    Sessions& sessions_;
    const std::chrono::milliseconds idle_timeout_;
    Clock::time_point last_activity_;
    boost::beast::flat_buffer buffer_;
    std::optional<boost::beast::http::request_parser<boost::beast::http::string_body>> parser_;
    std::string out_;  // the answers of one batch
    bool reading_ = false;
    bool close_after_ = false;  // the last answer in out_ ends the connection
    bool stopping_ = false;
    bool closed_ = false;
};

}  // namespace ringlb::replica
