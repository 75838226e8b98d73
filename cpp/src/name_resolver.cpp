#include "ringlb/name_resolver.hpp"

#include <boost/asio/post.hpp>

#include <algorithm>
#include <set>
#include <utility>

namespace ringlb {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

NameResolver::NameResolver(ReplicaSet& replicas, EventLog& events,
                           std::chrono::milliseconds interval)
    : replicas_(replicas), events_(events), interval_ms_(interval.count()) {}

NameResolver::~NameResolver() { stop(); }

void NameResolver::start() {
    std::lock_guard lock(lifecycle_);
    if (thread_.joinable()) return;
    if (ioc_.stopped()) ioc_.restart();
    work_.emplace(ioc_.get_executor());
    seen_version_ = 0;  // look at the whole set again
    asio::post(ioc_, [this] { tick(); });
    thread_ = std::thread([this] { ioc_.run(); });
}

void NameResolver::stop() {
    std::lock_guard lock(lifecycle_);
    if (!thread_.joinable()) return;
    asio::post(ioc_, [this] {
        timer_.cancel();
        resolver_.cancel();
    });
    work_.reset();
    ioc_.stop();
    thread_.join();
    // Handlers that did not run are dropped; what they were doing is redone at start().
    entries_.clear();
}

void NameResolver::set_interval(std::chrono::milliseconds interval) noexcept {
    interval_ms_.store(interval.count(), std::memory_order_relaxed);
}

void NameResolver::refresh(std::uint32_t id) {
    asio::post(ioc_, [this, id] {
        const auto it = entries_.find(id);
        if (it == entries_.end()) return;
        Entry& e = it->second;
        e.due = std::min(e.due, e.started + retry_delay);
    });
}

void NameResolver::tick() {
    if (replicas_.version() != seen_version_) sync();
    const auto now = Clock::now();
    for (auto& [id, e] : entries_) {
        if (!e.busy && now >= e.due) resolve(id, e);
    }
    timer_.expires_after(poll);
    timer_.async_wait([this](const boost::system::error_code& ec) {
        if (!ec) tick();
    });
}

void NameResolver::sync() {
    const auto snap = replicas_.snapshot();
    seen_version_ = snap->version;
    const auto now = Clock::now();
    std::set<std::uint32_t> named;
    for (const auto& r : snap->registered) {
        if (r->name.empty()) continue;
        named.insert(r->id);
        const bool serving = snap->ring->index_of(r->id) != HashRing::npos;
        auto [it, fresh] = entries_.try_emplace(r->id);
        Entry& e = it->second;
        if (fresh || e.name != r->name || e.hostname != r->hostname) {
            e = Entry{r->name, r->hostname, serving, false, false, now, {}};
            continue;
        }
        // Taken off the ring (down): its name may point elsewhere now.
        if (e.serving && !serving) e.due = std::min(e.due, e.started + retry_delay);
        e.serving = serving;
    }
    for (auto it = entries_.begin(); it != entries_.end();) {
        it = named.count(it->first) ? std::next(it) : entries_.erase(it);
    }
}

void NameResolver::resolve(std::uint32_t id, Entry& e) {
    e.busy = true;
    e.started = Clock::now();
    resolver_.async_resolve(e.name, "", [this, id, name = e.name](
                                            const boost::system::error_code& ec,
                                            const tcp::resolver::results_type& results) {
        on_resolved(id, name, ec, results);
    });
}

void NameResolver::on_resolved(std::uint32_t id, const std::string& name,
                               const boost::system::error_code& ec,
                               const tcp::resolver::results_type& results) {
    if (ec == asio::error::operation_aborted) return;
    const auto it = entries_.find(id);
    if (it == entries_.end() || it->second.name != name) return;  // removed or renamed meanwhile
    Entry& e = it->second;
    e.busy = false;
    const auto now = Clock::now();
    // IPv4 first, as most services listen there (and the heartbeat's Host field is one).
    std::optional<asio::ip::address> address;
    for (const auto& entry : results) {
        const auto a = entry.endpoint().address();
        if (!address || (a.is_v4() && !address->is_v4())) address = a;
    }
    if (ec || !address) {
        e.due = now + std::min(interval(), std::chrono::milliseconds(retry_delay));
        if (!e.failing) {
            events_.record(EventKind::failed, id, e.hostname,
                           "cannot resolve '" + name + "': " +
                               (ec ? ec.message() : std::string("no address")));
        }
        e.failing = true;
        return;
    }
    e.failing = false;
    e.due = now + interval();
    const auto before = replicas_.find(id);
    try {
        if (replicas_.set_address(id, name, address->to_string()) && before && !before->host.empty()) {
            events_.record(EventKind::moved, id, e.hostname,
                           name + " resolves to " + address->to_string() + " (was " + before->host + ")");
        }
    } catch (const std::exception& err) {  // the ring has no room for it now
        events_.record(EventKind::failed, id, e.hostname, "resolved " + name + ": " + err.what());
    }
    // Its first address put it on the ring: from now on, leaving it is news.
    e.serving = replicas_.snapshot()->ring->index_of(id) != HashRing::npos;
}

}  // namespace ringlb
