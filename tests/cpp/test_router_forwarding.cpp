// What the router forwards, byte for byte, in both directions: a raw replica
// records the request it gets and answers with canned bytes. The cases are
// the findings of the fuzz targets (fuzz/), end to end through ProxySession.
#include <gtest/gtest.h>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <array>
#include <chrono>
#include <atomic>
#include <cstdio>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "ringlb/router.hpp"
#include "upstream_server.hpp"

namespace {

using namespace router_test;  // asio, beast, http, tcp, TestAcceptor

// Answers each connection's first request with `answer`, then closes it (or,
// with `echo`, sends back every byte it gets until the client ends its
// stream); keeps the bytes of the last request it read.
class RawReplica {
public:
    explicit RawReplica(std::string answer, bool echo = false)
        : answer_(std::move(answer)), echo_(echo),
          acceptor_([this](tcp::socket s) { serve(std::move(s)); }) {}
    std::uint16_t port() const { return acceptor_.port(); }
    std::string received() {
        std::lock_guard lock(mutex_);
        return received_;
    }

private:
    void serve(tcp::socket s) {
        beast::error_code ec;
        // Reads one whole request, keeping its bytes as they came.
        std::string bytes;
        std::array<char, 4096> chunk;
        while (!complete(bytes)) {
            const std::size_t n = s.read_some(asio::buffer(chunk), ec);
            if (ec) break;
            bytes.append(chunk.data(), n);
        }
        {
            std::lock_guard lock(mutex_);
            received_ = bytes;
        }
        asio::write(s, asio::buffer(answer_), ec);
        while (echo_ && !ec) {
            const std::size_t n = s.read_some(asio::buffer(chunk), ec);
            if (!ec) asio::write(s, asio::buffer(chunk.data(), n), ec);
        }
        s.shutdown(tcp::socket::shutdown_both, ec);
    }

    // Whether `bytes` hold a whole request (requests here are small: parsed anew each time).
    static bool complete(std::string_view bytes) {
        http::request_parser<http::string_body> parser;
        parser.eager(true);
        while (!bytes.empty() && !parser.is_done()) {
            beast::error_code ec;
            const std::size_t n = parser.put(asio::buffer(bytes.data(), bytes.size()), ec);
            if (ec || n == 0) break;
            bytes.remove_prefix(n);
        }
        return parser.is_done();
    }

