// Test support for the router's end-to-end tests: a real in-process HTTP/1.1
// upstream (and the acceptor under it), a one-request client, a port nobody listens on, a router config.
#pragma once

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <atomic>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "ringlb/router.hpp"

namespace router_test {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

// Accepts connections on 127.0.0.1, on a port of its own, in a thread of its
// own, and hands each to `on_connection` in that thread until stop().
class TestAcceptor {
public:
    explicit TestAcceptor(std::function<void(tcp::socket)> on_connection)
        : on_connection_(std::move(on_connection)),
          acceptor_(ioc_, {asio::ip::make_address("127.0.0.1"), 0}),
          port_(acceptor_.local_endpoint().port()),
          thread_([this] { accept_loop(); }) {}
    ~TestAcceptor() { stop(); }
    TestAcceptor(const TestAcceptor&) = delete;
    TestAcceptor& operator=(const TestAcceptor&) = delete;

    std::uint16_t port() const { return port_; }

    // Returns once no connection is accepted or handed on any more.
    void stop() {
        if (!thread_.joinable()) return;
        stopping_ = true;
        beast::error_code ec;
        tcp::socket poke(ioc_);
        poke.connect(acceptor_.local_endpoint(), ec);  // unblocks accept()
        thread_.join();
    }

private:
    void accept_loop() {
        for (;;) {
            beast::error_code ec;
            tcp::socket s(ioc_);
            acceptor_.accept(s, ec);
            if (stopping_ || ec) return;
            on_connection_(std::move(s));
        }
    }

    std::function<void(tcp::socket)> on_connection_;
    asio::io_context ioc_;
    tcp::acceptor acceptor_;
    std::uint16_t port_;
    std::atomic<bool> stopping_{false};
    std::thread thread_;  // last: it runs on every member above
};

// A real (synchronous, one thread per connection) HTTP/1.1 server answering
// every GET with 200 and "up:<name>".
class Upstream {
public:
    // With `echo`, every answer's body is the request's body.
    explicit Upstream(std::string name, bool echo = false)
        : name_(std::move(name)), echo_(echo), acceptor_([this](tcp::socket s) {
              std::lock_guard lock(mutex_);
              sessions_.emplace_back([this, s = std::move(s)]() mutable { serve(std::move(s)); });
          }) {}
    ~Upstream() {
        acceptor_.stop();
        std::lock_guard lock(mutex_);
        for (auto& t : sessions_) t.join();
    }
    std::uint16_t port() const { return acceptor_.port(); }
    int served() const { return served_.load(); }

private:
    void serve(tcp::socket s) {
        beast::flat_buffer buf;
        for (;;) {
            http::request_parser<http::string_body> parser;
            parser.body_limit(64u << 20);  // Beast's default, 1 MiB, is below the streaming tests'
            beast::error_code ec;
            http::read(s, buf, parser, ec);
            if (ec) return;
            auto req = parser.release();
            http::response<http::string_body> res(http::status::ok, 11);
            res.body() = echo_ ? std::move(req.body()) : "up:" + name_;
            res.keep_alive(req.keep_alive());
            res.prepare_payload();
            http::write(s, res, ec);
            ++served_;
            if (ec || !req.keep_alive()) return;
        }
    }

    std::string name_;
    bool echo_ = false;
    std::atomic<int> served_{0};
    std::mutex mutex_;
    std::vector<std::thread> sessions_;
    TestAcceptor acceptor_;  // last: it hands connections to the members above
};

struct Reply {
    unsigned status = 0;
    std::string replica;
    std::string body;
    std::string content_type;
};

inline Reply fetch(std::uint16_t port, http::verb method, const std::string& target,
                   const std::string& body = "", bool chunked = false) {
    asio::io_context ioc;
    tcp::socket s(ioc);
    s.connect({asio::ip::make_address("127.0.0.1"), port});
    http::request<http::string_body> req(method, target, 11);
    req.set(http::field::host, "x");
    req.keep_alive(false);
    req.body() = body;
    req.prepare_payload();
    if (chunked) req.chunked(true);
    http::write(s, req);
    beast::flat_buffer buf;
    http::response<http::string_body> res;
    http::read(s, buf, res);
    return {res.result_int(), std::string(res["X-Ringlb-Replica"]), res.body(),
            std::string(res[http::field::content_type])};
}

inline std::uint16_t closed_port() {
    asio::io_context ioc;
    tcp::acceptor a(ioc, {asio::ip::make_address("127.0.0.1"), 0});
    return a.local_endpoint().port();  // closed again when `a` goes
}

inline ringlb::RouterConfig config() {
    ringlb::RouterConfig c;
    c.port = 0;
    c.threads = 2;
    c.key = "query:id";
    return c;
}

}  // namespace router_test
