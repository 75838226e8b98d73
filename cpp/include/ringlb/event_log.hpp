// EventLog: the router's bounded record of what happened to its replicas
// (issue 14.2), served in /status as "events" and drawn by the dashboard.
//
// One store, fed by whoever observes the event: the heartbeat engine records
// its state changes (suspect, down, up) the moment it makes them; the
// launcher records its own actions (started, added, replaced, removed...)
// through the binding's Router.record_event. A page or a `ringlb status`
// opened late therefore still sees what happened before it looked.
//
// The event kinds are declared here and nowhere else: the binding exports
// them as ringlb.EVENT_KINDS and refuses any other name.
//
// Bounded: the last `capacity` events are kept (the oldest go first), each
// detail cut to max_detail_bytes, so the store never grows with uptime.
// Thread-safe: one mutex. Never on the request path (health transitions,
// control-plane actions and admin reads only).
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ringlb {

// In the order a replica usually meets them.
enum class EventKind : std::uint8_t {
    started,   // the launcher started it when it started
    adopted,   // the launcher found it running (a restart with --keep-replicas)
    added,     // /add (or a reload) registered it
    suspect,   // the health checks missed it once (it keeps serving)
    down,      // fall misses in a row: off the ring
    killed,    // killed on purpose (Launcher.kill, failure experiments)
    replaced,  // a new replica took a dead one's id and hostname
    up,        // answering again: back on the ring (or no longer suspect)
    removed,   // /rm (or a stop) unregistered it
    failed,    // a control-plane action failed (start, stop, replacement)
    stopped,   // the launcher stopped
    moved,     // its address changed (a static upstream's name re-resolved)
};

inline constexpr std::array<std::string_view, 12> event_kind_names{
    "started", "adopted", "added", "suspect", "down", "killed",
    "replaced", "up", "removed", "failed", "stopped", "moved"};
static_assert(event_kind_names.size() == static_cast<std::size_t>(EventKind::moved) + 1,
              "one name per EventKind, in its order");

std::string_view to_string(EventKind kind) noexcept;
// The kind called `name`; std::invalid_argument naming every kind otherwise.
EventKind parse_event_kind(std::string_view name);

struct Event {
    std::uint64_t seq = 0;  // 1, 2, ... in the order recorded: a reader's "seen up to"
    std::chrono::system_clock::time_point time;       // wall clock, for people
    std::chrono::steady_clock::time_point monotonic;  // /status's monotonic_seconds clock
    EventKind kind = EventKind::up;
    std::uint32_t id = 0;  // the replica's server id; 0 when the event is not about one
    std::string hostname;  // "" when the event is not about one replica
    std::string detail;    // why, in words
};

class EventLog {
public:
    static constexpr std::size_t default_capacity = 200;
    static constexpr std::size_t max_detail_bytes = 512;

    // std::invalid_argument when capacity is 0.
    explicit EventLog(std::size_t capacity = default_capacity);

    // Records an event now. A longer detail is cut at a UTF-8 character
    // boundary to max_detail_bytes (with "…"), so that JSON readers get text.
    void record(EventKind kind, std::uint32_t id, std::string hostname, std::string detail);
    // The events kept, oldest first (newest last), at most capacity().
    std::vector<Event> recent() const;
    // Events recorded so far, the ones dropped included.
    std::uint64_t recorded() const;
    std::size_t capacity() const noexcept { return capacity_; }

private:
    const std::size_t capacity_;
    mutable std::mutex mutex_;
    std::deque<Event> events_;
    std::uint64_t recorded_ = 0;
};

}  // namespace ringlb
