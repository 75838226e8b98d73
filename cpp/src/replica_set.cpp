#include "ringlb/replica_set.hpp"

#include <boost/asio/ip/address.hpp>

#include <algorithm>
#include <cctype>
#include <set>
#include <stdexcept>

namespace ringlb {
namespace {

using ReplicaPtr = std::shared_ptr<const Replica>;

const ReplicaPtr* find_in(const std::vector<ReplicaPtr>& v, std::uint32_t id) {
    for (const auto& r : v) {
        if (r->id == id) return &r;
    }
    return nullptr;
}

// A replica given a DNS name keeps it in `name` and has no address yet.
void split_name(Replica& r) {
    if (ReplicaSet::is_address(r.host)) return;
    r.name = std::move(r.host);
    r.host.clear();
}

}  // namespace

bool ReplicaSet::is_address(const std::string& host) noexcept {
    boost::system::error_code ec;
    boost::asio::ip::make_address(host, ec);
    return !ec;
}

bool ReplicaSet::valid_host(const std::string& host) noexcept {
    if (is_address(host)) return true;
    if (host.empty() || host.size() > 253 || host.front() == '-' || host.front() == '.') return false;
    return std::all_of(host.begin(), host.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
    });
}

std::vector<std::uint32_t> ReplicaSet::Snapshot::free_ids(std::size_t n) const {
    std::set<std::uint32_t> used;
    for (const auto& r : registered) used.insert(r->id);
    std::vector<std::uint32_t> out;
    out.reserve(n);
    for (std::uint32_t id = 1; out.size() < n && id != 0; ++id) {
        if (!used.count(id)) out.push_back(id);
    }
    return out;
}

std::vector<std::string> ReplicaSet::Snapshot::fresh_names(
    std::size_t n, std::string_view prefix, const std::vector<std::string>& taken) const {
    std::set<std::string, std::less<>> used(taken.begin(), taken.end());
    for (const auto& r : registered) used.insert(r->hostname);
    std::vector<std::string> out;
    out.reserve(n);
    for (std::uint64_t k = 1; out.size() < n; ++k) {
        std::string name(prefix);
        name += std::to_string(k);
        if (!used.count(name)) out.push_back(std::move(name));
    }
    return out;
}

ReplicaSet::ReplicaSet(const RingOptions& options) : options_(resolve_ring_options(options)) {
    std::lock_guard lock(mutex_);
    publish(make_ring(options_), {}, {});
}

void ReplicaSet::publish(std::shared_ptr<const HashRing> ring, std::vector<ReplicaPtr> registered,
                         const MembershipChanges& changes) {
    auto snap = std::make_shared<Snapshot>();
    snap->changes = changes;
    snap->serving.reserve(ring->members().size());
    for (const auto& m : ring->members()) {
        const ReplicaPtr* r = find_in(registered, m.id);
        // A ring member is always registered: add() and remove() keep both in step.
        snap->serving.push_back(*r);
    }
    snap->ring = std::move(ring);
    snap->registered = std::move(registered);
    snap->version = version_.load(std::memory_order_relaxed) + 1;
    {
        std::lock_guard lock(current_mutex_);
        current_ = std::move(snap);
    }
    version_.fetch_add(1, std::memory_order_acq_rel);
}

std::vector<Replica> ReplicaSet::add(std::vector<Replica> replicas) {
    std::lock_guard lock(mutex_);
    auto snap = snapshot();
    std::set<std::uint32_t> used;
    std::set<std::string> names;
    for (const auto& r : snap->registered) {
        used.insert(r->id);
        names.insert(r->hostname);
    }
    auto ring = snap->ring;
    auto registered = snap->registered;
    // Candidates for the replicas without an id: an explicit id earlier in
    // the batch may take one of them, so there are twice as many as needed.
    const auto candidates = snap->free_ids(2 * replicas.size());
    std::size_t next = 0;
    for (auto& r : replicas) {
        if (r.id == 0) {
            while (used.count(candidates[next])) ++next;
            r.id = candidates[next];
        }
        if (used.count(r.id)) {
            throw std::invalid_argument("server id " + std::to_string(r.id) + " is already registered");
        }
        if (r.hostname.empty()) throw std::invalid_argument("hostname must not be empty");
        if (names.count(r.hostname)) {
            throw std::invalid_argument("hostname '" + r.hostname + "' is already registered");
        }
        if (r.host.empty() || r.port == 0) {
            throw std::invalid_argument("replica '" + r.hostname + "' needs a host and a port");
        }
        if (!valid_host(r.host)) {
            throw std::invalid_argument("replica '" + r.hostname + "': host '" + r.host +
                                        "' is neither an IP address nor a DNS name");
        }
        split_name(r);
        used.insert(r.id);
        names.insert(r.hostname);
        // May throw; nothing published yet. Without an address: off the ring,
        // its weight checked now all the same.
        if (!r.host.empty()) ring = ring->with_member({r.id, r.hostname, r.weight});
        else ring->check_weight(r.weight);
        registered.push_back(std::make_shared<const Replica>(r));
    }
    auto changes = snap->changes;
    changes.added += replicas.size();
    publish(std::move(ring), std::move(registered), changes);
    return replicas;
}