    std::string answer_;
    bool echo_ = false;
    std::mutex mutex_;
    std::string received_;
    TestAcceptor acceptor_;  // last: it serves with the members above
};

// Sends raw bytes to the router and reads until it closes the connection.
std::string exchange(std::uint16_t port, const std::string& request) {
    asio::io_context ioc;
    tcp::socket s(ioc);
    s.connect({asio::ip::make_address("127.0.0.1"), port});
    asio::write(s, asio::buffer(request));
    std::string out;
    beast::error_code ec;
    asio::read(s, asio::dynamic_buffer(out), ec);
    return out;
}

std::size_t occurrences(const std::string& s, const std::string& what) {
    std::size_t n = 0;
    for (auto p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) ++n;
    return n;
}

struct Fixture {
    explicit Fixture(std::string answer, bool echo = false,
                     std::chrono::milliseconds idle = std::chrono::milliseconds{60000})
        : replica(std::move(answer), echo), router([idle] {
        ringlb::RouterConfig c;
        c.port = 0;
        c.threads = 1;
        c.retries = 0;
        c.idle_timeout = idle;
        return c;
    }()) {
        router.replicas().add({{1, "Raw", "127.0.0.1", replica.port()}});
        router.start();
    }
    RawReplica replica;
    ringlb::Router router;
};

constexpr const char* ok = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

TEST(RouterForwarding, TrailersOfAChunkedRequestDoNotReachTheReplica) {
    Fixture f(ok);
    const std::string answer = exchange(
        f.router.port(),
        "POST /up HTTP/1.1\r\nHost: lb\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        "3\r\nabc\r\n0\r\nHost: evil\r\nX-Late: 1\r\n\r\n");
    EXPECT_EQ(answer.substr(0, 15), "HTTP/1.1 200 OK");
    const std::string sent = f.replica.received();
    EXPECT_EQ(occurrences(sent, "\r\nHost:"), 1u) << sent;  // not X-Forwarded-Host
    EXPECT_EQ(sent.find("evil"), std::string::npos) << sent;
    EXPECT_EQ(sent.find("X-Late"), std::string::npos) << sent;
    EXPECT_NE(sent.find("\r\nContent-Length: 3\r\n"), std::string::npos) << sent;
    EXPECT_TRUE(sent.ends_with("\r\n\r\nabc")) << sent;
}

TEST(RouterForwarding, AnHttp10RequestWithoutHostGoesUpstreamWithOne) {
    Fixture f(ok);
    exchange(f.router.port(), "GET /home HTTP/1.0\r\n\r\n");
    const std::string sent = f.replica.received();
    EXPECT_EQ(sent.substr(0, 20), "GET /home HTTP/1.1\r\n") << sent;
    EXPECT_EQ(occurrences(sent, "Host:"), 1u) << sent;
}

TEST(RouterForwarding, ARepeatedContentLengthFromTheReplicaGoesOnAsOneValue) {
    Fixture f("HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\nContent-Length: 3\r\n\r\nabc");
    const std::string answer =
        exchange(f.router.port(), "GET /home HTTP/1.1\r\nHost: lb\r\nConnection: close\r\n\r\n");
    EXPECT_EQ(occurrences(answer, "Content-Length"), 1u) << answer;
    EXPECT_NE(answer.find("Content-Length: 3\r\n"), std::string::npos) << answer;
    EXPECT_EQ(answer.substr(answer.size() - 3), "abc");
}

TEST(RouterForwarding, TrailersOfAChunkedAnswerDoNotReachTheClient) {
    Fixture f("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nSet-Cookie: late=1\r\n\r\n");
    const std::string answer =
        exchange(f.router.port(), "GET /home HTTP/1.1\r\nHost: lb\r\nConnection: close\r\n\r\n");
    EXPECT_EQ(answer.find("Set-Cookie"), std::string::npos) << answer;
    EXPECT_NE(answer.find("Content-Length: 2\r\n"), std::string::npos) << answer;
}

TEST(RouterForwarding, AnAnswerWithAStatusBelow100IsABadGateway) {
    Fixture f("HTTP/1.1 004 Odd\r\nContent-Type: text/plain\r\n\r\nbody up to the close");
    const std::string answer =
        exchange(f.router.port(), "GET /home HTTP/1.1\r\nHost: lb\r\nConnection: close\r\n\r\n");
    EXPECT_EQ(answer.substr(0, 12), "HTTP/1.1 502") << answer;
    EXPECT_NE(answer.find("bad status"), std::string::npos) << answer;
}

TEST(RouterForwarding, ATransferEncodingBeforeChunkedIsRefusedNotSmuggled) {
    Fixture f(ok);
    // The body, once decoded, is a whole request: forwarded without a length
    // it would be the replica's next request.
    const std::string body = "GET /smuggled HTTP/1.1\r\nHost: lb\r\n\r\n";
    char size[16];
    std::snprintf(size, sizeof size, "%zx", body.size());
    const std::string answer = exchange(
        f.router.port(), "POST /s HTTP/1.1\r\nHost: lb\r\nTransfer-Encoding: x\r\n"
                         "Transfer-Encoding: chunked\r\n\r\n" + std::string(size) + "\r\n" + body +
                             "\r\n0\r\n\r\n");
    EXPECT_EQ(answer.substr(0, 12), "HTTP/1.1 501") << answer;
    EXPECT_EQ(f.replica.received(), "");
}

// RFC 9110 §7.8: the 101 reaches the client with the protocol's fields,
// then bytes go both ways unread: what the client sent right behind its
// request, what the replica sent right behind its 101, and the rest; the
// client's end of stream is passed on and the replica's close ends it.
TEST(RouterForwarding, AnUpgradedConnectionBecomesATunnelToTheReplica) {
    Fixture f("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n"
              "\r\nhello;",
              true);
    asio::io_context ioc;
    tcp::socket s(ioc);
    s.connect({asio::ip::make_address("127.0.0.1"), f.router.port()});
    asio::write(s, asio::buffer(std::string_view(
                       "GET /ws HTTP/1.1\r\nHost: lb\r\nConnection: keep-alive, Upgrade\r\n"
                       "Upgrade: echo\r\nKeep-Alive: 5\r\n\r\nearly;")));
    std::string got;
    beast::error_code ec;
    const auto read_until = [&](std::string_view what) {
        std::array<char, 4096> chunk;
        while (got.find(what) == std::string::npos) {
            const std::size_t n = s.read_some(asio::buffer(chunk), ec);
            if (ec) return;
            got.append(chunk.data(), n);
        }
    };
    read_until("early;");
    ASSERT_FALSE(ec) << ec.message() << got;
    EXPECT_TRUE(got.starts_with("HTTP/1.1 101 Switching Protocols\r\n")) << got;
    EXPECT_NE(got.find("\r\nConnection: upgrade\r\n"), std::string::npos) << got;
    EXPECT_NE(got.find("\r\nUpgrade: echo\r\n"), std::string::npos) << got;
    EXPECT_NE(got.find("\r\n\r\nhello;"), std::string::npos) << got;
    asio::write(s, asio::buffer(std::string_view("ping")));
    read_until("ping");
    ASSERT_FALSE(ec) << ec.message();
    s.shutdown(tcp::socket::shutdown_send);  // the replica sees the end and closes
    std::string rest;
    asio::read(s, asio::dynamic_buffer(rest), ec);
    EXPECT_EQ(ec, asio::error::eof);
    const std::string sent = f.replica.received();
    EXPECT_NE(sent.find("\r\nConnection: upgrade\r\n"), std::string::npos) << sent;
    EXPECT_NE(sent.find("\r\nUpgrade: echo\r\n"), std::string::npos) << sent;
    EXPECT_EQ(sent.find("Keep-Alive"), std::string::npos) << sent;
}

TEST(RouterForwarding, ATunnelIdleForLongerThanTheIdleTimeoutIsClosed) {
    Fixture f("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: x\r\n\r\n",
              true, std::chrono::milliseconds{300});
    const auto started = std::chrono::steady_clock::now();
    const std::string answer = exchange(
        f.router.port(), "GET / HTTP/1.1\r\nHost: lb\r\nConnection: upgrade\r\nUpgrade: x\r\n\r\n");
    EXPECT_TRUE(answer.starts_with("HTTP/1.1 101 ")) << answer;
    EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(5));
}

TEST(RouterForwarding, ASwitchNobodyAskedForIsABadGateway) {
    Fixture f("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: x\r\n\r\n");
    const std::string answer =
        exchange(f.router.port(), "GET / HTTP/1.1\r\nHost: lb\r\nConnection: close\r\n\r\n");
    EXPECT_TRUE(answer.starts_with("HTTP/1.1 502 ")) << answer;
    // An HTTP/1.0 request cannot ask for one (RFC 9110 §7.8): Upgrade is dropped.
    Fixture g(ok);
    exchange(g.router.port(), "GET / HTTP/1.0\r\nConnection: upgrade\r\nUpgrade: x\r\n\r\n");
    EXPECT_EQ(g.replica.received().find("Upgrade"), std::string::npos) << g.replica.received();
}

// Issue 13.5: an answer longer than a window, chunked or delimited by the
// replica's close goes to the client as it arrives, framed for the client.
std::string pattern(std::size_t n) {
    std::string s(n, '\0');
    for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + i % 26);
    return s;
}

