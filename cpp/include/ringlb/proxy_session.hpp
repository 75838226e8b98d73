// ProxySession: one client connection of the router, from accept to close.
//
// The shape is Beast's async server examples: every step is a do_x() that
// starts an operation with its timeout set just before, and an on_x(ec, ...)
// that handles the result; the session stays alive through the
// shared_from_this() handlers hold, runs on its IoWorker's single thread (its
// strand), and every error ends in fail().
//
//   wait_request (idle_timeout) -> read_header (header_timeout) -> [read_body]
//     -> admin (/rep here, /add and /rm on the control worker)
//     -> or proxy: route -> [connect] -> upstream write -> upstream read
//          -> on a refused / reset / timed-out upstream: report it, next replica
//   -> write (the response) -> wait_request again, or close
//
// Requests on one connection are answered strictly in order: the next
// request is read only when the previous response is written, so pipelined
// requests (already in the read buffer) come back in order.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include <array>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>

#include "ringlb/router.hpp"
#include "ringlb/upstream_pool.hpp"

namespace ringlb {

class IoWorker;
class RouterState;
struct RouteTable;

class ProxySession : public std::enable_shared_from_this<ProxySession> {
public:
    // Precondition: called on `worker`'s thread; `socket` belongs to its io_context.
    ProxySession(IoWorker& worker, boost::asio::ip::tcp::socket socket);
    ~ProxySession();
    ProxySession(const ProxySession&) = delete;
    ProxySession& operator=(const ProxySession&) = delete;

    void run();
    // Router::stop(): an idle connection closes now, a busy one after its response.
    void shutdown();
    // Closes the client connection at once (pending operations end with an error).
    void close() noexcept;

private:
    using Request = boost::beast::http::request<boost::beast::http::string_body>;
    using Response = boost::beast::http::response<boost::beast::http::string_body>;

    // Client side.
    void do_wait_request();
    void on_first_bytes(boost::beast::error_code ec, std::size_t n);
    void do_read_header();
    void on_read_header(boost::beast::error_code ec, std::size_t n);
    void do_continue();
    void on_continue(boost::beast::error_code ec, std::size_t n);
    void do_read_body();
    void on_read_body(boost::beast::error_code ec, std::size_t n);
    void on_request();
    void on_read_error(boost::beast::error_code ec);

    // Admin endpoints.
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
    void on_upstream_read(boost::beast::error_code ec, std::size_t n);
    void on_upstream_failure(boost::beast::error_code ec, const char* what);
    void end_try() noexcept;
    void on_upstream_response();

    // Answers.
    // An error answer in res_ ({"message": "<Error> ...", "status": "failure"}).
    void prepare_error(unsigned status, std::string_view message, bool close = false);
    void send_error(unsigned status, std::string_view message, bool close = false);
    void do_write();
    void on_write(boost::beast::error_code ec, std::size_t n);
    void do_linger();
    void on_linger(boost::beast::error_code ec, std::size_t n);
    void fail(boost::beast::error_code ec, const char* what);

    IoWorker& worker_;
    RouterState& state_;
    boost::beast::tcp_stream client_;
    boost::beast::flat_buffer buffer_;
    std::string client_ip_;
    std::optional<boost::beast::http::request_parser<boost::beast::http::string_body>> parser_;
    Request req_;
    Response res_;
    std::string scratch_;  // percent-decoded keys
    bool busy_ = false;        // between a complete request header and its response
    bool draining_ = false;    // stop(): close after the current response
    bool close_after_ = false;  // the response in res_ ends the connection
    bool closed_ = false;

    // The request being proxied.
    bool client_keep_alive_ = true;
    unsigned client_version_ = 11;
    bool head_ = false;
    bool idempotent_ = true;
    std::shared_ptr<const RouteTable> routes_;
    std::array<std::size_t, 65> tries_{};  // member indices, retries + 1 at most
    std::size_t n_tries_ = 0;
    std::size_t attempt_ = 0;
    UpstreamPool* pool_ = nullptr;  // tries_[attempt_]'s pool, kept alive by routes_
    std::unique_ptr<UpstreamConnection> conn_;
    bool reused_ = false;     // conn_ came from the idle pool
    bool in_flight_ = false;  // counted in the replica's in-flight load
    bool timed_out_ = false;  // the last failure was a timeout
    std::optional<boost::beast::http::response_parser<boost::beast::http::string_body>> up_parser_;
    std::unique_ptr<std::array<char, 4096>> linger_buf_;
    std::size_t linger_left_ = 0;
};

}  // namespace ringlb
