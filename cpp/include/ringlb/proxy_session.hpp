// ProxySession: one client connection of the router, from accept to close.
//
// The shape is Beast's async server examples: every step is a do_x() that
// starts an operation with its deadline set just before, and an on_x(ec, ...)
// that handles the result; the session stays alive through the
// shared_from_this() its pending handlers hold, runs on its IoWorker's single
// thread (an implicit strand), and client-side errors end in fail().
//
//   wait_request (header_timeout on a new connection, idle_timeout between
//   requests: a direct read for a short grace after an answer, then a wait
//   without a buffer) -> read_header (header_timeout) -> [read_body]
//     -> framing checked once (ProxyRules)
//     -> admin: /rep here, /add and /rm (authorized) on the control worker
//     -> or proxy: route -> [connect (connect_timeout)] -> upstream write and
//        read (upstream_timeout) -> on a refused / reset / timed-out upstream:
//        report it, try the next distinct replica clockwise
//   -> write the response (idle_timeout) -> wait_request again, or close
//   -> or, after a 101 to an Upgrade request: a Tunnel until either side
//      closes (idle_timeout between transfers)
//
// Requests on one connection are answered strictly in order: the next
// request is read only when the previous response is written, so pipelined
// requests (already in the read buffer) come back in order.
//
// Timeouts: one deadline per session, which each step moves, kept with every
// other session's of the I/O thread in its DeadlineQueue (one timer per
// thread, O(1) per move): a connection carries no timer of its own. When the
// deadline passes, the queue calls expired(), which closes the socket of the
// current phase, and the pending operation's handler reads that as a timeout.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include <array>
#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "ringlb/deadline_queue.hpp"
#include "ringlb/field_arena.hpp"
#include "ringlb/io_worker.hpp"
#include "ringlb/message_parser.hpp"
#include "ringlb/router.hpp"
#include "ringlb/router_state.hpp"
#include "ringlb/splice_pump.hpp"
#include "ringlb/tunnel.hpp"
#include "ringlb/upstream_pool.hpp"
#include "ringlb/worker_limits.hpp"

