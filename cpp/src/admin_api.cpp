#include "ringlb/admin_api.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <set>
#include <vector>

#include "ringlb/errors.hpp"

namespace ringlb {
namespace {

namespace json = boost::json;

[[noreturn]] void reject(const std::string& message) { throw AdminError(400, message); }

struct Body {
    std::int64_t n = 0;
    std::vector<std::string> hostnames;
};

// Parses {"n": int, "hostnames": [str, ...]?} and checks everything that does
// not depend on the current replicas. `more_message` is the SPEC's exact text
// for a hostname list longer than n.
Body parse_body(std::string_view text, const char* more_message) {
    json::error_code ec;
    const json::value v = json::parse(json::string_view(text.data(), text.size()), ec);
    if (ec) reject("request body is not valid JSON: " + ec.message());
    const json::object* obj = v.if_object();
    if (!obj) reject("request body must be a JSON object like {\"n\": 1, \"hostnames\": [...]}");
    for (const auto& kv : *obj) {
        if (kv.key() != "n" && kv.key() != "hostnames") {
            reject("unknown field '" + std::string(kv.key()) + "' (expected 'n' and 'hostnames')");
        }
    }
    Body b;
    const json::value* n = obj->if_contains("n");
    if (!n) reject("'n' is missing");
    if (n->is_int64()) {
        b.n = n->get_int64();
    } else if (n->is_uint64()) {
        b.n = AdminApi::max_change + 1;  // beyond int64: certainly too many
    } else {
        reject("'n' must be an integer");
    }
    if (b.n <= 0) reject("'n' must be a positive integer, got " + std::to_string(b.n));
    if (b.n > AdminApi::max_change) {
        reject("'n' must be at most " + std::to_string(AdminApi::max_change));
    }
    if (const json::value* h = obj->if_contains("hostnames")) {
        const json::array* arr = h->if_array();
        if (!arr) reject("'hostnames' must be a list of strings");
        for (const auto& e : *arr) {
            if (!e.is_string()) reject("'hostnames' must be a list of strings");
        }
        if (static_cast<std::int64_t>(arr->size()) > b.n) reject(more_message);
        std::set<std::string_view> seen;
        for (const auto& e : *arr) {
            const auto& s = e.get_string();
            const std::string_view name(s.data(), s.size());
            if (!AdminApi::valid_hostname(name)) {
                reject("hostname '" + std::string(name).substr(0, 100) +
                       "' is invalid: it must match ^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$");
            }
            if (!seen.insert(name).second) {
                reject("hostname '" + std::string(name) + "' appears more than once");
            }
            b.hostnames.emplace_back(name);
        }
    }
    return b;
}

}  // namespace

bool AdminApi::valid_hostname(std::string_view name) noexcept {
    if (name.empty() || name.size() > 63) return false;
    const auto alnum = [](char c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    };
    if (!alnum(name.front())) return false;
    return std::all_of(name.begin() + 1, name.end(),
                       [&](char c) { return alnum(c) || c == '_' || c == '.' || c == '-'; });
}

std::size_t AdminApi::room_left(const ReplicaSet::Snapshot& snap, std::size_t limit) {
    auto ring = snap.ring;
    std::set<std::uint32_t> used;
    try {
        for (const auto& r : snap.registered) {
            used.insert(r->id);
            if (ring->index_of(r->id) == HashRing::npos) ring = ring->with_member({r->id, r->hostname});
        }
    } catch (const RingFullError&) {
        return 0;  // the replicas waiting to come back do not even fit: no room
    }
    std::size_t room = 0;
    std::uint32_t id = 1;
    while (room < limit) {
        while (used.count(id)) ++id;
        used.insert(id);
        // A placeholder that no valid hostname can equal.
        const std::string name = "#room" + std::to_string(id);
        try {
            ring = ring->with_member({id, name});
        } catch (const RingFullError&) {
            break;
        }
        ++room;
    }
    return room;
}

ControlRequest AdminApi::validate_add(std::string_view body, const ReplicaSet::Snapshot& snap) {
    Body b = parse_body(body, "Length of hostname list is more than newly added instances");
    std::set<std::string> taken;
    for (const auto& r : snap.registered) taken.insert(r->hostname);
    for (const auto& h : b.hostnames) {
        if (taken.count(h)) reject("hostname '" + h + "' is already present");
    }
    const auto n = static_cast<std::size_t>(b.n);
    const std::size_t room = room_left(snap, n);
    if (room < n) {
        reject("cannot add " + std::to_string(n) + " replicas: the ring has room for " +
               std::to_string(room) + " more");
    }
    for (const auto& h : b.hostnames) taken.insert(h);
    ControlRequest req;
    req.op = ControlRequest::Op::add;
    req.hostnames = std::move(b.hostnames);
    for (std::uint64_t k = 1; req.hostnames.size() < n; ++k) {
        std::string name = "Server" + std::to_string(k);
        if (taken.insert(name).second) req.hostnames.push_back(std::move(name));
    }
    return req;
}

ControlRequest AdminApi::validate_remove(std::string_view body, const ReplicaSet::Snapshot& snap,
                                         std::mt19937_64& rng) {
    Body b = parse_body(body, "Length of hostname list is more than removable instances");
    std::set<std::string> present;
    for (const auto& r : snap.registered) present.insert(r->hostname);
    const auto n = static_cast<std::size_t>(b.n);
    if (n > present.size()) {
        reject("cannot remove " + std::to_string(n) + " replicas: only " +
               std::to_string(present.size()) + " present");
    }
    for (const auto& h : b.hostnames) {
        if (!present.count(h)) reject("hostname '" + h + "' is not a replica");
    }
    ControlRequest req;
    req.op = ControlRequest::Op::remove;
    req.hostnames = std::move(b.hostnames);
    std::vector<std::string> others;
    for (const auto& r : snap.registered) {
        if (std::find(req.hostnames.begin(), req.hostnames.end(), r->hostname) == req.hostnames.end()) {
            others.push_back(r->hostname);
        }
    }
    std::shuffle(others.begin(), others.end(), rng);
    for (std::size_t i = 0; req.hostnames.size() < n; ++i) req.hostnames.push_back(others[i]);
    return req;
}

std::string AdminApi::rep_body(const ReplicaSet::Snapshot& snap) {
    json::array names;
    names.reserve(snap.registered.size());
    for (const auto& r : snap.registered) names.emplace_back(r->hostname);
    json::object message;
    message["N"] = snap.registered.size();
    message["replicas"] = std::move(names);
    json::object o;
    o["message"] = std::move(message);
    o["status"] = "successful";
    return json::serialize(o);
}

std::string AdminApi::error_body(std::string_view message) {
    json::object o;
    std::string text = "<Error> ";
    text += message;
    o["message"] = std::move(text);
    o["status"] = "failure";
    return json::serialize(o);
}

}  // namespace ringlb
