#include "ringlb/proxy_session.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/bind_handler.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/rfc7230.hpp>
#include <boost/beast/http/write.hpp>

#include <algorithm>
#include <cstdio>
#include <span>
#include <string_view>
#include <tuple>

#include "ringlb/admin_api.hpp"
#include "ringlb/admin_routes.hpp"
#include "ringlb/coarse_clock.hpp"
#include "ringlb/exact_allocator.hpp"
#include "ringlb/io_worker.hpp"
#include "ringlb/key_source.hpp"
#include "ringlb/proxy_rules.hpp"
#include "ringlb/router_state.hpp"
#include "ringlb/splice_pump.hpp"
#include "ringlb/wire_format.hpp"

namespace ringlb {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

constexpr std::uint32_t max_upstream_header = 64u << 10;
// Bytes asked for by the read that waits for a new request.
// Small, because what this read allocates stays with an idle keep-alive
// connection (bench/proxy.py's idle-connection table: 8 KiB made ringlb's
// idle connection 9 KB against HAProxy's 1): 2 KiB holds nearly every
// request header in one read, and a longer one grows the buffer as it comes.
constexpr std::size_t first_read_size = 2048;
// How long a connection that was just answered reads directly, before it
// becomes idle and waits without a buffer (ProxySession::do_wait_request).
constexpr std::chrono::milliseconds keep_alive_grace{200};
// After an error answer that closes the connection, unread input is drained
// for at most this long (and this many bytes) so that the close does not
// turn into a reset that destroys the answer before the client reads it.
constexpr std::chrono::milliseconds linger_time{1000};
constexpr std::size_t linger_bytes = 4u << 20;

bool is_http_error(const beast::error_code& ec) {
    return ec.category() == http::make_error_code(http::error::bad_target).category();
}

// An answer that is not HTTP (as opposed to a connection that ended early):
// the replica is up but broken, which is not the heartbeat engine's business.
bool is_protocol_error(const beast::error_code& ec) {
    return is_http_error(ec) && ec != http::error::end_of_stream &&
           ec != http::error::partial_message;
}

// An admin request's body (/add, /rm JSON) may be no longer than this.
constexpr std::uint64_t admin_body_limit = 64 * 1024;

// Bytes asked for per read of a replica's answer.
constexpr std::size_t upstream_read_size = 16384;

// Bytes a connection may keep between requests: buffers that grew past this
// for one large request or answer are released once it is answered, so an
// idle connection holds tens of KB whatever it sent before.
constexpr std::size_t idle_keep_bytes = 16384;
// A proxied body up to this size is read whole before it is forwarded (so a
// failed try can be repeated elsewhere); a longer or chunked one is streamed
// through a window of this size.
constexpr std::size_t stream_threshold = ProxySession::stream_window;

// The read buffer's bound: a header at its limit plus one read (a body
// never lies whole in it, it is parsed into the message as it arrives).
std::size_t read_buffer_limit(const RouterLimits& l) {
    return l.max_header_bytes + first_read_size + 65536;
}

// Releases `s`'s storage when it holds more than an idle connection may keep.
void trim(std::string& s) {
    if (s.capacity() > idle_keep_bytes) std::string().swap(s);
    else s.clear();
}

}  // namespace

ProxySession::ProxySession(IoWorker& worker, Socket socket, Listener listener)
    : worker_(worker), state_(worker.state()), limits_(worker.limits().lease()),
      socket_(std::move(socket)), listener_(listener),
      buffer_(read_buffer_limit(*limits_)) {
    worker_.add_session(*this);
}

ProxySession::~ProxySession() {
    if (holds_grace_) worker_.give_grace();  // its read's handler never ran (shutdown)
    end_try();
    worker_.remove_session(*this);
    state_.connections.fetch_sub(1, std::memory_order_relaxed);
}

void ProxySession::run() {
    beast::error_code ec;
    socket_.set_option(tcp::no_delay(true), ec);
    // Once per connection: the client-ip key source and X-Forwarded-For.
    if (const auto peer = socket_.remote_endpoint(ec); !ec) client_ip_ = peer.address().to_string();
    if (state_.draining.load(std::memory_order_relaxed)) draining_ = true;
    do_wait_request();
}

void ProxySession::shutdown() {
    draining_ = true;
    if (!busy_ || (ex_ && ex_->tunnel)) close();  // a tunnel has no response to wait for
}

void ProxySession::close() noexcept {
    if (closed_) return;
    closed_ = true;
    beast::error_code ec;
    socket_.shutdown(tcp::socket::shutdown_both, ec);
    socket_.close(ec);
    if (conn_) conn_->socket.close(ec);
    no_deadline();
}

// ----------------------------------------------------------------- deadlines

void ProxySession::expires_after(Phase phase, std::chrono::milliseconds d) {
    phase_ = phase;
    if (phase == Phase::client) client_expired_ = false;
    else upstream_expired_ = false;
    if (!closed_) worker_.deadlines().schedule(*this, d);
}

void ProxySession::no_deadline() noexcept { DeadlineQueue::cancel(*this); }

void ProxySession::expired() {
    if (closed_) return;
    if (in_grace_) {
        // The keep-alive grace is over: the direct read is cancelled, and
        // its handler turns the connection idle (on_grace_bytes).
        in_grace_ = false;
        grace_over_ = true;
        beast::error_code ignored;
        socket_.cancel(ignored);
        return;
    }
    // The operation in progress took too long: closing its socket makes it
    // complete with an error, which its handler reads as a timeout.
    if (phase_ == Phase::upstream && conn_) {
        upstream_expired_ = true;
        beast::error_code ignored;
        conn_->socket.close(ignored);
    } else {
        client_expired_ = true;
        close();
    }
}

bool ProxySession::take_expired(Phase phase) noexcept {
    bool& flag = phase == Phase::client ? client_expired_ : upstream_expired_;
    const bool was = flag;
    flag = false;
    return was;
}

// ---------------------------------------------------------------- client side

void ProxySession::do_wait_request() {
    if (draining_) return close();
    // The wait for a request has the live settings' timeouts as they are now.
    worker_.limits().renew(limits_);
    if (buffer_.size() > 0) return do_read_header();  // a pipelined request is waiting
    if (!answered_) {
        // A new connection has sent nothing yet: its first header is due
        // header_timeout after the accept, or silent sockets would hold
        // connection slots for the whole idle timeout.
        expires_after(Phase::client, limits_->header_timeout);
        return wait_readable();
    }
    // Just answered. A client that keeps its connection busy sends its next
    // request within moments: for keep_alive_grace the connection keeps its
    // exchange and reads straight into its buffer, which costs no system call
    // until the bytes are there (Asio's reactor keeps the socket registered
    // for reading, where a wait for readability re-arms it, an epoll_ctl per
    // request). After that it becomes idle (wait_idle()). A burst of
    // thousands of connections answered at once must not hold that memory
    // each: past the worker's quota (IoWorker::take_grace) they go idle now.
    const auto grace = std::min(keep_alive_grace, limits_->idle_timeout);
    if (!worker_.take_grace()) return wait_idle(limits_->idle_timeout);
    holds_grace_ = true;
    in_grace_ = grace < limits_->idle_timeout;  // else the grace is the whole idle time
    expires_after(Phase::client, grace);
    socket_.async_read_some(buffer_.prepare(first_read_size),
                            beast::bind_front_handler(&ProxySession::on_grace_bytes,
                                                      shared_from_this()));
}

