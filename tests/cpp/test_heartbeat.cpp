// HeartbeatEngine against real HTTP servers on 127.0.0.1 (port 0): a small
// Beast server in this file whose behaviour each test switches (200, 500,
// silence, gone), driven by an io_context of the test's own.
#include <gtest/gtest.h>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "ringlb/heartbeat.hpp"
#include "ringlb/replica_set.hpp"

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;
using ringlb::Health;

// What the test server does with a request.
enum class Mode { ok, error, silent };

// A replica stand-in: answers GET /heartbeat per `mode`, counts connections
// and requests. stop() closes the listener and every connection, so that
// further connects are refused, as with a killed replica.
class TestServer {
public:
    TestServer() : acceptor_(ioc_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
        port_ = acceptor_.local_endpoint().port();
        accept();
        thread_ = std::thread([this] { ioc_.run(); });
    }
    ~TestServer() { stop(); }

    std::uint16_t port() const { return port_; }
    void set_mode(Mode m) { mode_ = m; }
    // Answers come this much after their request.
    void set_delay(std::chrono::milliseconds d) { delay_ms_ = static_cast<int>(d.count()); }
    int connections() const { return connections_; }
    int requests() const { return requests_; }

    void stop() {
        if (!thread_.joinable()) return;
        asio::post(ioc_, [this] {
            beast::error_code ec;
            acceptor_.close(ec);
            for (auto& s : sockets_) {
                if (auto sp = s.lock()) sp->close(ec);
            }
            ioc_.stop();
        });
        thread_.join();
    }

private:
    struct Conn : std::enable_shared_from_this<Conn> {
        Conn(TestServer& srv, tcp::socket s)
            : server(srv), socket(std::make_shared<tcp::socket>(std::move(s))),
              timer(socket->get_executor()) {}
        void read() {
            req = {};
            http::async_read(*socket, buffer, req, [self = shared_from_this()](beast::error_code ec, std::size_t) {
                if (ec) return;
                ++self->server.requests_;
                const Mode m = self->server.mode_;
                if (m == Mode::silent) {
                    self->read();  // never answers; keeps the connection open
                    return;
                }
                self->res = {};
                self->res.version(11);
                self->res.keep_alive(true);
                self->res.result(m == Mode::ok ? http::status::ok : http::status::internal_server_error);
                self->res.prepare_payload();
                self->timer.expires_after(std::chrono::milliseconds(self->server.delay_ms_.load()));
                self->timer.async_wait([self](beast::error_code) { self->write(); });
            });
        }
        void write() {
            http::async_write(*socket, res, [self = shared_from_this()](beast::error_code ec, std::size_t) {
                if (!ec) self->read();
            });
        }
        TestServer& server;
        std::shared_ptr<tcp::socket> socket;
        beast::flat_buffer buffer;
        http::request<http::string_body> req;
        http::response<http::empty_body> res;
        asio::steady_timer timer;
    };

    void accept() {
        acceptor_.async_accept([this](beast::error_code ec, tcp::socket s) {
            if (ec) return;
            ++connections_;
            auto conn = std::make_shared<Conn>(*this, std::move(s));
            sockets_.push_back(conn->socket);
            conn->read();
            accept();
        });
    }

    asio::io_context ioc_;
    tcp::acceptor acceptor_;
    std::uint16_t port_ = 0;
    std::atomic<Mode> mode_{Mode::ok};
    std::atomic<int> connections_{0};
    std::atomic<int> requests_{0};
    std::atomic<int> delay_ms_{0};
    std::vector<std::weak_ptr<tcp::socket>> sockets_;
    std::thread thread_;
};

