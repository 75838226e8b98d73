// The admin listener's /metrics, /status, /healthz and /readyz, end to end:
// a real router, real upstream servers, counts checked against what was sent.
#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <chrono>
#include <map>
#include <regex>
#include <sstream>
#include <string>

#include "ringlb/heartbeat.hpp"
#include "ringlb/router.hpp"
#include "upstream_server.hpp"

namespace {

using namespace router_test;
namespace json = boost::json;

ringlb::RouterConfig admin_config() {
    auto c = config();
    c.admin_listen = "127.0.0.1:0";
    return c;
}

// "name{labels} value" lines of an exposition -> value, keyed by "name{labels}".
std::map<std::string, double> samples(const std::string& text) {
    std::map<std::string, double> out;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        if (line.empty() || line[0] == '#') continue;
        const auto space = line.rfind(' ');
        out[line.substr(0, space)] = std::stod(line.substr(space + 1));
    }
    return out;
}

// An id the ring gives to replica `id` first.
std::uint64_t id_for(ringlb::Router& router, std::uint32_t id, std::uint64_t from = 100000) {
    const auto snap = router.replicas().snapshot();
    while (snap->ring->members()[snap->ring->lookup(from)].id != id) ++from;
    return from;
}

TEST(RouterMetrics, CountsWhatWasSentPerReplicaAndStatusClass) {
    Upstream a("a"), b("b");
    ringlb::Router router(admin_config());
    router.replicas().add({{1, "A", "127.0.0.1", a.port()}, {2, "B", "127.0.0.1", b.port()}});
    router.start();
    constexpr int sent = 40;
    for (int i = 0; i < sent; ++i) {
        ASSERT_EQ(fetch(router.port(), http::verb::get, "/home?id=" + std::to_string(100000 + i * 7919)).status,
                  200u);
    }
    const Reply r = fetch(router.admin_port(), http::verb::get, "/metrics");
    ASSERT_EQ(r.status, 200u);
    EXPECT_EQ(r.content_type, "text/plain; version=0.0.4; charset=utf-8");
    const auto m = samples(r.body);
    const double to_a = m.at("ringlb_requests_total{replica=\"A\",code=\"2xx\"}");
    const double to_b = m.at("ringlb_requests_total{replica=\"B\",code=\"2xx\"}");
    EXPECT_EQ(to_a, a.served());
    EXPECT_EQ(to_b, b.served());
    EXPECT_EQ(to_a + to_b, sent);
    EXPECT_EQ(m.at("ringlb_requests_total{replica=\"A\",code=\"5xx\"}"), 0);
    EXPECT_EQ(m.count("ringlb_requests_total{replica=\"A\",code=\"1xx\"}"), 0u);
    // The histogram: cumulative, its +Inf bucket and count equal the answers.
    for (const char* who : {"A", "B"}) {
        const std::string lbl = std::string("replica=\"") + who + "\"";
        const double answered = m.at("ringlb_requests_total{" + lbl + ",code=\"2xx\"}");
        EXPECT_EQ(m.at("ringlb_request_duration_seconds_bucket{" + lbl + ",le=\"+Inf\"}"), answered);
        EXPECT_EQ(m.at("ringlb_request_duration_seconds_count{" + lbl + "}"), answered);
        EXPECT_GT(m.at("ringlb_request_duration_seconds_sum{" + lbl + "}"), 0);
        double previous = 0;
        for (const double bound : ringlb::request_duration_bounds) {
            std::ostringstream le;
            le << bound;
            const double v =
                m.at("ringlb_request_duration_seconds_bucket{" + lbl + ",le=\"" + le.str() + "\"}");
            EXPECT_GE(v, previous);
            previous = v;
        }
    }
    EXPECT_EQ(m.at("ringlb_replicas"), 2);
    EXPECT_EQ(m.at("ringlb_replica_up{replica=\"A\"}"), 1);
    EXPECT_EQ(m.at("ringlb_replica_in_flight{replica=\"A\"}"), 0);
    EXPECT_EQ(m.at("ringlb_replica_weight{replica=\"A\"}"), 1);
    EXPECT_NEAR(m.at("ringlb_ring_share{replica=\"A\"}") + m.at("ringlb_ring_share{replica=\"B\"}"),
                1.0, 1e-9);
    EXPECT_EQ(m.at("ringlb_membership_changes_total{kind=\"added\"}"), 2);
    EXPECT_EQ(m.at("ringlb_retries_total"), 0);
    // This scrape's own connection is open while it is answered.
    EXPECT_GE(m.at("ringlb_connections_active"), 1);
    EXPECT_EQ(m.at("ringlb_build_info{version=\"0.1.0\",scheme=\"assignment\",key=\"query:id\"}"), 1);
    // The same counters through the C++ API.
    const auto per = router.replica_stats();
    ASSERT_EQ(per.size(), 2u);
    EXPECT_EQ(per[0].requests + per[1].requests, static_cast<std::uint64_t>(sent));
    EXPECT_EQ(per[0].responses[1], static_cast<std::uint64_t>(a.served()));
}

