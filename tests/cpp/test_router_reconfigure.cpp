// Router::reconfigure: the live settings change while requests run (each I/O
// thread swaps its own copy), a request keeps the values it started with, an
// open keep-alive connection takes the new ones at its next request, and a
// bad value changes nothing.
#include <gtest/gtest.h>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <atomic>
#include <set>
#include <thread>
#include <vector>

#include "ringlb/router.hpp"

#include "upstream_server.hpp"

namespace {

using namespace router_test;  // and its asio, beast, http, tcp

// One keep-alive client connection.
class Client {
public:
    explicit Client(std::uint16_t port) : socket_(ioc_) {
        socket_.connect({asio::ip::make_address("127.0.0.1"), port});
    }
    void send(http::request<http::string_body> req) {
        req.set(http::field::host, "x");
        req.prepare_payload();
        http::write(socket_, req);
    }
    http::response<http::string_body> read() {
        http::response<http::string_body> res;
        http::read(socket_, buffer_, res);
        return res;
    }
    http::response<http::string_body> post(const std::string& target, std::string body) {
        http::request<http::string_body> req(http::verb::post, target, 11);
        req.body() = std::move(body);
        send(std::move(req));
        return read();
    }
    tcp::socket& socket() { return socket_; }

private:
    asio::io_context ioc_;
    tcp::socket socket_;
    beast::flat_buffer buffer_;
};

TEST(RouterReconfigure, BodyLimitAndReplicaFieldChangeForTheNextRequest) {
    Upstream echo("Echo1", true);
    ringlb::Router router(config());
    router.replicas().add({{0, "Echo1", "127.0.0.1", echo.port()}});
    router.start();
    const std::string body(2000, 'b');
    Client kept(router.port());
    auto res = kept.post("/up?id=1", body);
    EXPECT_EQ(res.result_int(), 200u);
    EXPECT_EQ(res["X-Ringlb-Replica"], "Echo1");

    auto next = router.limits();
    next.max_body_bytes = 1000;
    next.replica_header = false;
    router.reconfigure(next);
    EXPECT_EQ(router.limits().max_body_bytes, 1000u);
    EXPECT_EQ(router.config().max_body_bytes, 1024u * 1024u);  // as constructed
    // The same connection, its next request: the new limit.
    res = kept.post("/up?id=1", body);
    EXPECT_EQ(res.result_int(), 413u);
    const Reply small = fetch(router.port(), http::verb::post, "/up?id=1", "tiny");
    EXPECT_EQ(small.status, 200u);
    EXPECT_EQ(small.replica, "");  // replica_header off
    router.stop();
}

TEST(RouterReconfigure, ARequestInFlightKeepsTheLimitsItStartedWith) {
    Upstream echo("Echo1", true);
    ringlb::Router router(config());
    router.replicas().add({{0, "Echo1", "127.0.0.1", echo.port()}});
    router.start();
    Client c(router.port());
    // The router answers 100 Continue once it has the header: the request has started.
    http::request<http::string_body> req(http::verb::post, "/up?id=1", 11);
    req.set(http::field::host, "x");
    req.set(http::field::expect, "100-continue");
    req.content_length(2000);
    http::request_serializer<http::string_body> head(req);
    http::write_header(c.socket(), head);
    http::response<http::empty_body> interim;
    beast::flat_buffer buf;
    http::read(c.socket(), buf, interim);
    ASSERT_EQ(interim.result_int(), 100u);

    auto next = router.limits();
    next.max_body_bytes = 1000;
    router.reconfigure(next);
    asio::write(c.socket(), asio::buffer(std::string(2000, 'b')));
    http::response<http::string_body> res;
    http::read(c.socket(), buf, res);
    EXPECT_EQ(res.result_int(), 200u);  // the limit it started with: 1 MiB
    EXPECT_EQ(res.body().size(), 2000u);
    router.stop();
}

TEST(RouterReconfigure, RetriesAndTheConnectionCapAreLive) {
    Upstream alive("alive");
    ringlb::Router router(config());
    router.replicas().add({{1, "Dead", "127.0.0.1", closed_port()},
                           {2, "Alive", "127.0.0.1", alive.port()}});
    router.start();
    const auto snap = router.replicas().snapshot();
    std::uint64_t id = 100000;
    while (snap->ring->members()[snap->ring->lookup(id)].id != 1) ++id;
    const std::string to_dead = "/home?id=" + std::to_string(id);
    EXPECT_EQ(fetch(router.port(), http::verb::get, to_dead).status, 200u);  // retried

    auto next = router.limits();
    next.retries = 0;
    router.reconfigure(next);
    EXPECT_EQ(fetch(router.port(), http::verb::get, to_dead).status, 502u);

    // One connection open, a cap of one: the next connection is refused with 503.
    next.retries = 2;
    next.max_connections = 1;
    router.reconfigure(next);
    for (int i = 0; i < 500 && router.stats().active_connections > 0; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(2));  // the last fetch's closing
    }
    Client open(router.port());
    EXPECT_EQ(open.post("/home?id=1", "x").result_int(), 200u);
    EXPECT_EQ(fetch(router.port(), http::verb::get, to_dead).status, 503u);
    next.max_connections = 10;
    router.reconfigure(next);
    EXPECT_EQ(fetch(router.port(), http::verb::get, to_dead).status, 200u);
    router.stop();
}