// Collects listener calls and the threads they ran on.
struct Recorder {
    void operator()(const ringlb::HealthEvent& e) {
        std::lock_guard lock(mutex);
        events.push_back(e);
        threads.insert(std::this_thread::get_id());
        cv.notify_all();
    }
    // Waits until an event of `id` to `to` arrives; false on timeout.
    bool wait_for(std::uint32_t id, Health to, std::chrono::milliseconds limit) {
        std::unique_lock lock(mutex);
        return cv.wait_for(lock, limit, [&] {
            for (const auto& e : events) {
                if (e.id == id && e.to == to) return true;
            }
            return false;
        });
    }
    std::vector<ringlb::HealthEvent> snapshot() {
        std::lock_guard lock(mutex);
        return events;
    }
    std::mutex mutex;
    std::condition_variable cv;
    std::vector<ringlb::HealthEvent> events;
    std::set<std::thread::id> threads;
};

// The router's part: an io_context with two I/O threads and a ReplicaSet.
class HeartbeatTest : public ::testing::Test {
protected:
    void SetUp() override {
        work_.emplace(asio::make_work_guard(ioc_));
        for (int i = 0; i < 2; ++i) {
            threads_.emplace_back([this] { ioc_.run(); });
            io_ids_.insert(threads_.back().get_id());
        }
    }
    void TearDown() override {
        engine_.reset();
        work_.reset();
        ioc_.stop();
        for (auto& t : threads_) t.join();
    }

    ringlb::HeartbeatEngine& make_engine(ringlb::HeartbeatConfig cfg) {
        engine_ = std::make_unique<ringlb::HeartbeatEngine>(ioc_.get_executor(), set_, cfg, &log_);
        engine_->set_listener([this](const ringlb::HealthEvent& e) { recorder_(e); });
        return *engine_;
    }

    std::uint32_t add(const std::string& name, std::uint16_t port) {
        return set_.add({{0, name, "127.0.0.1", port}}).front().id;
    }

    // Registers "S1" at `server` and starts an engine (engine_) probing it; returns its id.
    std::uint32_t start_probing(const TestServer& server, ringlb::HeartbeatConfig cfg) {
        const auto id = add("S1", server.port());
        make_engine(cfg).start();
        return id;
    }

    bool serving(std::uint32_t id) const {
        return set_.snapshot()->ring->index_of(id) != ringlb::HashRing::npos;
    }

    std::optional<ringlb::ReplicaHealth> state_of(std::uint32_t id) const {
        for (auto& h : engine_->states()) {
            if (h.id == id) return h;
        }
        return std::nullopt;
    }

    // Polls `pred` every 5 ms until it holds or `limit` passes.
    static bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds limit) {
        const auto end = std::chrono::steady_clock::now() + limit;
        while (std::chrono::steady_clock::now() < end) {
            if (pred()) return true;
            std::this_thread::sleep_for(5ms);
        }
        return pred();
    }

    asio::io_context ioc_;
    std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_;
    std::vector<std::thread> threads_;
    std::set<std::thread::id> io_ids_;
    ringlb::ReplicaSet set_{ringlb::RingOptions{}};
    ringlb::EventLog log_;  // the router's, in a router
    Recorder recorder_;
    std::unique_ptr<ringlb::HeartbeatEngine> engine_;
};

ringlb::HeartbeatConfig fast(unsigned fall = 2, unsigned rise = 1) {
    ringlb::HeartbeatConfig c;
    c.interval = 50ms;
    c.timeout = 100ms;
    c.fall = fall;
    c.rise = rise;
    return c;
}

TEST(HeartbeatConfigTest, RejectsBadValues) {
    asio::io_context ioc;
    ringlb::ReplicaSet set{ringlb::RingOptions{}};
    auto bad = [&](auto edit) {
        ringlb::HeartbeatConfig c;
        edit(c);
        EXPECT_THROW(ringlb::HeartbeatEngine(ioc.get_executor(), set, c), std::invalid_argument);
    };
    bad([](auto& c) { c.interval = 0ms; });
    bad([](auto& c) { c.timeout = -1ms; });
    bad([](auto& c) { c.fall = 0; });
    bad([](auto& c) { c.rise = 0; });
    ringlb::HeartbeatEngine ok(ioc.get_executor(), set, {});
    EXPECT_EQ(ok.config().interval, 200ms);
    EXPECT_EQ(ok.config().fall, 2u);
}