void ProxySession::on_grace_bytes(beast::error_code ec, std::size_t n) {
    // The grace's end cancels the read; but the read may have completed
    // before that, with its handler still queued: the bytes win.
    const bool grace_over = grace_over_;
    in_grace_ = false;
    grace_over_ = false;
    holds_grace_ = false;
    worker_.give_grace();
    if (!ec) {
        buffer_.commit(n);
        return do_read_header();
    }
    if (grace_over && ec == asio::error::operation_aborted && !closed_) {
        return wait_idle(limits_->idle_timeout - keep_alive_grace);
    }
    on_read_error(ec);
}

void ProxySession::wait_idle(std::chrono::milliseconds left) {
    // An idle keep-alive connection may stay silent for idle_timeout in all
    // (`left` is what remains of it). It holds no buffer meanwhile: it
    // gives back what its last exchange used and waits for the socket to be
    // readable; only then is memory taken to read into (nginx and HAProxy do
    // the same).
    expires_after(Phase::client, left);
    release_idle();
    wait_readable();
}

void ProxySession::wait_readable() {
    socket_.async_wait(tcp::socket::wait_read,
                       exact_alloc(beast::bind_front_handler(&ProxySession::on_readable,
                                                             shared_from_this())));
}

void ProxySession::on_readable(beast::error_code ec) {
    if (ec) return on_read_error(ec);
    // The bytes are there: a non-blocking read takes them without another
    // trip through the event loop.
    std::size_t n = 0;
    if (!socket_.non_blocking()) socket_.non_blocking(true, ec);
    if (!ec) n = socket_.read_some(buffer_.prepare(first_read_size), ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) {
        return wait_readable();  // readable, yet nothing (a spurious wake-up)
    }
    if (ec) return on_read_error(ec);
    buffer_.commit(n);
    do_read_header();
}

void ProxySession::release_idle() {
    // Fields go back to the I/O thread's arena, strings and the read buffer
    // to the heap: an idle connection keeps the session object and its socket.
    ex_.reset();
    buffer_.shrink_to_fit();
}

ProxySession::Exchange& ProxySession::ex() {
    if (!ex_) ex_ = std::make_unique<Exchange>(worker_.arena());
    return *ex_;
}

void ProxySession::do_read_header() {
    // A request starts: it reads the live settings as they are now, until its answer.
    worker_.limits().renew(limits_);
    buffer_.max_size(std::max(read_buffer_limit(*limits_), buffer_.size()));
    // The previous request's message goes back into the parser, which clears
    // its fields; its body keeps its capacity (one allocation less).
    ex().req.body().clear();
    parser_ = std::make_unique<RequestParser>(std::move(ex().req));
    // Beast applies its header limit to what one put() sees, not to the whole
    // header (a header fed in pieces passes several times the limit), so the
    // limit is counted here in header_bytes_; Beast's is only a backstop above it.
    parser_->header_limit(static_cast<std::uint32_t>(
        std::min<std::size_t>(limits_->max_header_bytes + 1, UINT32_MAX)));
    // max_body_bytes 0: no limit on a proxied body, which is streamed anyway.
    body_limit_ = limits_->max_body_bytes;
    if (body_limit_ == 0) parser_->body_limit(boost::none);
    else parser_->body_limit(body_limit_);
    header_bytes_ = 0;
    header_deadline_set_ = false;
    routed_ = false;
    // Whatever the last request streamed, this one starts with a clean slate
    // (body_sent_ left over would forbid its retries).
    streaming_ = false;
    body_sent_ = false;
    piece_pending_ = false;
    parse_header();
}

void ProxySession::parse_header() {
    // Beast's buffer-oriented parsing first: a header that arrived whole (the
    // usual case) needs no read operation and no header deadline.
    while (buffer_.size() > 0) {
        beast::error_code ec;
        const std::size_t n = parser_->put(buffer_.data(), ec);
        buffer_.consume(n);
        header_bytes_ += n;
        if (ec == http::error::need_more) break;
        if (ec) return on_read_error(ec);
        if (parser_->is_header_done()) return on_read_header({}, 0);
        if (n == 0) break;
    }
    // What is left in the buffer is part of a header that is not complete:
    // with it, the header is already longer than the limit.
    if (ProxyRules::check_header_size(header_bytes_ + buffer_.size(),
                                      limits_->max_header_bytes)) {
        return on_read_error(http::error::header_limit);
    }
    // Beast takes in a complete request line, then leaves the fields in the
    // buffer until their blank line is there; and it asks for more when a
    // request line is too short to hold its version ("NOT-HTTP at all").
    // A blank line in the buffer is therefore the end of a header that can
    // never parse: a malformed request, not a slow one.
    const auto* bytes = static_cast<const char*>(buffer_.data().data());
    if (std::string_view(bytes, buffer_.size()).find("\r\n\r\n") != std::string_view::npos) {
        return send_error(400, "malformed HTTP request: bad request line", true);
    }
    const std::size_t room = buffer_.max_size() - buffer_.size();
    if (room == 0) return on_read_error(http::error::buffer_overflow);
    // One deadline for the whole header, however many reads it takes: a
    // client sending a byte at a time must not push it back with each byte.
    if (!header_deadline_set_) {
        header_deadline_set_ = true;
        expires_after(Phase::client, limits_->header_timeout);
    }
    socket_.async_read_some(buffer_.prepare(std::min(first_read_size, room)),
                            beast::bind_front_handler(&ProxySession::on_header_bytes,
                                                      shared_from_this()));
}

void ProxySession::on_header_bytes(beast::error_code ec, std::size_t n) {
    if (ec) return on_read_error(ec);
    buffer_.commit(n);
    parse_header();
}