TEST(RouterMetrics, AFailedTryIsAFailureOfItsReplicaAndARetry) {
    Upstream alive("alive");
    ringlb::Router router(admin_config());
    router.replicas().add({{1, "Dead", "127.0.0.1", closed_port()}, {2, "Alive", "127.0.0.1", alive.port()}});
    router.start();
    const std::uint64_t id = id_for(router, 1);
    ASSERT_EQ(fetch(router.port(), http::verb::get, "/x?id=" + std::to_string(id)).status, 200u);
    const auto m = samples(fetch(router.admin_port(), http::verb::get, "/metrics").body);
    EXPECT_EQ(m.at("ringlb_upstream_failures_total{replica=\"Dead\"}"), 1);
    EXPECT_EQ(m.at("ringlb_upstream_failures_total{replica=\"Alive\"}"), 0);
    EXPECT_EQ(m.at("ringlb_retries_total"), 1);
    EXPECT_EQ(m.at("ringlb_requests_total{replica=\"Alive\",code=\"2xx\"}"), 1);
    EXPECT_EQ(m.at("ringlb_requests_total{replica=\"Dead\",code=\"2xx\"}"), 0);
}

TEST(RouterMetrics, ReadyzFollowsTheReplicasOnTheRingAndHealthzTheRouter) {
    Upstream a("a");
    auto c = admin_config();
    c.min_replicas = 1;
    ringlb::Router router(c);
    router.start();
    EXPECT_EQ(fetch(router.admin_port(), http::verb::get, "/healthz").status, 200u);
    const Reply empty = fetch(router.admin_port(), http::verb::get, "/readyz");
    EXPECT_EQ(empty.status, 503u);
    EXPECT_NE(empty.body.find("not ready: 0 replicas on the ring, min-replicas is 1"), std::string::npos);
    router.replicas().add({{1, "A", "127.0.0.1", a.port()}});
    EXPECT_EQ(fetch(router.admin_port(), http::verb::get, "/readyz").status, 200u);
    router.replicas().set_serving(1, false);
    EXPECT_EQ(fetch(router.admin_port(), http::verb::get, "/readyz").status, 503u);
    const auto m = samples(fetch(router.admin_port(), http::verb::get, "/metrics").body);
    EXPECT_EQ(m.at("ringlb_replica_up{replica=\"A\"}"), 0);
    EXPECT_EQ(m.at("ringlb_ring_share{replica=\"A\"}"), 0);
    EXPECT_EQ(m.at("ringlb_replicas"), 0);
    EXPECT_EQ(m.at("ringlb_membership_changes_total{kind=\"down\"}"), 1);
}

TEST(RouterMetrics, StatusIsJsonWithEveryReplica) {
    Upstream a("a"), b("b");
    ringlb::Router router(admin_config());
    router.replicas().add({{1, "A", "127.0.0.1", a.port()}, {2, "B", "127.0.0.1", b.port()}});
    router.start();
    fetch(router.port(), http::verb::get, "/x?id=" + std::to_string(id_for(router, 2)));
    const Reply r = fetch(router.admin_port(), http::verb::get, "/status");
    ASSERT_EQ(r.status, 200u);
    EXPECT_EQ(r.content_type, "application/json");
    const json::object s = json::parse(r.body).as_object();
    EXPECT_EQ(s.at("ring").at("scheme").as_string(), "assignment");
    EXPECT_EQ(s.at("ring").at("slots").as_int64(), 512);
    EXPECT_EQ(s.at("ring").at("replicas").as_int64(), 2);
    EXPECT_EQ(s.at("router").at("key").as_string(), "query:id");
    EXPECT_EQ(s.at("router").at("totals").at("proxied").as_int64(), 1);
    const json::array& reps = s.at("replicas").as_array();
    ASSERT_EQ(reps.size(), 2u);
    const json::object& second = reps[1].as_object();
    EXPECT_EQ(second.at("id").as_int64(), 2);
    EXPECT_EQ(second.at("hostname").as_string(), "B");
    EXPECT_EQ(second.at("address").as_string(), "127.0.0.1:" + std::to_string(b.port()));
    EXPECT_EQ(second.at("state").as_string(), "up");
    EXPECT_EQ(second.at("requests").as_int64(), 1);
    EXPECT_EQ(second.at("responses").at("2xx").as_int64(), 1);
    EXPECT_EQ(second.at("weight").as_int64(), 1);
    EXPECT_FALSE(s.at("ring").at("canonical").as_bool());
    const double share = reps[0].at("share").as_double() + second.at("share").as_double();
    EXPECT_NEAR(share, 1.0, 1e-9);
}

