#include "ringlb/admin_routes.hpp"

#include <array>

#include "ringlb/admin_api.hpp"
#include "ringlb/dashboard.hpp"
#include "ringlb/prometheus_text.hpp"
#include "ringlb/router_metrics.hpp"

namespace ringlb {
namespace {

namespace http = boost::beast::http;
constexpr std::string_view json_type = "application/json";

AdminAnswer json(std::pair<unsigned, std::string> answer) {
    return {answer.first, json_type, std::move(answer.second)};
}

constexpr std::string_view read_allow = "GET, HEAD";

const std::array<AdminRoute, 8> routes{{
    {"/", AdminRoute::Where::admin_listener, "GET / (the dashboard)", read_allow,
     [](RouterState&) { return AdminAnswer{200, Dashboard::content_type, std::string(Dashboard::html())}; },
     std::nullopt},
    {"/rep", AdminRoute::Where::every_listener, "GET /rep", read_allow,
     [](RouterState& s) { return AdminAnswer{200, json_type, AdminApi::rep_body(*s.replicas.snapshot())}; },
     std::nullopt},
    {"/add", AdminRoute::Where::control, "POST /add", "POST", nullptr, ControlRequest::Op::add},
    {"/rm", AdminRoute::Where::control, "DELETE /rm (or POST /rm)", "DELETE, POST", nullptr,
     ControlRequest::Op::remove},
    {"/metrics", AdminRoute::Where::admin_listener, "GET /metrics", read_allow,
     [](RouterState& s) {
         return AdminAnswer{200, PrometheusText::content_type, RouterMetrics::prometheus(s)};
     },
     std::nullopt},
    {"/status", AdminRoute::Where::admin_listener, "GET /status", read_allow,
     [](RouterState& s) { return AdminAnswer{200, json_type, RouterMetrics::status_json(s)}; },
     std::nullopt},
    {"/healthz", AdminRoute::Where::admin_listener, "GET /healthz", read_allow,
     [](RouterState& s) { return json(RouterMetrics::health(s)); }, std::nullopt},
    {"/readyz", AdminRoute::Where::admin_listener, "GET /readyz", read_allow,
     [](RouterState& s) { return json(RouterMetrics::readiness(s)); }, std::nullopt},
}};

}  // namespace

bool AdminRoute::allows(http::verb method) const noexcept {
    if (op == ControlRequest::Op::add) return method == http::verb::post;
    if (op == ControlRequest::Op::remove) {
        return method == http::verb::delete_ || method == http::verb::post;
    }
    return method == http::verb::get || method == http::verb::head;
}

bool AdminRoute::served_on(Listener listener, bool admin_on_data_port) const noexcept {
    switch (where) {
        case Where::every_listener: return true;
        case Where::admin_listener: return listener == Listener::admin;
        case Where::control: return listener == Listener::admin || admin_on_data_port;
    }
    return false;
}

std::span<const AdminRoute> admin_routes() noexcept { return routes; }

const AdminRoute* find_admin_route(std::string_view path) noexcept {
    for (const auto& r : routes) {
        if (r.path == path) return &r;
    }
    return nullptr;
}

const std::string& admin_route_list() {
    static const std::string list = [] {
        std::string out;
        for (const auto& r : routes) {
            if (!out.empty()) out += ", ";
            out += r.usage.substr(0, r.usage.find(" (or "));  // "DELETE /rm", not its alternative
        }
        return out;
    }();
    return list;
}

}  // namespace ringlb