void ProxySession::on_read_header(beast::error_code ec, std::size_t) {
    if (ec) return on_read_error(ec);
    busy_ = true;
    // Framing is decided here, once, on the header as the client sent it:
    // nothing that could be read two ways goes further (proxy_rules.hpp).
    auto rejected = ProxyRules::check_header_size(header_bytes_, limits_->max_header_bytes);
    if (!rejected) rejected = ProxyRules::check_request(parser_->get().base(), parser_->chunked());
    if (rejected) {
        if (rejected->status == 400) rejected->message.insert(0, "malformed HTTP request: ");
        return send_error(rejected->status, rejected->message, true);
    }
    if (parser_->is_done()) return on_request();
    // An admin body is read whole and parsed as JSON: it keeps a small limit
    // whatever proxied bodies may be.
    if (state_.serves_admin(listener_, KeySource::path_of(parser_->get().target())) &&
        (body_limit_ == 0 || body_limit_ > admin_body_limit)) {
        body_limit_ = admin_body_limit;
        parser_->body_limit(body_limit_);
    }
    streaming_ = should_stream();
    const auto expect = parser_->get()[http::field::expect];
    if (beast::iequals(expect, "100-continue")) return do_continue();
    start_body();
}

bool ProxySession::should_stream() const {
    // Admin bodies are small and read whole; a proxied body is held whole
    // only when it is small enough to keep for a retry.
    const auto& h = parser_->get();
    if (state_.serves_admin(listener_, KeySource::path_of(h.target()))) return false;
    if (listener_ == Listener::admin) return false;  // answered 404 without a body
    const auto length = parser_->content_length();
    return !length || *length > stream_threshold;
}

void ProxySession::start_body() {
    if (!streaming_) return do_read_body();
    // The header moves to the exchange's req for routing and forwarding; the parser goes on
    // with a body that is a window into the exchange's stream_buf, so at most that much of
    // the body is ever held (Beast's http_relay example does the same).
    client_keep_alive_ = parser_->keep_alive();
    ex().req.base() = std::move(parser_->get().base());
    ex().req.body().clear();
    // As the Beast parser it derives from: the converting constructor takes
    // exactly a parser<isRequest, OtherBody, Allocator>.
    ex().stream_parser = std::make_unique<StreamRequestParser>(
        static_cast<http::request_parser<http::string_body, Allocator>&&>(std::move(*parser_)));
    parser_.reset();
    stream_chunked_ = ex().stream_parser->chunked();
    body_sent_ = false;
    piece_pending_ = false;
    reading_ = writing_ = last_sent_ = pump_failed_ = false;
    if (!ex().stream_buf) ex().stream_buf = std::make_unique<StreamWindow>();
    // The first window is read before a replica is chosen: a chunked body
    // that ends within it is forwarded whole, with its length, like a small
    // sized one (and can be retried).
    do_stream_parse();
}

void ProxySession::do_continue() {
    // RFC 9110 §10.1.1: the client waits for this before sending the body.
    static constexpr std::string_view interim = "HTTP/1.1 100 Continue\r\n\r\n";
    expires_after(Phase::client, limits_->header_timeout);
    asio::async_write(socket_, asio::buffer(interim),
                      beast::bind_front_handler(&ProxySession::on_continue, shared_from_this()));
}

void ProxySession::on_continue(beast::error_code ec, std::size_t) {
    if (ec) return fail();
    start_body();
}

void ProxySession::do_read_body() {
    expires_after(Phase::client, limits_->header_timeout);
    http::async_read(socket_, buffer_, *parser_,
                     beast::bind_front_handler(&ProxySession::on_read_body, shared_from_this()));
}

void ProxySession::on_read_body(beast::error_code ec, std::size_t) {
    if (ec) return on_read_error(ec);
    on_request();
}

void ProxySession::on_read_error(beast::error_code ec) {
    // The client was too slow (its deadline closed the socket), closed the
    // connection, or we closed it: nothing to answer.
    if (take_expired(Phase::client) || closed_) return close();
    if (ec == http::error::header_limit || ec == http::error::buffer_overflow) {
        return send_error(431, "request header is larger than " +
                                   std::to_string(limits_->max_header_bytes) + " bytes",
                          true);
    }
    if (ec == http::error::body_limit) {
        return send_error(413, "request body is larger than " + std::to_string(body_limit_) +
                                   " bytes",
                          true);
    }
    if (ec == http::error::end_of_stream || ec == http::error::partial_message) return close();
    if (is_http_error(ec)) return send_error(400, "malformed HTTP request: " + ec.message(), true);
    fail();
}

void ProxySession::on_request() {
    // The parser weighs every Connection field; the message's keep_alive()
    // reads only the first ("Connection: x, Connection: close" would stay open).
    client_keep_alive_ = parser_->keep_alive();
    ex().req = parser_->release();
    parser_.reset();
    const std::string_view path = KeySource::path_of(ex().req.target());
    if (state_.serves_admin(listener_, path)) return on_admin(*find_admin_route(path));
    if (listener_ == Listener::admin) {
        std::string message = "'";
        message.append(path.substr(0, 200));
        message.append("' is not an admin endpoint (");
        message.append(admin_route_list());
        message.append(")");
        return send_error(404, message);
    }
    do_route();
}

void ProxySession::on_admin(const AdminRoute& route) {
    const http::verb method = ex().req.method();
    if (!route.allows(method)) {
        prepare_error(405, "method not allowed: use " + std::string(route.usage));
        ex().res.set(http::field::allow, route.allow);
        return do_write();
    }
    if (route.answer) {  // read-only: answered here, on this I/O thread
        AdminAnswer answer = route.answer(state_);
        ex().res = make_response(static_cast<http::status>(answer.status), ex().req.version());
        ex().res.set(http::field::content_type, answer.content_type);
        ex().res.body() = std::move(answer.body);
        ex().res.prepare_payload();
        ex().res.keep_alive(client_keep_alive_ && !draining_);
        if (method == http::verb::head) ex().res.body().clear();
        return do_write();
    }
    if (const auto refused = state_.authorize(listener_, ex().req[http::field::authorization])) {
        prepare_error(static_cast<unsigned>(refused->status), refused->what());
        if (refused->status == 401) ex().res.set(http::field::www_authenticate, "Bearer realm=\"ringlb\"");
        return do_write();
    }
    do_control(*route.op);
}

// ------------------------------------------------------------ admin endpoints

void ProxySession::do_control(ControlRequest::Op op) {
    // The control plane may take seconds (spawning a replica) and, from Python,
    // the GIL: it runs on the control worker, never on this I/O thread. No
    // deadline meanwhile: the client waits as long as the control plane works.
    no_deadline();
    auto self = shared_from_this();
    const bool queued = state_.control.post([self, op, body = std::move(ex().req.body())]() mutable {
        // A pair, not a structured binding: clang before 16 cannot capture those.
        auto answer = self->state_.run_control(op, body);
        auto& ioc = self->worker_.ioc();
        asio::post(ioc, [self = std::move(self), answer = std::move(answer)]() mutable {
            self->on_control(answer.first, std::move(answer.second));
        });
    });
    if (!queued) send_error(503, "the router is stopping");
}