TEST(RouterMetrics, OnlyTheAdminListenerServesThemAndOnlyToGetAndHead) {
    Upstream a("a");
    ringlb::Router router(admin_config());
    router.replicas().add({{1, "A", "127.0.0.1", a.port()}});
    router.start();
    // On the data port these paths belong to the service behind the router.
    for (const char* path : {"/metrics", "/status", "/healthz", "/readyz"}) {
        const Reply data = fetch(router.port(), http::verb::get, path);
        EXPECT_EQ(data.status, 200u) << path;
        EXPECT_EQ(data.body, "up:a") << path;
        EXPECT_EQ(fetch(router.admin_port(), http::verb::post, path).status, 405u) << path;
    }
    const Reply unknown = fetch(router.admin_port(), http::verb::get, "/metricz");
    EXPECT_EQ(unknown.status, 404u);
    EXPECT_NE(unknown.body.find("GET /metrics"), std::string::npos);
    // The scrapes are not requests a replica answered.
    EXPECT_EQ(router.replica_stats()[0].requests, 4u);
}

TEST(RouterMetrics, HeartbeatRoundTripsAndStatesComeFromTheHealthSource) {
    using namespace std::chrono_literals;
    Upstream a("a");
    ringlb::Router router(admin_config());
    router.replicas().add({{1, "A", "127.0.0.1", a.port()}, {2, "Dead", "127.0.0.1", closed_port()}});
    ringlb::HeartbeatConfig hc;
    hc.interval = 20ms;
    hc.fall = 1;
    ringlb::HeartbeatEngine engine(router.executor(), router.replicas(), hc);
    router.set_health_source(engine.health_source());
    router.start();
    // Before the engine has probed anything: states from the ring, no round trips.
    auto m = samples(fetch(router.admin_port(), http::verb::get, "/metrics").body);
    EXPECT_EQ(m.count("ringlb_heartbeat_rtt_seconds{replica=\"A\"}"), 0u);
    engine.start();
    bool settled = false;
    for (int i = 0; i < 250 && !settled; ++i) {  // at most 5 s
        const auto states = engine.states();
        settled = states.size() == 2 && states[0].last_latency && states[1].state == ringlb::Health::down;
        if (!settled) std::this_thread::sleep_for(20ms);
    }
    ASSERT_TRUE(settled);
    m = samples(fetch(router.admin_port(), http::verb::get, "/metrics").body);
    EXPECT_GT(m.at("ringlb_heartbeat_rtt_seconds{replica=\"A\"}"), 0);
    EXPECT_LT(m.at("ringlb_heartbeat_rtt_seconds{replica=\"A\"}"), 0.2);  // the probe timeout
    EXPECT_EQ(m.count("ringlb_heartbeat_rtt_seconds{replica=\"Dead\"}"), 0u);
    EXPECT_EQ(m.at("ringlb_replica_up{replica=\"Dead\"}"), 0);
    const json::array reps =
        json::parse(fetch(router.admin_port(), http::verb::get, "/status").body).at("replicas").as_array();
    EXPECT_EQ(reps[0].at("state").as_string(), "up");
    EXPECT_GT(reps[0].at("heartbeat_rtt_seconds").as_double(), 0);
    EXPECT_EQ(reps[1].at("state").as_string(), "down");
    EXPECT_FALSE(reps[1].at("on_ring").as_bool());
    EXPECT_TRUE(reps[1].at("heartbeat_rtt_seconds").is_null());
    engine.stop();
    router.stop();
}

}  // namespace
