#include "replica_session.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/bind_handler.hpp>
#include <boost/beast/http/error.hpp>

#include <vector>

namespace ringlb::replica {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

// Bytes asked for per read; a request header may be no larger than
// header_limit, and the buffer holds at most what one read brings on top.
constexpr std::size_t read_size = 16384;
constexpr std::uint32_t header_limit = 8192;
constexpr std::uint64_t body_limit = 1u << 20;

}  // namespace

// ------------------------------------------------------------------ Sessions

void Sessions::on_drained(std::function<void()> f) {
    const std::lock_guard lock(mutex_);
    on_drained_ = std::move(f);
}

bool Sessions::add(ReplicaSession* s) {
    const std::lock_guard lock(mutex_);
    live_.insert(s);
    return !stopping_;
}

void Sessions::remove(ReplicaSession* s) {
    const std::lock_guard lock(mutex_);
    live_.erase(s);
    if (stopping_ && live_.empty() && on_drained_) on_drained_();
}

void Sessions::stop_all() {
    std::vector<std::shared_ptr<ReplicaSession>> alive;
    {
        const std::lock_guard lock(mutex_);
        stopping_ = true;
        if (live_.empty()) {
            if (on_drained_) on_drained_();
            return;
        }
        // A session whose destructor waits for this lock is already gone.
        for (ReplicaSession* s : live_) {
            if (auto p = s->weak_from_this().lock()) alive.push_back(std::move(p));
        }
    }
    // Outside the lock: the last reference to a session may be dropped here,
    // and its destructor takes the lock.
    for (const auto& s : alive) asio::post(s->executor(), [s] { s->stop(); });
}

// ------------------------------------------------------------ ReplicaSession

ReplicaSession::ReplicaSession(Socket socket, const Answers& answers, Sessions& sessions,
                               std::chrono::milliseconds idle_timeout)
    : socket_(std::move(socket)), timer_(socket_.get_executor()), answers_(answers),
      sessions_(sessions), idle_timeout_(idle_timeout), buffer_(header_limit + read_size) {
    stopping_ = !sessions_.add(this);
}

ReplicaSession::~ReplicaSession() { sessions_.remove(this); }

void ReplicaSession::run() {
    beast::error_code ec;
    socket_.set_option(tcp::no_delay(true), ec);
    last_activity_ = Clock::now();
    arm_timer(last_activity_ + idle_timeout_);
    do_read();
}

void ReplicaSession::stop() {
    stopping_ = true;
    if (idle()) close();
}

bool ReplicaSession::idle() const noexcept {
    // Beast's parser takes in a request line before the rest of its header:
    // a request has begun once either the buffer or the parser holds a byte.
    return reading_ && buffer_.size() == 0 && (!parser_ || !parser_->got_some());
}

void ReplicaSession::do_read() {
    if (closed_) return;
    if (stopping_ && idle()) return close();
    reading_ = true;
    socket_.async_read_some(buffer_.prepare(read_size),
                            beast::bind_front_handler(&ReplicaSession::on_read,
                                                      shared_from_this()));
}

void ReplicaSession::on_read(beast::error_code ec, std::size_t n) {
    reading_ = false;
    if (ec) return close();
    last_activity_ = Clock::now();
    buffer_.commit(n);
    serve();
}

void ReplicaSession::serve() {
    std::size_t answered = 0;
    while (buffer_.size() > 0 && answered < max_batch && !close_after_) {
        if (!parser_) {
            parser_.emplace();
            parser_->eager(true);
            parser_->header_limit(header_limit);
            parser_->body_limit(body_limit);
        }
        beast::error_code ec;
        const std::size_t used = parser_->put(buffer_.data(), ec);
        buffer_.consume(used);
        if (ec == http::error::need_more) break;
        if (ec) {
            // Malformed, or too large: say so, then close.
            const Resource error = ec == http::error::header_limit ? Resource::header_too_large
                                   : ec == http::error::body_limit ? Resource::body_too_large
                                                                   : Resource::bad_request;
            answer(error, 11, false, false);
            break;
        }
        if (parser_->is_done()) {
            const auto& req = parser_->get();
            const auto target = req.target();
            const auto path = target.substr(0, target.find('?'));
            const bool head = req.method() == http::verb::head;
            const bool get_or_head = head || req.method() == http::verb::get;
            answer(Answers::route(path, get_or_head), req.version(),
                   req.keep_alive() && !stopping_, head);
            parser_.reset();
            ++answered;
            continue;
        }
        if (used == 0) break;
    }
    if (!out_.empty()) return do_write();
    // A header that can never complete within the buffer is too large.
    if (buffer_.size() >= buffer_.max_size() - read_size) {
        answer(Resource::header_too_large, 11, false, false);
        return do_write();
    }
    do_read();
}

void ReplicaSession::answer(Resource r, unsigned version, bool keep_alive, bool head) {
    out_ += answers_.get(r, version, keep_alive, head);
    if (Answers::closes(r) || !keep_alive) close_after_ = true;
}

void ReplicaSession::do_write() {
    asio::async_write(socket_, asio::buffer(out_),
                      beast::bind_front_handler(&ReplicaSession::on_write, shared_from_this()));
}

void ReplicaSession::on_write(beast::error_code ec, std::size_t) {
    if (ec) return close();
    last_activity_ = Clock::now();
    out_.clear();
    if (close_after_ || stopping_) {
        // The answers are out: a graceful end (FIN, not a reset), which the
        // client reads after the last answer.
        beast::error_code ignored;
        socket_.shutdown(tcp::socket::shutdown_send, ignored);
        return close();
    }
    // More pipelined requests may be waiting beyond one batch.
    if (buffer_.size() > 0) return serve();
    do_read();
}

void ReplicaSession::arm_timer(Clock::time_point at) {
    timer_.expires_at(at);
    timer_.async_wait(beast::bind_front_handler(&ReplicaSession::on_timer, shared_from_this()));
}

void ReplicaSession::on_timer(beast::error_code ec) {
    if (ec || closed_) return;
    const auto due = last_activity_ + idle_timeout_;
    if (Clock::now() < due) return arm_timer(due);
    close();
}

void ReplicaSession::close() {
    if (closed_) return;
    closed_ = true;
    beast::error_code ignored;
    socket_.close(ignored);
    timer_.cancel();
}

}  // namespace ringlb::replica
