// The admin API's endpoints, one entry each: on which listener each is served,
// which methods it takes, and how it is answered. ProxySession, the routing
// decision (RouterState::serves_admin) and the admin listener's 404 all read
// this one table, so a new endpoint is one entry here.
#pragma once

#include <boost/beast/http/verb.hpp>

#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "ringlb/router.hpp"
#include "ringlb/router_state.hpp"

namespace ringlb {

// What a read-only endpoint answers; it is built on the I/O thread.
struct AdminAnswer {
    unsigned status = 200;
    std::string_view content_type;
    std::string body;
};

struct AdminRoute {
    enum class Where {
        every_listener,  // the data port too (/rep: SPEC section 3)
        admin_listener,  // only the admin listener (the operator's endpoints)
        control,         // the admin listener, and the data port with admin_on_data_port
    };

    std::string_view path;
    Where where;
    // How a client should call it, for the 405 and the 404 list ("POST /add").
    std::string_view usage;
    // The Allow field of a 405.
    std::string_view allow;
    // A read-only endpoint's answer (GET and HEAD); null for a control endpoint.
    AdminAnswer (*answer)(RouterState& state);
    // A control endpoint's operation, run on the control worker.
    std::optional<ControlRequest::Op> op;

    bool allows(boost::beast::http::verb method) const noexcept;
    bool served_on(Listener listener, bool admin_on_data_port) const noexcept;
};

// Every endpoint, in the order the 404 lists them.
std::span<const AdminRoute> admin_routes() noexcept;
// The endpoint at `path` (the target's path, without its query), or null.
const AdminRoute* find_admin_route(std::string_view path) noexcept;
// "GET / (the dashboard), GET /rep, POST /add, ...": the 404's list.
const std::string& admin_route_list();

}  // namespace ringlb