void ReplicaSet::remove(const std::vector<std::uint32_t>& ids) {
    std::lock_guard lock(mutex_);
    auto snap = snapshot();
    for (auto id : ids) {
        if (!find_in(snap->registered, id)) {
            throw std::invalid_argument("no replica with server id " + std::to_string(id));
        }
    }
    auto ring = snap->ring;
    std::vector<ReplicaPtr> registered;
    for (const auto& r : snap->registered) {
        if (std::find(ids.begin(), ids.end(), r->id) != ids.end()) {
            if (ring->index_of(r->id) != HashRing::npos) ring = ring->without_member(r->id);
        } else {
            registered.push_back(r);
        }
    }
    auto changes = snap->changes;
    changes.removed += snap->registered.size() - registered.size();
    publish(std::move(ring), std::move(registered), changes);
}

bool ReplicaSet::set_serving(std::uint32_t id, bool serving) {
    std::lock_guard lock(mutex_);
    auto snap = snapshot();
    const ReplicaPtr* r = find_in(snap->registered, id);
    if (!r) return false;
    const bool on_ring = snap->ring->index_of(id) != HashRing::npos;
    if (on_ring == serving || (serving && (*r)->host.empty())) return false;
    auto ring = serving ? snap->ring->with_member({id, (*r)->hostname, (*r)->weight})
                        : snap->ring->without_member(id);
    auto changes = snap->changes;
    ++(serving ? changes.up : changes.down);
    publish(std::move(ring), snap->registered, changes);
    return true;
}

bool ReplicaSet::set_endpoint(std::uint32_t id, const std::string& host, std::uint16_t port) {
    if (host.empty() || port == 0) throw std::invalid_argument("a replica needs a host and a port");
    if (!valid_host(host)) {
        throw std::invalid_argument("host '" + host + "' is neither an IP address nor a DNS name");
    }
    std::lock_guard lock(mutex_);
    auto snap = snapshot();
    auto registered = snap->registered;
    for (auto& r : registered) {
        if (r->id == id) {
            auto changed = std::make_shared<Replica>(*r);
            changed->port = port;
            if (is_address(host)) {
                changed->host = host;
                changed->name.clear();
            } else if (host != r->name) {
                changed->name = host;  // resolved anew; its old address goes
                changed->host.clear();
            }
            auto ring = snap->ring;
            if (changed->host.empty() && ring->index_of(id) != HashRing::npos) {
                ring = ring->without_member(id);
            }
            r = std::move(changed);
            auto changes = snap->changes;
            ++changes.moved;
            publish(std::move(ring), std::move(registered), changes);
            return true;
        }
    }
    return false;
}

bool ReplicaSet::set_address(std::uint32_t id, const std::string& name, const std::string& address) {
    if (!is_address(address)) throw std::invalid_argument("'" + address + "' is not an IP address");
    std::lock_guard lock(mutex_);
    auto snap = snapshot();
    auto registered = snap->registered;
    for (auto& r : registered) {
        if (r->id != id) continue;
        if (r->name != name || r->host == address) return false;
        auto changed = std::make_shared<Replica>(*r);
        changed->host = address;
        auto ring = snap->ring;
        auto changes = snap->changes;
        if (r->host.empty()) {
            ring = ring->with_member({id, r->hostname, r->weight});  // its first address
            ++changes.up;
        } else {
            ++changes.moved;
        }
        r = std::move(changed);
        publish(std::move(ring), std::move(registered), changes);
        return true;
    }
    return false;
}

std::optional<Replica> ReplicaSet::find(std::uint32_t id) const {
    auto snap = snapshot();
    if (const ReplicaPtr* r = find_in(snap->registered, id)) return **r;
    return std::nullopt;
}

std::optional<Replica> ReplicaSet::find(const std::string& hostname) const {
    auto snap = snapshot();
    for (const auto& r : snap->registered) {
        if (r->hostname == hostname) return *r;
    }
    return std::nullopt;
}

std::uint32_t ReplicaSet::next_free_id() const { return snapshot()->free_ids(1).front(); }

}  // namespace ringlb