TEST(HeartbeatNames, ToString) {
    EXPECT_STREQ(ringlb::to_string(Health::up), "up");
    EXPECT_STREQ(ringlb::to_string(Health::suspect), "suspect");
    EXPECT_STREQ(ringlb::to_string(Health::down), "down");
}

TEST_F(HeartbeatTest, HealthyReplicaStaysUpOnOneKeptAliveConnection) {
    TestServer server;
    const auto id = add("S1", server.port());
    auto& engine = make_engine(fast());
    EXPECT_TRUE(engine.states().empty());  // nothing before start
    engine.start();
    EXPECT_THROW(engine.start(), std::logic_error);
    ASSERT_TRUE(eventually([&] { return server.requests() >= 5; }, 2s));
    auto h = state_of(id);
    ASSERT_TRUE(h);
    EXPECT_EQ(h->state, Health::up);
    EXPECT_EQ(h->hostname, "S1");
    EXPECT_EQ(h->port, server.port());
    EXPECT_EQ(h->misses, 0u);
    EXPECT_GE(h->checks, 4u);
    ASSERT_TRUE(h->last_latency);
    EXPECT_LT(*h->last_latency, 100ms);
    EXPECT_EQ(server.connections(), 1);  // keep-alive: one connection for every probe
    EXPECT_TRUE(serving(id));
    EXPECT_TRUE(recorder_.snapshot().empty());
}

TEST_F(HeartbeatTest, DeadReplicaGoesDownLeavesTheRingAndRisesOnANewEndpoint) {
    auto server = std::make_unique<TestServer>();
    TestServer other;
    const auto id = add("S1", server->port());
    const auto id2 = add("S2", other.port());
    auto& engine = make_engine(fast(2, 2));
    engine.start();
    ASSERT_TRUE(eventually([&] { return server->requests() >= 1; }, 2s));

    const auto killed = std::chrono::steady_clock::now();
    server->stop();
    ASSERT_TRUE(recorder_.wait_for(id, Health::down, 2s));
    // fall = 2 misses at a 50 ms interval: well within half a second.
    EXPECT_LT(std::chrono::steady_clock::now() - killed, 500ms);
    EXPECT_FALSE(serving(id));
    EXPECT_TRUE(serving(id2));
    auto events = recorder_.snapshot();
    ASSERT_EQ(events.size(), 2u);
    EXPECT_EQ(events[0].from, Health::up);
    EXPECT_EQ(events[0].to, Health::suspect);
    EXPECT_EQ(events[1].from, Health::suspect);
    EXPECT_EQ(events[1].to, Health::down);
    EXPECT_EQ(events[1].hostname, "S1");
    EXPECT_NE(events[1].detail.find("fall 2/2"), std::string::npos) << events[1].detail;
    EXPECT_GE(state_of(id)->misses, 2u);
    EXPECT_FALSE(state_of(id)->last_error.empty());

    // The replacement keeps the id and the hostname, on a new port.
    TestServer replacement;
    ASSERT_TRUE(set_.set_endpoint(id, "127.0.0.1", replacement.port()));
    engine.refresh();
    ASSERT_TRUE(recorder_.wait_for(id, Health::up, 2s));
    EXPECT_TRUE(serving(id));
    events = recorder_.snapshot();
    EXPECT_EQ(events.back().from, Health::down);
    EXPECT_NE(events.back().detail.find("rise 2/2"), std::string::npos) << events.back().detail;
    EXPECT_GE(replacement.requests(), 2);
    EXPECT_EQ(state_of(id)->port, replacement.port());
    // The event log has every change the listener saw, in order, as it happened.
    const auto logged = log_.recent();
    ASSERT_EQ(logged.size(), events.size());
    for (std::size_t k = 0; k < logged.size(); ++k) {
        EXPECT_EQ(ringlb::to_string(logged[k].kind), std::string(ringlb::to_string(events[k].to)));
        EXPECT_EQ(logged[k].id, events[k].id);
        EXPECT_EQ(logged[k].hostname, "S1");
        EXPECT_EQ(logged[k].detail, std::string(ringlb::to_string(events[k].from)) + " -> " +
                                        ringlb::to_string(events[k].to) + ": " + events[k].detail);
    }
    EXPECT_EQ(logged[1].kind, ringlb::EventKind::down);
    EXPECT_LE(logged[0].monotonic, logged[1].monotonic);
    // Listener calls never ran on an I/O thread.
    for (auto t : recorder_.threads) EXPECT_EQ(io_ids_.count(t), 0u);
}

