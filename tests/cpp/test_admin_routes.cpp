#include <gtest/gtest.h>

#include <set>
#include <string>

#include "ringlb/admin_routes.hpp"

namespace {

using ringlb::AdminRoute;
using ringlb::ControlRequest;
using ringlb::Listener;
namespace http = boost::beast::http;

TEST(AdminRoutes, EveryPathOnceAndFoundByItsPath) {
    std::set<std::string_view> seen;
    for (const auto& r : ringlb::admin_routes()) {
        EXPECT_TRUE(seen.insert(r.path).second) << r.path;
        EXPECT_EQ(ringlb::find_admin_route(r.path), &r);
        // A route is either answered on the I/O thread or run by the control worker.
        EXPECT_NE(r.answer == nullptr, !r.op.has_value()) << r.path;
    }
    EXPECT_EQ(ringlb::find_admin_route("/nope"), nullptr);
    EXPECT_EQ(ringlb::find_admin_route("/rep/"), nullptr);  // exact paths only
    EXPECT_EQ(ringlb::find_admin_route(""), nullptr);
}

TEST(AdminRoutes, WhereEachIsServed) {
    const auto* rep = ringlb::find_admin_route("/rep");
    const auto* add = ringlb::find_admin_route("/add");
    const auto* metrics = ringlb::find_admin_route("/metrics");
    ASSERT_TRUE(rep && add && metrics);
    // SPEC section 3: /rep on the data port always.
    EXPECT_TRUE(rep->served_on(Listener::data, false));
    EXPECT_TRUE(rep->served_on(Listener::admin, false));
    // /add and /rm: on the data port only while admin_on_data_port.
    EXPECT_TRUE(add->served_on(Listener::data, true));
    EXPECT_FALSE(add->served_on(Listener::data, false));
    EXPECT_TRUE(add->served_on(Listener::admin, false));
    // The operator's endpoints never on the data port (they are proxied there).
    EXPECT_FALSE(metrics->served_on(Listener::data, true));
    EXPECT_TRUE(metrics->served_on(Listener::admin, false));
}

TEST(AdminRoutes, MethodsAndTheirAllowField) {
    const auto* add = ringlb::find_admin_route("/add");
    const auto* rm = ringlb::find_admin_route("/rm");
    const auto* status = ringlb::find_admin_route("/status");
    ASSERT_TRUE(add && rm && status);
    EXPECT_EQ(add->op, ControlRequest::Op::add);
    EXPECT_EQ(rm->op, ControlRequest::Op::remove);
    EXPECT_TRUE(add->allows(http::verb::post));
    EXPECT_FALSE(add->allows(http::verb::get));
    EXPECT_FALSE(add->allows(http::verb::delete_));
    EXPECT_TRUE(rm->allows(http::verb::delete_));
    EXPECT_TRUE(rm->allows(http::verb::post));
    EXPECT_FALSE(rm->allows(http::verb::put));
    EXPECT_TRUE(status->allows(http::verb::get));
    EXPECT_TRUE(status->allows(http::verb::head));
    EXPECT_FALSE(status->allows(http::verb::post));
    EXPECT_EQ(add->allow, "POST");
    EXPECT_EQ(rm->allow, "DELETE, POST");
    EXPECT_EQ(status->allow, "GET, HEAD");
}

TEST(AdminRoutes, TheListTheAdminListenersNotFoundGives) {
    EXPECT_EQ(ringlb::admin_route_list(),
              "GET / (the dashboard), GET /rep, POST /add, DELETE /rm, GET /metrics, "
              "GET /status, GET /healthz, GET /readyz");
}

}  // namespace