std::string body_of(const std::string& answer, bool chunked) {
    const std::string body = answer.substr(answer.find("\r\n\r\n") + 4);
    if (!chunked) return body;
    std::string out;
    for (std::size_t at = 0;;) {
        const std::size_t line = body.find("\r\n", at);
        const std::size_t n = std::stoul(body.substr(at, line - at), nullptr, 16);
        if (n == 0) return out;
        out += body.substr(line + 2, n);
        at = line + 2 + n + 2;
    }
}

TEST(RouterForwarding, ALongAnswerIsStreamedWithTheFramingTheClientReads) {
    const std::string big = pattern(300 * 1024);
    // Delimited by the close: chunked to an HTTP/1.1 client, as it came to 1.0.
    Fixture f("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n" + big);
    std::string answer =
        exchange(f.router.port(), "GET /big HTTP/1.1\r\nHost: lb\r\nConnection: close\r\n\r\n");
    EXPECT_NE(answer.find("\r\nTransfer-Encoding: chunked\r\n"), std::string::npos);
    EXPECT_EQ(body_of(answer, true), big);
    answer = exchange(f.router.port(), "GET /big HTTP/1.0\r\n\r\n");
    EXPECT_EQ(answer.find("Transfer-Encoding"), std::string::npos);
    EXPECT_EQ(answer.find("Content-Length"), std::string::npos);
    EXPECT_EQ(body_of(answer, false), big);
    // With a length: the length, and the bytes as they are.
    Fixture g("HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(big.size()) + "\r\n\r\n" +
              big);
    answer = exchange(g.router.port(), "GET /big HTTP/1.1\r\nHost: lb\r\nConnection: close\r\n\r\n");
    EXPECT_NE(answer.find("\r\nContent-Length: 307200\r\n"), std::string::npos);
    EXPECT_EQ(body_of(answer, false), big);
}

TEST(RouterForwarding, AStreamedAnswerCutShortClosesTheClientConnection) {
    // 300 KiB promised, 200 KiB sent, then the replica closes.
    Fixture f("HTTP/1.1 200 OK\r\nContent-Length: 307200\r\n\r\n" + pattern(200 * 1024));
    const std::string answer =
        exchange(f.router.port(), "GET /big HTTP/1.1\r\nHost: lb\r\n\r\n");
    EXPECT_TRUE(answer.starts_with("HTTP/1.1 200 OK\r\n"));
    EXPECT_LT(body_of(answer, false).size(), 307200u);  // and exchange() saw the close
}

TEST(RouterForwarding, ALong404IsStillTheSpecs400WithoutReadingItsBody) {
    Fixture f("HTTP/1.1 404 Not Found\r\nContent-Length: 10000000\r\n\r\n" + pattern(100000));
    const std::string answer =
        exchange(f.router.port(), "GET /nope HTTP/1.1\r\nHost: lb\r\nConnection: close\r\n\r\n");
    EXPECT_TRUE(answer.starts_with("HTTP/1.1 400 ")) << answer.substr(0, 200);
    EXPECT_NE(answer.find("'/nope' endpoint does not exist in server replicas"), std::string::npos);
}

}  // namespace