TEST_F(HeartbeatTest, SilentReplicaTimesOut) {
    TestServer server;
    const auto id = start_probing(server, fast());
    ASSERT_TRUE(eventually([&] { return server.requests() >= 1; }, 2s));
    server.set_mode(Mode::silent);
    ASSERT_TRUE(recorder_.wait_for(id, Health::down, 2s));
    EXPECT_NE(state_of(id)->last_error.find("timed out after 100 ms"), std::string::npos)
        << state_of(id)->last_error;
    EXPECT_FALSE(serving(id));
    server.set_mode(Mode::ok);
    ASSERT_TRUE(recorder_.wait_for(id, Health::up, 2s));
    EXPECT_TRUE(serving(id));
}

TEST_F(HeartbeatTest, ErrorStatusIsAMiss) {
    TestServer server;
    const auto id = start_probing(server, fast(3));
    server.set_mode(Mode::error);
    ASSERT_TRUE(recorder_.wait_for(id, Health::down, 2s));
    EXPECT_EQ(state_of(id)->last_error, "HTTP 500");
    const auto events = recorder_.snapshot();
    ASSERT_EQ(events.size(), 2u);  // up -> suspect once, suspect -> down once
    EXPECT_NE(events[1].detail.find("fall 3/3"), std::string::npos);
}

TEST_F(HeartbeatTest, PassiveFailureOfAHealthyReplicaIsClearedByTheNextProbe) {
    TestServer server;
    ringlb::HeartbeatConfig cfg = fast();
    cfg.interval = 10s;  // only the probe kicked by the failure can clear it in time
    const auto id = start_probing(server, cfg);
    auto& engine = *engine_;
    // The first probe must have been answered, or its late success would clear the miss.
    ASSERT_TRUE(eventually([&] { return state_of(id)->checks >= 1; }, 2s));
    // The confirming probe must still be on its way when the second report
    // comes, or that report is a new failure rather than the same burst.
    server.set_delay(40ms);
    auto report = engine.failure_listener();
    report(id);
    report(id);  // a burst counts once
    ASSERT_TRUE(recorder_.wait_for(id, Health::suspect, 1s));
    ASSERT_TRUE(recorder_.wait_for(id, Health::up, 1s));
    EXPECT_EQ(state_of(id)->passive_failures, 1u);
    EXPECT_TRUE(serving(id));
    engine.on_failure(9999);  // unknown ids are ignored
}

TEST_F(HeartbeatTest, PassiveFailureOfADeadReplicaTakesItDownWithoutWaiting) {
    TestServer server;
    ringlb::HeartbeatConfig cfg = fast();
    cfg.interval = 10s;
    const auto id = start_probing(server, cfg);
    auto& engine = *engine_;
    // The first probe must have been answered, or its late success would clear the miss.
    ASSERT_TRUE(eventually([&] { return state_of(id)->checks >= 1; }, 2s));
    server.stop();
    const auto t0 = std::chrono::steady_clock::now();
    engine.on_failure(id);
    ASSERT_TRUE(recorder_.wait_for(id, Health::down, 2s));
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 300ms);
    EXPECT_FALSE(serving(id));
}

