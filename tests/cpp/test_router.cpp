// Router end to end in C++: what Python cannot reach (the failure listener,
// the executor, C++ control handlers) against a real in-process HTTP server.
#include <gtest/gtest.h>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <future>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "ringlb/router.hpp"

#include "upstream_server.hpp"

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

using namespace router_test;

TEST(Router, FailureListenerHearsOfARefusedReplicaAndTheRequestIsRetried) {
    Upstream alive("alive");
    ringlb::Router router(config());
    router.replicas().add({{1, "Dead", "127.0.0.1", closed_port()},
                           {2, "Alive", "127.0.0.1", alive.port()}});
    std::mutex mutex;
    std::multiset<std::uint32_t> failed;
    router.set_failure_listener([&](std::uint32_t id) {
        std::lock_guard lock(mutex);
        failed.insert(id);
    });
    router.start();
    // An id the ring gives to the dead replica first.
    const auto snap = router.replicas().snapshot();
    std::uint64_t id = 100000;
    while (snap->ring->members()[snap->ring->lookup(id)].id != 1) ++id;
    const Reply r = fetch(router.port(), http::verb::get, "/home?id=" + std::to_string(id));
    EXPECT_EQ(r.status, 200u);
    EXPECT_EQ(r.replica, "Alive");
    EXPECT_EQ(r.body, "up:alive");
    router.stop();
    std::lock_guard lock(mutex);
    EXPECT_EQ(failed, (std::multiset<std::uint32_t>{1}));
    const auto stats = router.stats();
    EXPECT_EQ(stats.upstream_failures, 1u);
    EXPECT_EQ(stats.retries, 1u);
    EXPECT_EQ(stats.proxied, 1u);
    const auto per = router.replica_stats();
    ASSERT_EQ(per.size(), 2u);
    EXPECT_EQ(per[0].failures, 1u);
    EXPECT_EQ(per[1].requests, 1u);
    EXPECT_EQ(per[1].in_flight, 0u);
}

TEST(Router, AThrowingFailureListenerDoesNotBreakTheRequest) {
    Upstream alive("alive");
    ringlb::Router router(config());
    router.replicas().add({{1, "Dead", "127.0.0.1", closed_port()}, {2, "Alive", "127.0.0.1", alive.port()}});
    router.set_failure_listener([](std::uint32_t) { throw std::runtime_error("listener bug"); });
    router.start();
    for (int i = 0; i < 20; ++i) {
        EXPECT_EQ(fetch(router.port(), http::verb::get, "/home?id=" + std::to_string(100000 + i)).status,
                  200u);
    }
}

TEST(Router, ServingFlagsAndEndpointsTakeEffectAtOnce) {
    Upstream a("a"), b("b");
    ringlb::Router router(config());
    router.replicas().add({{1, "A", "127.0.0.1", a.port()}});
    router.start();
    EXPECT_EQ(fetch(router.port(), http::verb::get, "/x?id=1").body, "up:a");
    router.replicas().set_endpoint(1, "127.0.0.1", b.port());
    EXPECT_EQ(fetch(router.port(), http::verb::get, "/x?id=1").body, "up:b");
    router.replicas().set_serving(1, false);
    EXPECT_EQ(fetch(router.port(), http::verb::get, "/x?id=1").status, 503u);
    router.replicas().set_serving(1, true);
    EXPECT_EQ(fetch(router.port(), http::verb::get, "/x?id=1").status, 200u);
}

TEST(Router, ExecutorRunsTimersQueuedBeforeStart) {
    ringlb::Router router(config());
    asio::steady_timer timer(router.executor(), std::chrono::milliseconds(10));
    std::promise<void> fired;
    timer.async_wait([&](beast::error_code ec) {
        if (!ec) fired.set_value();
    });
    router.start();
    EXPECT_EQ(fired.get_future().wait_for(std::chrono::seconds(5)), std::future_status::ready);
    router.stop();
}

TEST(Router, LifecycleErrors) {
    ringlb::Router router(config());
    router.stop();  // not started: a no-op
    router.start();
    EXPECT_THROW(router.start(), std::logic_error);
    ringlb::RouterConfig same = config();
    same.port = router.port();
    ringlb::Router second(same);
    EXPECT_THROW(second.start(), std::system_error);
    EXPECT_FALSE(second.running());
    router.stop();
    router.stop();
    EXPECT_FALSE(router.running());
    router.start();  // restartable
    EXPECT_EQ(fetch(router.port(), http::verb::get, "/rep").status, 200u);
}

