// Dashboard: the page GET / of the admin listener answers (issue 14.3).
//
// One self-contained HTML page (its style and script inline, nothing fetched
// from elsewhere) that polls GET /status once a second and draws the ring as
// a circle of each replica's share in its colour, a table of the replicas
// (state, share, request rate and p99 over the last interval, counters) and
// the router's recent events from /status (EventLog: suspect, down, up,
// replaced, added, removed...), so a page opened late shows what came before.
// The router serves it as it serves /status: no file, no state.
#pragma once

#include <string_view>

namespace ringlb {

struct Dashboard {
    static constexpr std::string_view content_type = "text/html; charset=utf-8";
    static std::string_view html() noexcept;
};

}  // namespace ringlb