void ProxySession::on_control(unsigned status, std::string body) {
    if (closed_) return;
    ex().res = make_response(static_cast<http::status>(status), ex().req.version());
    ex().res.set(http::field::content_type, "application/json");
    ex().res.body() = std::move(body);
    ex().res.prepare_payload();
    ex().res.keep_alive(client_keep_alive_ && !draining_);
    if (status >= 500) WorkerStats::bump(worker_.stats().errors);
    do_write();
}

// ------------------------------------------------------------------ proxying

void ProxySession::do_route() {
    client_version_ = ex().req.version();
    head_ = ex().req.method() == http::verb::head;
    idempotent_ = ProxyRules::idempotent(ex().req.method());
    routed_at_ = Clock::now();  // ringlb_request_duration_seconds starts here
    routed_ = true;
    routes_ = worker_.routes();
    request_id_ = state_.key.request_id<ArenaFields>(ex().req, ex().req.target(), client_ip_,
                                                     worker_.rng(), ex().scratch);
    // The first choice only: the rest of the retry order is worked out if a
    // try fails (most requests never need it).
    ex().retry_order.reset();
    n_tries_ = worker_.plan(*routes_, request_id_, std::span<std::size_t>(&first_try_, 1), false);
    if (n_tries_ == 0) {
        routes_.reset();
        return send_error(503, "no replica is available to serve the request");
    }
    // The request goes upstream as HTTP/1.1 on a kept-alive connection, minus
    // what concerns only the client's hop.
    // check_request() has made sure no field that frames the request is
    // among those removed: the body that goes is exactly the body framed.
    // Read before the hop-by-hop fields go: the request asks for them.
    ex().upgrade = streaming_ || !ex().req.body().empty()
                   ? std::string()
                   : ProxyRules::upgrade_requested<ArenaFields>(ex().req.base());
    if (ProxyRules::scan<ArenaFields>(ex().req).hop_by_hop) {
        // The parser decoded a chunked body if there is Transfer-Encoding at
        // all (check_request allows no other); message::chunked() reads only
        // the first field and must not decide whether the body gets a length.
        const bool chunked = ex().req.count(http::field::transfer_encoding) > 0;
        ProxyRules::strip_hop_by_hop<ArenaFields>(ex().req);
        if (chunked && !streaming_) ex().req.content_length(ex().req.body().size());
    }
    // A streamed chunked body goes on chunked: its length is not known yet.
    if (streaming_ && stream_chunked_) ex().req.chunked(true);
    if (!ex().upgrade.empty()) {
        ex().req.set(http::field::connection, "upgrade");
        ex().req.set(http::field::upgrade, ex().upgrade);
    }
    if (client_version_ < 11) ProxyRules::ensure_host<ArenaFields>(ex().req.base());
    ProxyRules::add_forwarded<ArenaFields>(ex().req.base(), client_ip_);
    ex().req.version(11);
    // The header is laid out; the body is sent from where the parser put it.
    WireFormat::write(ex().req, ex().up_out, true);
    attempt_ = 0;
    do_try();
}

void ProxySession::do_try() {
    pool_ = routes_->pools[tries()[attempt_]].get();
    pool_->counters().in_flight.fetch_add(1, std::memory_order_relaxed);
    state_.total_in_flight.fetch_add(1, std::memory_order_relaxed);
    in_flight_ = true;
    if (!pool_->endpoint_valid()) {
        return on_upstream_failure(asio::error::host_not_found, UpstreamStep::connect);
    }
    conn_ = pool_->acquire();
    reused_ = conn_->connected;
    if (reused_) return do_upstream_write();
    do_connect();
}

void ProxySession::do_connect() {
    WorkerStats::bump(worker_.stats().upstream_connects);
    expires_after(Phase::upstream, limits_->connect_timeout);
    conn_->socket.async_connect(pool_->endpoint(),
                                beast::bind_front_handler(&ProxySession::on_connect,
                                                          shared_from_this()));
}

void ProxySession::on_connect(beast::error_code ec) {
    if (ec) return on_upstream_failure(ec, UpstreamStep::connect);
    conn_->connected = true;
    conn_->peer = pool_->endpoint();
    conn_->socket.set_option(tcp::no_delay(true), ec);
    do_upstream_write();
}

void ProxySession::do_upstream_write() {
    // One deadline for the whole exchange: the write and the read after it.
    expires_after(Phase::upstream, limits_->upstream_timeout);
    const std::array<asio::const_buffer, 2> message{asio::buffer(ex().up_out),
                                                    asio::buffer(ex().req.body())};
    asio::async_write(conn_->socket, message,
                      beast::bind_front_handler(&ProxySession::on_upstream_write,
                                                shared_from_this()));
}

void ProxySession::on_upstream_write(beast::error_code ec, std::size_t) {
    if (ec) return on_upstream_failure(ec, UpstreamStep::write);
    if (streaming_ && piece_pending_) {
        // The header is out: the first window follows, and from here the
        // body is pumped (pump_body).
        piece_pending_ = false;
        start_pump_write(pending_size_);
        return pump_body();
    }
    do_upstream_read();
}

// ------------------------------------------------------------ streamed bodies

std::size_t ProxySession::fill_window(beast::error_code& ec) {
    auto& parser = *ex().stream_parser;
    auto& body = parser.get().body();
    body.data = ex().stream_buf->data.data();
    body.size = ex().stream_buf->data.size();
    while (buffer_.size() > 0 && !parser.is_done()) {
        const std::size_t n = parser.put(buffer_.data(), ec);
        buffer_.consume(n);
        if (ec == http::error::need_buffer || ec == http::error::need_more) {
            ec = {};  // the window is full, or the bytes so far are used up
            break;
        }
        if (ec) return 0;
        if (n == 0) break;
    }
    return ex().stream_buf->data.size() - body.size;
}

void ProxySession::do_stream_parse() {
    // The first window: a body that ends within it is forwarded whole.
    beast::error_code ec;
    const std::size_t piece = fill_window(ec);
    if (ec) return on_stream_error(ec);
    if (piece > 0 || ex().stream_parser->is_done()) {
        if (ex().stream_parser->is_done()) {
            // The whole body fit in the first window: no streaming after all.
            ex().req.body().assign(ex().stream_buf->data.data(), piece);
            streaming_ = false;
            ex().stream_parser.reset();
            return do_route();
        }
        // The header goes first (do_upstream_write), then this piece.
        piece_pending_ = true;
        pending_size_ = piece;
        return do_route();
    }
    // Each read has header_timeout: a body may be long, but not stalled.
    expires_after(Phase::client, limits_->header_timeout);
    socket_.async_read_some(buffer_.prepare(stream_threshold),
                            beast::bind_front_handler(&ProxySession::on_stream_bytes,
                                                      shared_from_this()));
}