TEST(Router, BadConfigIsInvalidArgument) {
    const auto bad = [](auto change) {
        auto c = config();
        change(c);
        EXPECT_THROW(ringlb::Router{c}, std::invalid_argument);
    };
    bad([](auto& c) { c.key = "nope"; });
    bad([](auto& c) { c.host = "not-an-ip"; });
    bad([](auto& c) { c.ring.scheme = "nope"; });
    bad([](auto& c) { c.ring.virtual_nodes = 513; });  // 0 would mean the default
    bad([](auto& c) { c.retries = 65; });
    bad([](auto& c) { c.bounded_load = 0.99; });
    bad([](auto& c) { c.bounded_load = -1; });
    bad([](auto& c) { c.connect_timeout = std::chrono::milliseconds(0); });
    bad([](auto& c) { c.max_connections = 0; });
    bad([](auto& c) { c.max_header_bytes = 10; });
}

TEST(Router, ControlHandlerRunsOffTheIoThreadsAndItsErrorsBecomeAnswers) {
    Upstream up("u");
    ringlb::Router router(config());
    router.replicas().add({{0, "Server1", "127.0.0.1", up.port()}});
    std::vector<ringlb::ControlRequest> seen;
    router.set_control_handler([&](const ringlb::ControlRequest& req) {
        seen.push_back(req);
        if (req.op == ringlb::ControlRequest::Op::remove) throw ringlb::ControlError(409, "busy");
        for (const auto& h : req.hostnames) router.replicas().add({{0, h, "127.0.0.1", up.port()}});
    });
    router.start();
    Reply r = fetch(router.port(), http::verb::post, "/add", R"({"n": 2, "hostnames": ["X"]})");
    EXPECT_EQ(r.status, 200u);
    EXPECT_EQ(r.body, R"({"message":{"N":3,"replicas":["Server1","X","Server2"]},"status":"successful"})");
    r = fetch(router.port(), http::verb::delete_, "/rm", R"({"n": 1})");
    EXPECT_EQ(r.status, 409u);
    EXPECT_EQ(r.body, R"({"message":"<Error> busy","status":"failure"})");
    // The handler cannot stop the router it runs in.
    router.set_control_handler([&](const ringlb::ControlRequest&) { router.stop(); });
    r = fetch(router.port(), http::verb::post, "/rm", R"({"n": 1})");
    EXPECT_EQ(r.status, 500u);
    EXPECT_NE(r.body.find("cannot run on one of the router's own threads"), std::string::npos);
    EXPECT_TRUE(router.running());
    router.stop();
    ASSERT_EQ(seen.size(), 2u);
    EXPECT_EQ(seen[0].hostnames, (std::vector<std::string>{"X", "Server2"}));
}

TEST(Router, StopDuringASlowControlHandlerAnswersOrClosesAndJoins) {
    ringlb::Router router(config());
    std::promise<void> entered;
    router.set_control_handler([&](const ringlb::ControlRequest&) {
        entered.set_value();
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
    });
    router.start();
    auto client = std::async(std::launch::async, [&] {
        try {
            return fetch(router.port(), http::verb::post, "/add", R"({"n": 1})").status;
        } catch (const std::exception&) {
            return 0u;  // the connection was closed by the stop
        }
    });
    entered.get_future().wait();
    router.stop();
    const unsigned status = client.get();
    EXPECT_TRUE(status == 200u || status == 0u) << status;
}

TEST(Router, StatsCountAnswers) {
    ringlb::Router router(config());
    router.start();
    fetch(router.port(), http::verb::get, "/rep");
    fetch(router.port(), http::verb::get, "/home");  // no replica: 503
    router.stop();
    const auto s = router.stats();
    EXPECT_EQ(s.requests, 2u);
    EXPECT_EQ(s.errors, 1u);
    EXPECT_EQ(s.proxied, 0u);
    EXPECT_EQ(s.active_connections, 0u);
}

TEST(Router, LargeBodiesAreStreamedWhole) {
    // Past the 64 KiB window a body is forwarded as it arrives; what the
    // replica gets is still exactly what the client sent, sized or chunked.
    Upstream echo("Echo1", true);
    auto c = config();
    c.max_body_bytes = 4u << 20;
    ringlb::Router router(c);
    router.replicas().add({{0, "Echo1", "127.0.0.1", echo.port()}});
    router.start();
    std::string body(3u << 20, '\0');
    for (std::size_t i = 0; i < body.size(); ++i) body[i] = static_cast<char>('a' + i % 26);
    for (const bool chunked : {false, true}) {
        for (const std::size_t size : {std::size_t{10}, std::size_t{70000}, body.size()}) {
            const auto r = fetch(router.port(), http::verb::post, "/up?id=1",
                                 body.substr(0, size), chunked);
            EXPECT_EQ(r.status, 200u) << size << " chunked=" << chunked << " " << r.body;
            EXPECT_EQ(r.body.size(), size);
            EXPECT_TRUE(r.body == body.substr(0, size)) << size << " chunked=" << chunked;
        }
    }
    router.stop();
    EXPECT_EQ(router.stats().active_connections, 0u);
}