namespace ringlb {

struct AdminRoute;

struct RouteTable;

class ProxySession final : public std::enable_shared_from_this<ProxySession>,
                     public SessionLink,
                     private Deadline {
public:
    // Precondition: called on `worker`'s thread; `socket` belongs to its io_context.
    ProxySession(IoWorker& worker, Socket socket, Listener listener);
    ~ProxySession();
    ProxySession(const ProxySession&) = delete;
    ProxySession& operator=(const ProxySession&) = delete;

    // A proxied body longer than this (or chunked) is streamed through a
    // window of this size rather than held whole.
    static constexpr std::size_t stream_window = 64 * 1024;

    // The step of an upstream exchange that failed: a failed connect may be
    // retried anywhere, a failed write on a reused connection once afresh.
    enum class UpstreamStep { connect, write, read };

    void run();
    // Router::stop(): an idle connection closes now, a busy one after its response.
    void shutdown();
    // Closes the connection (and an upstream one in use) at once; pending
    // operations end with an error.
    void close() noexcept;

private:
    using Clock = std::chrono::steady_clock;
    using Request = ArenaRequest;
    using Response = ArenaResponse;
    using Allocator = FieldAllocator<char>;
    enum class Phase : std::uint8_t { client, upstream };

    // Deadlines.
    void expires_after(Phase phase, std::chrono::milliseconds d);
    // No deadline (the control plane's answer is awaited as long as it takes).
    void no_deadline() noexcept;
    // The DeadlineQueue's call: the current phase took too long.
    void expired() override;
    // True (once) when the deadline closed the socket the failed operation used.
    bool take_expired(Phase phase) noexcept;

    // Client side.
    void do_wait_request();
    void on_grace_bytes(boost::beast::error_code ec, std::size_t n);
    // Idle for the rest of idle_timeout (`left`): no buffer, a wait for readability.
    void wait_idle(std::chrono::milliseconds left);
    void wait_readable();
    void on_readable(boost::beast::error_code ec);
    void release_idle();
    void do_read_header();
    void parse_header();
    void on_header_bytes(boost::beast::error_code ec, std::size_t n);
    void on_read_header(boost::beast::error_code ec, std::size_t n);
    bool should_stream() const;
    void start_body();
    void do_continue();
    void on_continue(boost::beast::error_code ec, std::size_t n);
    void do_read_body();
    void on_read_body(boost::beast::error_code ec, std::size_t n);
    void on_request();
    void on_read_error(boost::beast::error_code ec);

    // Admin endpoints.
    void on_admin(const AdminRoute& route);
    void do_control(ControlRequest::Op op);
    void on_control(unsigned status, std::string body);

    // Proxying.
    void do_route();
    void do_try();
    void do_connect();
    void on_connect(boost::beast::error_code ec);
    void do_upstream_write();
    void on_upstream_write(boost::beast::error_code ec, std::size_t n);
    void do_upstream_read();
    void parse_upstream();
    void on_upstream_bytes(boost::beast::error_code ec, std::size_t n);
    void on_upstream_read(boost::beast::error_code ec);
    void on_upstream_failure(boost::beast::error_code ec, UpstreamStep step);
    void end_try() noexcept;
    // Streamed bodies: the first window is parsed before routing
    // (do_stream_parse); after it the body is pumped, the window going
    // upstream while the client's next bytes are read (pump_body).
    void do_stream_parse();
    // Parses buffer_ into the window, up to a full window or the body's end;
    // returns how much body the window holds (ec: a malformed body).
    std::size_t fill_window(boost::beast::error_code& ec);
    void on_stream_bytes(boost::beast::error_code ec, std::size_t n);
    void pump_body();
    void start_pump_write(std::size_t piece);
    void on_pump_read(boost::beast::error_code ec, std::size_t n);
    void on_pump_write(boost::beast::error_code ec, std::size_t n);
    // A failed read (client) or write (upstream): handled once neither is pending.
    void pump_fault(boost::beast::error_code ec, Phase side);
    void on_stream_error(boost::beast::error_code ec);
    void on_upstream_response();
    // The try has its answer: it is counted and can no longer be repeated.
    void finish_try();
    // The answer is read to its end: the replica connection goes back to its
    // pool when it may carry another request, else it is closed.
    void release_upstream(bool keep_alive);
    // Both, for an answer read whole.
    void end_upstream(bool keep_alive);
    // the exchange's res holds the replica's whole answer: rewrite it for the client, send it.
    void answer_upstream();
    // Streamed answers: a replica's body that is longer than a window,
    // chunked or delimited by its close goes to the client as it arrives.
    bool should_stream_response() const;
    void start_response_stream();
    void do_response_parse();
    void on_response_bytes(boost::beast::error_code ec, std::size_t n);
    void do_response_write(std::size_t piece);
    void on_response_write(boost::beast::error_code ec, std::size_t n);
    // The streamed answer's header in the exchange's out, from its res's header (the
    // replica's) and the body's length when it has one.
    void prepare_stream_header(boost::optional<std::uint64_t> length);
    // A body with a length (`length` bytes) spliced to the client.
    void start_response_splice(std::uint64_t length);
    // The streamed answer is out: the replica connection back (or closed),
    // the client connection waits for the next request (or closes).
    void end_response_stream(bool upstream_keep_alive);
    void on_response_stream_error(boost::beast::error_code ec);
    // Upgrade (WebSocket and the like): the 101 goes to the client, then the
    // connection becomes a Tunnel to the replica.
    void on_switching_protocols();
    void on_upgrade_written(boost::beast::error_code ec, std::size_t n);

    // Answers.
    // A new answer whose fields live in the I/O thread's arena.
    Response make_response(boost::beast::http::status status, unsigned version);
    // An error answer in the exchange's res ({"message": "<Error> ...", "status": "failure"}).
    void prepare_error(unsigned status, std::string_view message, bool close = false);
    void send_error(unsigned status, std::string_view message, bool close = false);
    void do_write();
    // The one write of a whole answer: the exchange's res serialized into its out (its body
    // too unless `header_only`), counted, sent under idle_timeout, then `then`.
    using WriteDone = void (ProxySession::*)(boost::beast::error_code, std::size_t);
    void send_response(bool header_only, WriteDone then);
    // The access log's line for the answer being sent (when there is a log).
    void log_access(unsigned status);
    void on_write(boost::beast::error_code ec, std::size_t n);
    // After an answer: gives back what a large message made the buffers grow.
    void release_buffers();
    void do_linger();
    void on_linger(boost::beast::error_code ec, std::size_t n);
    void fail();

    IoWorker& worker_;
    RouterState& state_;
    WorkerLimits::Lease limits_;  // the live settings the current request started with
    Socket socket_;
    const Listener listener_;
    Phase phase_ = Phase::client;
    bool client_expired_ = false;
    bool upstream_expired_ = false;

    boost::beast::flat_buffer buffer_;
    std::string client_ip_;
    // The parsers live on the heap while a message is being read and are
    // freed after it: an idle connection holds none (they are ~300 bytes each).
    std::unique_ptr<RequestParser> parser_;
    // The window a streamed body (either way) passes through, and what frames
    // each piece of it: made when a message streams, freed after it.
    struct StreamWindow {
        std::array<char, stream_window> data;
        std::array<char, 24> chunk_head{};
        std::array<boost::asio::const_buffer, 5> out{};  // a header and a framed piece
    };
    // What one request and its answer need, from the request's first byte
    // to the answer's last: made then, freed when the connection goes idle,
    // so that an idle connection does not carry ~400 bytes it does not use.
    struct Exchange {
        explicit Exchange(FieldArena& arena)
            : req(std::piecewise_construct, std::make_tuple(), std::make_tuple(Allocator(&arena))),
              res(std::piecewise_construct, std::make_tuple(), std::make_tuple(Allocator(&arena))) {}
        Request req;
        Response res;
        std::string out;      // res serialized: one contiguous buffer, one send
        std::string up_out;   // req serialized for the replica (kept for retries)
        std::string scratch;  // percent-decoded keys
        std::string upgrade;  // the protocol the request asks to switch to, or empty
        // Each of these exists only while its part of the exchange runs:
        std::unique_ptr<std::size_t[]> retry_order;  // after a failed try (see tries())
        std::unique_ptr<ResponseParser> up_parser;   // the replica's answer being read
        std::unique_ptr<StreamResponseParser> up_stream;  // a streamed answer
        std::unique_ptr<StreamRequestParser> stream_parser;  // a streamed request body
        std::unique_ptr<StreamWindow> stream_buf;   // the window either streams through
        std::unique_ptr<SplicePump> splice;         // an answer's body spliced (splice_pump.hpp)
        std::unique_ptr<Tunnel> tunnel;             // after a 101: the connection is a tunnel
        std::unique_ptr<std::array<char, 4096>> linger_buf;  // draining before a close
        boost::beast::error_code pump_error;  // the body pump's first fault (pump_fault)
    };
    std::unique_ptr<Exchange> ex_;
    // The exchange, made on first use; the const one only while a request runs.
    Exchange& ex();
    const Exchange& ex() const noexcept { return *ex_; }
    bool header_deadline_set_ = false;  // the header being read has its deadline
    std::size_t header_bytes_ = 0;      // of the header being read, parsed so far
    std::uint64_t body_limit_ = 0;      // of the request being read; 0: none
    bool answered_ = false;             // a response was written: idle, not new
    bool holds_grace_ = false;  // counted in the worker's grace quota (take_grace)
    bool in_grace_ = false;    // reading directly after an answer (do_wait_request)
    bool grace_over_ = false;  // the grace ended: the read's cancellation turns it idle
    bool busy_ = false;         // between a complete request header and its response
    bool draining_ = false;     // stop(): close after the current response
    bool close_after_ = false;  // the response in the exchange ends the connection
    bool closed_ = false;

    // The request being proxied.
    bool client_keep_alive_ = true;
    unsigned client_version_ = 11;
    bool head_ = false;
    bool idempotent_ = true;
    std::uint64_t request_id_ = 0;
    bool routed_ = false;  // this request reached do_route (routed_at_, attempt_ are its)
    Clock::time_point routed_at_{};  // do_route(): where the request's duration starts
    std::shared_ptr<const RouteTable> routes_;
    // The member indices to try, in order: the first choice only, until a try
    // fails (most requests never need more); then the whole retry order, on
    // the heap (retries + 1 at most), so an idle connection does not carry it.
    std::size_t first_try_ = 0;
    std::size_t* tries() { return ex().retry_order ? ex().retry_order.get() : &first_try_; }
    std::size_t n_tries_ = 0;
    std::size_t attempt_ = 0;
    UpstreamPool* pool_ = nullptr;  // tries_[attempt_]'s pool, kept alive by routes_
    std::unique_ptr<UpstreamConnection> conn_;
    bool reused_ = false;     // conn_ came from the idle pool
    bool in_flight_ = false;  // counted in the replica's in-flight load
    bool up_header_seen_ = false;  // up_parser_'s header was looked at for streaming
    // A streamed answer (should_stream_response()); it uses the window too.
    bool res_header_sent_ = false;  // the client has the streamed answer's header
    bool res_chunked_ = false;      // the streamed answer goes to the client chunked
    bool res_keep_ = false;         // and the client connection stays open after it

    // A body being streamed (should_stream()); the window exists only then.
    bool streaming_ = false;
    bool stream_chunked_ = false;  // forwarded chunked, as it came
    bool body_sent_ = false;       // part of it reached the replica: no retry
    bool piece_pending_ = false;   // the first window waits for the header's write
    bool reading_ = false;         // pump: a client read is pending (buffer_ is empty)
    bool writing_ = false;         // pump: a write of the window is pending
    bool last_sent_ = false;       // pump: the body's end is written or being written
    bool pump_failed_ = false;     // pump: a fault (the exchange's pump_error) waits
    Phase pump_side_ = Phase::client;  // the side it came from
    std::size_t pending_size_ = 0;
    std::size_t linger_left_ = 0;
};

}  // namespace ringlb