void ProxySession::on_stream_bytes(beast::error_code ec, std::size_t n) {
    if (ec == asio::error::eof) ec = http::error::partial_message;
    if (ec) return on_stream_error(ec);
    buffer_.commit(n);
    do_stream_parse();
}

// Past the first window the body is pumped: the window goes upstream while
// the next bytes come from the client into buffer_, so neither side waits
// for the other (HAProxy overlaps them the same way). Invariants: a client
// read is pending only while buffer_ is empty (everything read is in the
// window or upstream), so the parser cannot finish while one is; the window
// is parsed into only while no write of it is pending.
void ProxySession::pump_body() {
    auto& parser = *ex().stream_parser;
    if (!writing_ && !last_sent_) {
        beast::error_code ec;
        const std::size_t piece = fill_window(ec);
        if (ec) return pump_fault(ec, Phase::client);
        if (piece > 0 || parser.is_done()) start_pump_write(piece);
    }
    if (!reading_ && !parser.is_done() && buffer_.size() == 0) {
        reading_ = true;
        // Each read has header_timeout (a body may be long, but not stalled)
        // unless a write is pending: then the replica's pace is what is timed.
        if (!writing_) expires_after(Phase::client, limits_->header_timeout);
        socket_.async_read_some(buffer_.prepare(stream_threshold),
                                beast::bind_front_handler(&ProxySession::on_pump_read,
                                                          shared_from_this()));
    }
    if (!reading_ && !writing_ && last_sent_) do_upstream_read();
}

void ProxySession::start_pump_write(std::size_t piece) {
    // From here the replica has part of this body: the request cannot be
    // retried elsewhere, and its connection is not reused if it fails.
    body_sent_ = true;
    writing_ = true;
    last_sent_ = ex().stream_parser->is_done();
    // The buffer sequence is a span over a member: async_write copies the
    // span, not the array, so the array must outlive the write.
    auto& out = ex().stream_buf->out;
    const std::size_t k = WireFormat::frame_piece(
        out, ex().stream_buf->chunk_head, std::string_view(ex().stream_buf->data.data(), piece),
        stream_chunked_, last_sent_);
    expires_after(Phase::upstream, limits_->upstream_timeout);
    asio::async_write(conn_->socket, std::span<const asio::const_buffer>(out.data(), k),
                      beast::bind_front_handler(&ProxySession::on_pump_write, shared_from_this()));
}

void ProxySession::on_pump_read(beast::error_code ec, std::size_t n) {
    reading_ = false;
    if (ec == asio::error::eof) ec = http::error::partial_message;
    if (ec) return pump_fault(ec, Phase::client);
    buffer_.commit(n);
    if (pump_failed_) return pump_fault({}, Phase::client);  // the other side's fault waits for this
    pump_body();
}

void ProxySession::on_pump_write(beast::error_code ec, std::size_t) {
    writing_ = false;
    if (ec) return pump_fault(ec, Phase::upstream);
    if (pump_failed_) return pump_fault({}, Phase::upstream);
    // Only the client read may still be pending: it is timed now.
    if (reading_) expires_after(Phase::client, limits_->header_timeout);
    pump_body();
}

void ProxySession::pump_fault(beast::error_code ec, Phase side) {
    // The first fault wins; the other side's operation is cancelled, and the
    // fault is handled once both have completed (neither handler may run
    // after the connection has moved on).
    if (ec && !pump_failed_) {
        pump_failed_ = true;
        ex().pump_error = ec;
        pump_side_ = side;
        beast::error_code ignored;
        if (writing_) conn_->socket.cancel(ignored);
        if (reading_) socket_.cancel(ignored);
    }
    if (reading_ || writing_) return;
    pump_failed_ = false;
    if (pump_side_ == Phase::client) return on_stream_error(ex().pump_error);
    on_upstream_failure(ex().pump_error, UpstreamStep::write);
}

void ProxySession::on_stream_error(beast::error_code ec) {
    // The replica has an unfinished request on its connection: that
    // connection is done for, whatever happens to the client.
    if (conn_) {
        beast::error_code ignored;
        conn_->socket.close(ignored);
        conn_.reset();
    }
    if (pool_) end_try();
    routes_.reset();
    pool_ = nullptr;
    on_read_error(ec);
}

void ProxySession::do_upstream_read() {
    ex().res.body().clear();  // as in do_read_header: reuse the last answer's body capacity
    ex().up_parser = std::make_unique<ResponseParser>(std::move(ex().res));
    // Not eager: the parser stops after the header, so that a long body can
    // still be switched to streaming before any of it is parsed.
    ex().up_parser->eager(false);
    up_header_seen_ = false;
    ex().up_parser->header_limit(max_upstream_header);
    // No body limit: an answer is read whole only when its length is at most
    // a window (should_stream_response), and streamed otherwise.
    ex().up_parser->body_limit(boost::none);
    if (head_) ex().up_parser->skip(true);  // RFC 9110 §9.3.2: no body follows
    parse_upstream();
}

void ProxySession::parse_upstream() {
    // Beast's buffer-oriented parsing of what the connection holds, then a
    // plain read for more: what http::async_read does, without its layers of
    // composed operations on the hot path.
    auto& buffer = conn_->buffer;
    while (buffer.size() > 0) {
        beast::error_code ec;
        const std::size_t n = ex().up_parser->put(buffer.data(), ec);
        buffer.consume(n);
        if (ec == http::error::need_more) break;
        if (ec) return on_upstream_read(ec);
        if (ex().up_parser->is_done()) return on_upstream_read({});
        if (ex().up_parser->is_header_done() && !up_header_seen_) {
            up_header_seen_ = true;
            if (should_stream_response()) return start_response_stream();
        }
        if (n == 0) break;
    }
    conn_->socket.async_read_some(buffer.prepare(upstream_read_size),
                                  beast::bind_front_handler(&ProxySession::on_upstream_bytes,
                                                            shared_from_this()));
}

void ProxySession::on_upstream_bytes(beast::error_code ec, std::size_t n) {
    if (ec == asio::error::eof) {
        // The replica closed: that completes an answer delimited by the end
        // of the connection, and cuts any other short.
        if (!ex().up_parser->got_some()) return on_upstream_read(http::error::end_of_stream);
        ex().up_parser->put_eof(ec);
        if (!ec && !ex().up_parser->is_done()) ec = http::error::partial_message;
        return on_upstream_read(ec);
    }
    if (ec) return on_upstream_read(ec);
    conn_->buffer.commit(n);
    parse_upstream();
}