TEST_F(HeartbeatTest, FollowsMembershipChanges) {
    TestServer a;
    TestServer b;
    const auto id_a = add("A", a.port());
    auto& engine = make_engine(fast());
    engine.start();
    ASSERT_TRUE(eventually([&] { return engine.states().size() == 1; }, 2s));
    const auto id_b = add("B", b.port());  // noticed by the poll, no refresh()
    ASSERT_TRUE(eventually([&] { return engine.states().size() == 2; }, 2s));
    ASSERT_TRUE(eventually([&] { return b.requests() >= 1; }, 2s));
    set_.remove({id_a});
    ASSERT_TRUE(eventually([&] { return engine.states().size() == 1; }, 2s));
    EXPECT_EQ(engine.states().front().id, id_b);
    const int before = a.requests();
    std::this_thread::sleep_for(150ms);
    EXPECT_EQ(a.requests(), before);  // the removed replica is no longer probed
}

TEST_F(HeartbeatTest, ReplicaRegisteredOffTheRingJoinsAfterRise) {
    TestServer server;
    const auto id = add("S1", server.port());
    set_.set_serving(id, false);
    auto& engine = make_engine(fast(2, 3));
    engine.start();
    ASSERT_TRUE(recorder_.wait_for(id, Health::up, 2s));
    EXPECT_TRUE(serving(id));
    EXPECT_GE(server.requests(), 3);
}

TEST_F(HeartbeatTest, StopEndsProbingAndEvents) {
    TestServer server;
    const auto id = start_probing(server, fast());
    auto& engine = *engine_;
    ASSERT_TRUE(eventually([&] { return server.requests() >= 2; }, 2s));
    engine.stop();
    engine.stop();  // idempotent
    EXPECT_FALSE(engine.running());
    server.set_mode(Mode::error);
    std::this_thread::sleep_for(200ms);
    const int after = server.requests();
    std::this_thread::sleep_for(200ms);
    EXPECT_EQ(server.requests(), after);
    EXPECT_TRUE(recorder_.snapshot().empty());
    EXPECT_TRUE(serving(id));
    engine.on_failure(id);  // after stop: ignored
    EXPECT_EQ(state_of(id)->state, Health::up);
}

TEST_F(HeartbeatTest, StopFromTheListenerDoesNotDeadlock) {
    TestServer server;
    const auto id = add("S1", server.port());
    engine_ = std::make_unique<ringlb::HeartbeatEngine>(ioc_.get_executor(), set_, fast(1));
    std::atomic<bool> called{false};
    engine_->set_listener([&](const ringlb::HealthEvent&) {
        engine_->stop();
        called = true;
    });
    engine_->start();
    server.stop();
    ASSERT_TRUE(eventually([&] { return called.load(); }, 2s));
    EXPECT_FALSE(engine_->running());
    EXPECT_FALSE(serving(id));
}

TEST_F(HeartbeatTest, NoAddressIsAMissNotACrash) {
    // A DNS name nobody resolves here (no NameResolver): registered, off the
    // ring, probed all the same.
    const auto id = set_.add({{0, "S1", "not-an-ip", 80}}).front().id;
    auto& engine = make_engine(fast());
    engine.start();
    ASSERT_TRUE(eventually([&] { return state_of(id) && state_of(id)->checks >= 2; }, 2s));
    EXPECT_EQ(state_of(id)->state, Health::down);
    EXPECT_NE(state_of(id)->last_error.find("no address yet: its name 'not-an-ip' resolves"),
              std::string::npos);
    EXPECT_FALSE(serving(id));
}

TEST(HeartbeatLifetime, FailureListenerOutlivesTheEngine) {
    asio::io_context ioc;
    ringlb::ReplicaSet set{ringlb::RingOptions{}};
    std::function<void(std::uint32_t)> report;
    {
        ringlb::HeartbeatEngine engine(ioc.get_executor(), set, {});
        engine.start();
        report = engine.failure_listener();
    }
    report(1);  // no engine any more: nothing happens
    ioc.run_for(50ms);
}

}  // namespace