TEST(Router, AStreamedBodyToADeadReplicaIsA502) {
    auto c = config();
    c.retries = 2;
    ringlb::Router router(c);
    router.replicas().add({{0, "Gone1", "127.0.0.1", closed_port()}});
    router.start();
    const auto r = fetch(router.port(), http::verb::post, "/up?id=1", std::string(200000, 'x'));
    EXPECT_EQ(r.status, 502u);
    router.stop();
}

// Reads `take` bytes of whatever comes on each connection, then stops
// reading (and never answers) until it is destroyed.
class StopsReading {
public:
    explicit StopsReading(std::size_t take)
        : take_(take), acceptor_([this](tcp::socket s) { serve(std::move(s)); }) {}
    ~StopsReading() { stop_ = true; }
    std::uint16_t port() const { return acceptor_.port(); }

private:
    void serve(tcp::socket s) {
        std::vector<char> chunk(65536);
        std::size_t got = 0;
        beast::error_code ec;
        while (got < take_ && !ec) {
            got += s.read_some(asio::buffer(chunk.data(), std::min(chunk.size(), take_ - got)), ec);
        }
        while (!stop_) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    std::size_t take_;
    std::atomic<bool> stop_{false};
    TestAcceptor acceptor_;  // last: it serves with the members above
};

TEST(Router, AReplicaThatStopsReadingMidUploadIsA504AndAClose) {
    // The body pump has a write to the replica pending and a read from the
    // client that may be pending too: the upstream deadline ends the write,
    // the read is cancelled, and only then is the client answered.
    StopsReading replica(1u << 20);
    auto c = config();
    c.threads = 1;
    c.retries = 2;
    c.max_body_bytes = 0;
    c.upstream_timeout = std::chrono::milliseconds(300);
    ringlb::Router router(c);
    router.replicas().add({{0, "Stops1", "127.0.0.1", replica.port()}});
    router.start();
    asio::io_context ioc;
    tcp::socket s(ioc);
    s.connect({asio::ip::make_address("127.0.0.1"), router.port()});
    const std::size_t total = 64u << 20;
    asio::write(s, asio::buffer("PUT /up?id=1 HTTP/1.1\r\nHost: x\r\nContent-Length: " +
                                std::to_string(total) + "\r\n\r\n"));
    std::atomic<bool> done{false};
    std::thread sender([&] {
        // As fast as the router takes it, until it stops reading (then the
        // router's close ends the write with an error).
        const std::string piece(65536, 'u');
        beast::error_code ec;
        for (std::size_t sent = 0; sent < total && !ec && !done; sent += piece.size()) {
            asio::write(s, asio::buffer(piece), ec);
        }
    });
    beast::flat_buffer buf;
    http::response_parser<http::string_body> res;
    beast::error_code ec;
    http::read(s, buf, res, ec);
    done = true;
    beast::error_code ignored;
    s.shutdown(tcp::socket::shutdown_both, ignored);
    sender.join();
    ASSERT_FALSE(ec) << ec.message();
    EXPECT_EQ(res.get().result_int(), 504u);
    EXPECT_FALSE(res.get().keep_alive());
    EXPECT_EQ(router.stats().retries, 0u);  // part of the body went: never repeated
    router.stop();
    EXPECT_EQ(router.stats().active_connections, 0u);
}

TEST(Router, AKeptAliveConnectionServesAfterItsGraceAndClosesAtTheIdleTimeout) {
    // After an answer the connection reads directly for a short grace, then
    // waits without a buffer; either way the next request is served, and the
    // idle timeout counts from the answer.
    Upstream up("Up1");
    auto c = config();
    c.threads = 1;
    c.idle_timeout = std::chrono::milliseconds(800);
    ringlb::Router router(c);
    router.replicas().add({{0, "Up1", "127.0.0.1", up.port()}});
    router.start();
    asio::io_context ioc;
    tcp::socket s(ioc);
    s.connect({asio::ip::make_address("127.0.0.1"), router.port()});
    beast::flat_buffer buf;
    for (const int pause_ms : {0, 20, 400}) {
        std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms));
        http::request<http::empty_body> req(http::verb::get, "/home?id=7", 11);
        req.set(http::field::host, "x");
        http::write(s, req);
        http::response<http::string_body> res;
        http::read(s, buf, res);
        EXPECT_EQ(res.result_int(), 200u) << pause_ms;
        EXPECT_EQ(res.body(), "up:Up1");
    }
    const auto t0 = std::chrono::steady_clock::now();
    std::array<char, 16> one{};
    beast::error_code ec;
    s.read_some(asio::buffer(one), ec);
    EXPECT_EQ(ec, asio::error::eof);
    const auto idle = std::chrono::steady_clock::now() - t0;
    EXPECT_GT(idle, std::chrono::milliseconds(600));
    EXPECT_LT(idle, std::chrono::milliseconds(3000));
    router.stop();
}

}  // namespace