void ProxySession::on_upstream_read(beast::error_code ec) {
    if (ec) return on_upstream_failure(ec, UpstreamStep::read);
    const auto status = ex().up_parser->get().result_int();
    if (!ProxyRules::valid_status(status)) return on_upstream_failure(http::error::bad_status, UpstreamStep::read);
    if (status >= 100 && status < 200 && status != 101) return do_upstream_read();  // interim
    if (status == 101) {
        // A switch nobody asked for leaves the connection in a protocol the
        // router does not know: the replica is broken for this request.
        if (ex().upgrade.empty()) return on_upstream_failure(http::error::bad_status, UpstreamStep::read);
        return on_switching_protocols();
    }
    on_upstream_response();
}

void ProxySession::end_try() noexcept {
    if (!in_flight_) return;
    in_flight_ = false;
    pool_->counters().in_flight.fetch_sub(1, std::memory_order_relaxed);
    state_.total_in_flight.fetch_sub(1, std::memory_order_relaxed);
}

namespace {

std::string_view step_name(ProxySession::UpstreamStep step) noexcept {
    switch (step) {
        case ProxySession::UpstreamStep::connect: return "connect";
        case ProxySession::UpstreamStep::write: return "write";
        case ProxySession::UpstreamStep::read: return "read";
    }
    return "?";
}

}  // namespace

void ProxySession::on_upstream_failure(beast::error_code ec, UpstreamStep step) {
    const std::string_view what = step_name(step);
    if (take_expired(Phase::upstream)) ec = beast::error::timeout;
    if (closed_) {
        // stop() or the client went away: nobody to answer or retry for.
        end_try();
        conn_.reset();
        return;
    }
    const bool connect = step == UpstreamStep::connect;
    const bool timed_out = ec == beast::error::timeout;
    if (conn_) {
        beast::error_code ignored;
        conn_->socket.close(ignored);
        // A kept-alive connection that the replica closed while it sat idle
        // fails on first use: that says nothing about the replica, so the
        // same request gets one fresh connection to it before anything else.
        const bool stale = reused_ && !timed_out && !is_protocol_error(ec) && !body_sent_ &&
                           (idempotent_ || step == UpstreamStep::write);
        if (stale) {
            conn_ = std::make_unique<UpstreamConnection>(worker_.ioc());
            reused_ = false;
            return do_connect();
        }
        conn_.reset();
    }
    ex().up_parser.reset();
    end_try();
    WorkerStats::bump(worker_.stats().upstream_failures);
    bump(pool_->worker_stats().failures);
    // A replica that answers garbage is alive; the heartbeat engine only
    // hears of refused, reset and timed-out connections (SPEC §4).
    if (!is_protocol_error(ec)) state_.report_failure(pool_->id());
    if (!ex().retry_order) {
        const std::size_t max_tries = limits_->retries + std::size_t{1};
        ex().retry_order = std::make_unique<std::size_t[]>(max_tries);
        n_tries_ = worker_.plan(*routes_, request_id_,
                                std::span<std::size_t>(ex().retry_order.get(), max_tries), true);
    }
    // A request that never reached a replica can go anywhere; one that may
    // have been processed is retried only when repeating it is harmless.
    if (!body_sent_ && (connect || idempotent_) && attempt_ + 1 < n_tries_) {
        ++attempt_;
        WorkerStats::bump(worker_.stats().retries);
        return do_try();
    }
    const std::string hostname = pool_->hostname();
    routes_.reset();
    pool_ = nullptr;
    // Part of a streamed body may still be on its way: the connection cannot
    // carry another request.
    const bool unread = streaming_ && !ex().stream_parser->is_done();
    if (timed_out) {
        return send_error(504, "replica '" + hostname + "' did not answer in time (" +
                                   std::string(what) + ")",
                          unread);
    }
    send_error(502, "replica '" + hostname + "' failed (" + std::string(what) + "): " + ec.message() +
                        (n_tries_ > 1 ? "; every other replica tried failed too" : ""),
               unread);
}

void ProxySession::on_upstream_response() {
    end_upstream(ex().up_parser->keep_alive());
    ex().res = ex().up_parser->release();
    ex().up_parser.reset();
    answer_upstream();
}

void ProxySession::finish_try() {
    end_try();
    WorkerStats::bump(worker_.stats().proxied);
}

void ProxySession::release_upstream(bool keep_alive) {
    // Bytes after the answer mean the connection is out of step: not reused.
    if (keep_alive && !take_expired(Phase::upstream) && conn_->buffer.size() == 0) {
        const auto peer = conn_->peer;
        pool_->release(std::move(conn_), peer);
    } else {
        beast::error_code ignored;
        conn_->socket.close(ignored);
        conn_.reset();
    }
}

void ProxySession::end_upstream(bool keep_alive) {
    finish_try();
    release_upstream(keep_alive);
}

void ProxySession::answer_upstream() {
    bool header_only = head_;
    if (ex().res.result() == http::status::not_found) {
        // SPEC §3: a path no replica knows is the client's error.
        const std::string path(KeySource::path_of(ex().req.target()));
        ex().res = make_response(http::status::bad_request, client_version_);
        ex().res.set(http::field::content_type, "application/json");
        ex().res.body() =
            AdminApi::error_body("'" + path + "' endpoint does not exist in server replicas");
        ex().res.prepare_payload();
        header_only = false;
    } else {
        const FieldScan fields = ProxyRules::scan<ArenaFields>(ex().res);
        if (fields.hop_by_hop) ProxyRules::strip_hop_by_hop<ArenaFields>(ex().res);
        const unsigned status = ex().res.result_int();
        const bool bodiless = head_ || status < 200 || status == 204 || status == 304;
        // A body that came chunked, or up to the end of the connection, is
        // sent with its length, and so is one whose Content-Length was
        // repeated ("3, 3"); a single one the parser checked stays. Without
        // a body, a repeated one goes (it is optional there).
        if (!bodiless && (fields.hop_by_hop || !fields.content_length)) {
            ex().res.content_length(ex().res.body().size());
        } else if (bodiless && fields.odd_content_length) {
            ex().res.erase(http::field::content_length);
        }
        header_only = bodiless;
    }
    // Counted with the status the client gets (a replica's 404 is a 400).
    pool_->worker_stats().record(ex().res.result_int(), Clock::now() - routed_at_);
    log_access(ex().res.result_int());
    if (limits_->replica_header) ex().res.set("X-Ringlb-Replica", pool_->hostname());
    routes_.reset();
    pool_ = nullptr;
    ex().res.version(client_version_);
    // HTTP/1.1 keeps the connection by default and the Connection field is
    // gone: only closing, or keeping an HTTP/1.0 connection, needs a field.
    const bool keep = client_keep_alive_ && !draining_;
    if (!keep || client_version_ != 11 || ex().res.count(http::field::connection) > 0) {
        ex().res.keep_alive(keep);
    }
    send_response(header_only, &ProxySession::on_write);
}