TEST(RouterReconfigure, ABadValueChangesNothing) {
    ringlb::Router router(config());
    const auto before = router.limits();
    const auto bad = [&](auto change) {
        auto next = router.limits();
        change(next);
        EXPECT_THROW(router.reconfigure(next), std::invalid_argument);
        EXPECT_EQ(router.limits().retries, before.retries);
        EXPECT_EQ(router.limits().max_body_bytes, before.max_body_bytes);
        EXPECT_EQ(router.limits().header_timeout, before.header_timeout);
    };
    // The same check as a new router's (BadConfigIsInvalidArgument).
    bad([](auto& l) {
        l.max_body_bytes = 5;  // fine alone, but not applied with the bad one
        l.retries = 65;
    });
    bad([](auto& l) { l.header_timeout = std::chrono::milliseconds(0); });
    bad([](auto& l) { l.bounded_load = 0.5; });
    bad([](auto& l) { l.max_header_bytes = 10; });
    bad([](auto& l) { l.max_connections = 0; });
    // Before start, after stop: it applies all the same.
    auto next = router.limits();
    next.retries = 5;
    router.reconfigure(next);
    router.start();
    EXPECT_EQ(router.limits().retries, 5u);
    router.stop();
    next.retries = 6;
    router.reconfigure(next);
    EXPECT_EQ(router.limits().retries, 6u);
}

TEST(RouterReconfigure, UnderTrafficFromSeveralThreads) {
    // Clients on several threads while the settings flip between two
    // versions: every answer is one of the two versions' (TSan: no race).
    Upstream echo("Echo1", true);
    auto c = config();
    c.threads = 3;
    ringlb::Router router(c);
    router.replicas().add({{0, "Echo1", "127.0.0.1", echo.port()}});
    router.start();
    const std::string body(2000, 'b');
    std::atomic<bool> done{false};
    std::atomic<int> answered{0};
    std::vector<std::thread> clients;
    std::vector<std::set<unsigned>> statuses(4);
    for (std::size_t t = 0; t < statuses.size(); ++t) {
        clients.emplace_back([&, t] {
            for (int i = 0; i < 200 && !done; ++i) {
                try {
                    statuses[t].insert(fetch(router.port(), http::verb::post,
                                             "/up?id=" + std::to_string(i), body).status);
                } catch (const std::exception&) {
                    statuses[t].insert(0);  // a broken exchange: reported below
                }
                ++answered;
            }
        });
    }
    auto small = router.limits();
    small.max_body_bytes = 1000;
    small.retries = 0;
    small.replica_header = false;
    small.header_timeout = std::chrono::milliseconds(2000);
    small.max_idle_upstream = 1;  // the workers make their pools again
    const auto large = router.limits();
    for (int k = 0; k < 40; ++k) {
        router.reconfigure(k % 2 ? large : small);
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    done = true;
    for (auto& t : clients) t.join();
    EXPECT_GT(answered.load(), 0);
    for (const auto& seen : statuses) {
        for (const unsigned s : seen) EXPECT_TRUE(s == 200u || s == 413u) << s;
    }
    router.reconfigure(small);
    EXPECT_EQ(fetch(router.port(), http::verb::post, "/up?id=1", body).status, 413u);
    router.reconfigure(large);
    const Reply ok = fetch(router.port(), http::verb::post, "/up?id=1", body);
    EXPECT_EQ(ok.status, 200u);
    EXPECT_EQ(ok.body, body);
    router.stop();
}

}  // namespace
