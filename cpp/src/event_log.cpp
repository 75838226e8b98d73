#include "ringlb/event_log.hpp"

#include <stdexcept>

namespace ringlb {
namespace {

// `text` cut to at most `limit` bytes without splitting a UTF-8 sequence,
// marked with an ellipsis when anything was cut.
std::string cut(std::string text, std::size_t limit) {
    if (text.size() <= limit) return text;
    constexpr std::string_view ellipsis = "\xE2\x80\xA6";  // U+2026
    std::size_t end = limit - ellipsis.size();
    // Back off continuation bytes (10xxxxxx): the cut lands before a lead byte.
    while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
    text.resize(end);
    text += ellipsis;
    return text;
}

}  // namespace

std::string_view to_string(EventKind kind) noexcept {
    const auto i = static_cast<std::size_t>(kind);
    return i < event_kind_names.size() ? event_kind_names[i] : "unknown";
}

EventKind parse_event_kind(std::string_view name) {
    for (std::size_t i = 0; i < event_kind_names.size(); ++i) {
        if (event_kind_names[i] == name) return static_cast<EventKind>(i);
    }
    std::string all;
    for (const auto k : event_kind_names) all += (all.empty() ? "" : ", ") + std::string(k);
    throw std::invalid_argument("unknown event kind '" + std::string(name) + "': one of " + all);
}

EventLog::EventLog(std::size_t capacity) : capacity_(capacity) {
    if (capacity == 0) throw std::invalid_argument("an event log keeps at least one event");
}

void EventLog::record(EventKind kind, std::uint32_t id, std::string hostname, std::string detail) {
    Event e;
    e.time = std::chrono::system_clock::now();
    e.monotonic = std::chrono::steady_clock::now();
    e.kind = kind;
    e.id = id;
    e.hostname = cut(std::move(hostname), max_detail_bytes);
    e.detail = cut(std::move(detail), max_detail_bytes);
    std::lock_guard lock(mutex_);
    e.seq = ++recorded_;
    if (events_.size() == capacity_) events_.pop_front();
    events_.push_back(std::move(e));
}

std::vector<Event> EventLog::recent() const {
    std::lock_guard lock(mutex_);
    return {events_.begin(), events_.end()};
}

std::uint64_t EventLog::recorded() const {
    std::lock_guard lock(mutex_);
    return recorded_;
}

}  // namespace ringlb