void ProxySession::on_switching_protocols() {
    finish_try();
    pool_->worker_stats().record(101, Clock::now() - routed_at_);
    log_access(101);
    ex().res = ex().up_parser->release();
    ex().up_parser.reset();
    // The replica's Upgrade names the protocol it switched to (RFC 9110 §7.8).
    std::string protocol(ex().res[http::field::upgrade]);
    if (protocol.empty()) protocol = ex().upgrade;
    ProxyRules::strip_hop_by_hop<ArenaFields>(ex().res);
    ex().res.set(http::field::connection, "upgrade");
    ex().res.set(http::field::upgrade, protocol);
    if (limits_->replica_header) ex().res.set("X-Ringlb-Replica", pool_->hostname());
    routes_.reset();
    pool_ = nullptr;
    ex().res.version(11);
    send_response(true, &ProxySession::on_upgrade_written);
}

void ProxySession::on_upgrade_written(beast::error_code ec, std::size_t) {
    if (ec) return fail();
    if (draining_ || closed_) return close();
    // The replica's connection is the tunnel's now: never back to the pool.
    ex().tunnel = std::make_unique<Tunnel>(
        socket_, conn_->socket,
        [this] { expires_after(Phase::client, limits_->idle_timeout); },
        [this] { close(); });
    ex().tunnel->start(shared_from_this(), buffer_, conn_->buffer);
}

// ----------------------------------------------------------- streamed answers

bool ProxySession::should_stream_response() const {
    const auto& p = *ex().up_parser;
    const unsigned status = p.get().result_int();
    if (head_ || status < 200 || status == 204 || status == 304) return false;  // no body
    const auto length = p.content_length();
    return !length || *length > stream_threshold;
}

void ProxySession::start_response_stream() {
    if (ex().up_parser->get().result() == http::status::not_found) {
        // SPEC §3 replaces a 404's body: a long one is not read at all, and
        // the connection it is still coming on is closed.
        end_upstream(false);
        ex().res = ex().up_parser->release();
        ex().up_parser.reset();
        return answer_upstream();
    }
    // A body with a length passes verbatim: spliced, it never enters this process.
    if (const auto length = ex().up_parser->content_length(); length && *length > 0) {
        ex().splice = SplicePump::make(conn_->socket, socket_);
        if (ex().splice) return start_response_splice(*length);
    }
    // As the request side does: the parser goes on with a body that is a
    // window, so an answer of any size holds at most one window here.
    ex().up_stream = std::make_unique<StreamResponseParser>(
        static_cast<http::response_parser<http::string_body, Allocator>&&>(std::move(*ex().up_parser)));
    ex().up_parser.reset();
    ex().up_stream->body_limit(boost::none);  // streamed: no reason to cut it off
    res_header_sent_ = false;
    if (!ex().stream_buf) ex().stream_buf = std::make_unique<StreamWindow>();
    do_response_parse();
}

void ProxySession::do_response_parse() {
    auto& body = ex().up_stream->get().body();
    body.data = ex().stream_buf->data.data();
    body.size = ex().stream_buf->data.size();
    auto& buffer = conn_->buffer;
    while (buffer.size() > 0 && !ex().up_stream->is_done()) {
        beast::error_code ec;
        const std::size_t n = ex().up_stream->put(buffer.data(), ec);
        buffer.consume(n);
        if (ec == http::error::need_buffer || ec == http::error::need_more) break;
        if (ec) return on_response_stream_error(ec);
        if (n == 0) break;
    }
    const std::size_t piece = ex().stream_buf->data.size() - body.size;
    if (piece > 0 || ex().up_stream->is_done()) return do_response_write(piece);
    expires_after(Phase::upstream, limits_->upstream_timeout);
    // A window per read: fewer, larger pieces for a body that keeps coming.
    conn_->socket.async_read_some(buffer.prepare(stream_threshold),
                                  beast::bind_front_handler(&ProxySession::on_response_bytes,
                                                            shared_from_this()));
}

void ProxySession::on_response_bytes(beast::error_code ec, std::size_t n) {
    if (ec == asio::error::eof) {
        // The end of an answer delimited by the close; any other is cut short.
        ex().up_stream->put_eof(ec);
        if (!ec && !ex().up_stream->is_done()) ec = http::error::partial_message;
        if (!ec) return do_response_parse();
    }
    if (ec) return on_response_stream_error(ec);
    conn_->buffer.commit(n);
    do_response_parse();
}

void ProxySession::do_response_write(std::size_t piece) {
    const bool last = ex().up_stream->is_done();
    if (!res_header_sent_ && last) {
        // It all fit in the first window: answered whole, with its length.
        end_upstream(ex().up_stream->keep_alive());
        ex().res.base() = std::move(ex().up_stream->get().base());
        ex().res.body().assign(ex().stream_buf->data.data(), piece);
        ex().up_stream.reset();
        return answer_upstream();
    }
    std::size_t k = 0;
    auto& out = ex().stream_buf->out;
    if (!res_header_sent_) {
        ex().res.base() = std::move(ex().up_stream->get().base());
        prepare_stream_header(ex().up_stream->content_length());
        out[k++] = asio::buffer(ex().out);
    }
    k += WireFormat::frame_piece(std::span(out).subspan(k), ex().stream_buf->chunk_head,
                                 std::string_view(ex().stream_buf->data.data(), piece), res_chunked_, last);
    expires_after(Phase::client, limits_->idle_timeout);
    asio::async_write(socket_, std::span<const asio::const_buffer>(out.data(), k),
                      beast::bind_front_handler(&ProxySession::on_response_write,
                                                shared_from_this()));
}

void ProxySession::prepare_stream_header(boost::optional<std::uint64_t> length) {
    finish_try();
    ex().res.body().clear();
    // Its duration is the time to the header: the body's is the client's pace.
    pool_->worker_stats().record(ex().res.result_int(), Clock::now() - routed_at_);
    log_access(ex().res.result_int());
    ProxyRules::strip_hop_by_hop<ArenaFields>(ex().res);
    // The length the replica gave, else chunked to an HTTP/1.1 client,
    // else (HTTP/1.0) the close ends the body.
    res_chunked_ = !length && client_version_ == 11;
    if (length) ex().res.content_length(*length);
    else if (res_chunked_) ex().res.chunked(true);
    if (limits_->replica_header) ex().res.set("X-Ringlb-Replica", pool_->hostname());
    ex().res.version(client_version_);
    res_keep_ = client_keep_alive_ && !draining_ && (length || res_chunked_);
    if (!res_keep_ || client_version_ != 11) ex().res.keep_alive(res_keep_);
    WireFormat::write(ex().res, ex().out, true);
    res_header_sent_ = true;
    WorkerStats::bump(worker_.stats().requests);
}

void ProxySession::on_response_write(beast::error_code ec, std::size_t) {
    if (ec) return fail();
    if (!ex().up_stream->is_done()) return do_response_parse();
    end_response_stream(ex().up_stream->keep_alive());
}

void ProxySession::end_response_stream(bool upstream_keep_alive) {
    release_upstream(upstream_keep_alive);
    ex().up_stream.reset();
    routes_.reset();
    pool_ = nullptr;
    busy_ = false;
    answered_ = true;
    if (!res_keep_ || draining_) return close();
    release_buffers();
    do_wait_request();
}

void ProxySession::start_response_splice(std::uint64_t length) {
    // The header as the window path sends it; then what the replica sent
    // after its header (the body's start) goes out with it, and the rest is
    // spliced from socket to socket.
    const bool upstream_keep_alive = ex().up_parser->keep_alive();
    ex().res.base() = std::move(ex().up_parser->get().base());
    ex().up_parser.reset();
    prepare_stream_header(length);
    const std::size_t early =
        static_cast<std::size_t>(std::min<std::uint64_t>(conn_->buffer.size(), length));
    const std::array<asio::const_buffer, 2> out{asio::buffer(ex().out),
                                                asio::buffer(conn_->buffer.data().data(), early)};
    expires_after(Phase::client, limits_->idle_timeout);
    asio::async_write(
        socket_, out,
        [this, self = shared_from_this(), left = length - early, early,
         upstream_keep_alive](beast::error_code ec, std::size_t) {
            if (ec) return fail();
            conn_->buffer.consume(early);
            if (left == 0) {
                ex().splice.reset();
                return end_response_stream(upstream_keep_alive);
            }
            ex().splice->start(
                self, left,
                [this](SplicePump::Side side) {
                    if (side == SplicePump::Side::from) {
                        expires_after(Phase::upstream, limits_->upstream_timeout);
                    } else {
                        expires_after(Phase::client, limits_->idle_timeout);
                    }
                },
                [this, upstream_keep_alive](beast::error_code ec, SplicePump::Side side) {
                    ex().splice.reset();
                    if (!ec) return end_response_stream(upstream_keep_alive);
                    // Part of the answer is out: the client can only be told by the close.
                    if (side == SplicePump::Side::from) {
                        WorkerStats::bump(worker_.stats().upstream_failures);
                    }
                    routes_.reset();
                    pool_ = nullptr;
                    close();
                });
        });
}

void ProxySession::on_response_stream_error(beast::error_code ec) {
    if (!res_header_sent_) {
        // Nothing reached the client yet: a failed try like any other.
        ex().up_stream.reset();
        return on_upstream_failure(ec, UpstreamStep::read);
    }
    // Part of the answer is out: all the client can be told is the close.
    WorkerStats::bump(worker_.stats().upstream_failures);
    ex().up_stream.reset();
    routes_.reset();
    pool_ = nullptr;
    close();
}

// ------------------------------------------------------------------- answers

ProxySession::Response ProxySession::make_response(http::status status, unsigned version) {
    Response res(std::piecewise_construct, std::make_tuple(),
                 std::make_tuple(Allocator(&worker_.arena())));
    res.result(status);
    res.version(version);
    return res;
}

void ProxySession::send_error(unsigned status, std::string_view message, bool close) {
    prepare_error(status, message, close);
    do_write();
}

void ProxySession::log_access(unsigned status) {
    if (!state_.access_log) return;
    AccessLog::Entry e;
    e.client = client_ip_;
    // Before the request was parsed whole (a malformed one), there is none.
    const bool parsed = routed_ || !ex().req.target().empty();
    e.method = parsed ? std::string_view(ex().req.method_string()) : std::string_view("-");
    e.target = parsed ? std::string_view(ex().req.target()) : std::string_view("-");
    e.key = routed_ ? request_id_ : 0;
    e.replica = pool_ ? std::string_view(pool_->hostname()) : std::string_view();
    e.status = status;
    e.duration = routed_ ? Clock::now() - routed_at_ : std::chrono::nanoseconds{};
    e.retries = routed_ ? attempt_ : 0;
    state_.access_log->record(e);
}

void ProxySession::prepare_error(unsigned status, std::string_view message, bool close) {
    log_access(status);
    ex().res = make_response(static_cast<http::status>(status), 11);
    ex().res.set(http::field::content_type, "application/json");
    ex().res.body() = AdminApi::error_body(message);
    ex().res.prepare_payload();
    close_after_ = close;
    ex().res.keep_alive(!close && client_keep_alive_ && !draining_);
    if (status >= 500) WorkerStats::bump(worker_.stats().errors);
}

void ProxySession::do_write() {
    if (closed_) return;
    // A HEAD answer keeps its Content-Length but sends no body.
    send_response(ex().res.body().empty() && ex().res.has_content_length(), &ProxySession::on_write);
}

void ProxySession::send_response(bool header_only, WriteDone then) {
    WireFormat::write(ex().res, ex().out, header_only);
    // Counted as answered before the write: the client may read the answer
    // before the write's completion handler runs.
    WorkerStats::bump(worker_.stats().requests);
    expires_after(Phase::client, limits_->idle_timeout);
    asio::async_write(socket_, asio::buffer(ex().out),
                      beast::bind_front_handler(then, shared_from_this()));
}

void ProxySession::on_write(beast::error_code ec, std::size_t) {
    busy_ = false;
    answered_ = true;
    if (ec) return fail();
    if (close_after_) return do_linger();
    if (!ex().res.keep_alive() || draining_) return close();
    release_buffers();
    do_wait_request();
}

void ProxySession::release_buffers() {
    // The request and its answer are done with; only a pipelined request may
    // still be in buffer_. What one large message made grow goes back.
    streaming_ = false;
    ex().stream_parser.reset();
    ex().stream_buf.reset();
    trim(ex().req.body());
    trim(ex().res.body());
    trim(ex().out);
    trim(ex().up_out);
    trim(ex().scratch);
    if (buffer_.capacity() > idle_keep_bytes && buffer_.size() <= idle_keep_bytes) {
        buffer_.shrink_to_fit();
    }
}

void ProxySession::do_linger() {
    if (!ex().linger_buf) {
        beast::error_code ec;
        socket_.shutdown(tcp::socket::shutdown_send, ec);
        ex().linger_buf = std::make_unique<std::array<char, 4096>>();
        expires_after(Phase::client, linger_time);
        linger_left_ = linger_bytes;
    }
    socket_.async_read_some(asio::buffer(*ex().linger_buf),
                            beast::bind_front_handler(&ProxySession::on_linger, shared_from_this()));
}

void ProxySession::on_linger(beast::error_code ec, std::size_t n) {
    if (ec || n >= linger_left_) return close();
    linger_left_ -= n;
    do_linger();
}

void ProxySession::fail() {
    // Client-side network errors (reset, broken pipe, timeout) end the
    // connection; there is no one left to answer.
    close();
}

}  // namespace ringlb
