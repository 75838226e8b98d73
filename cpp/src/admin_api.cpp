#include "ringlb/admin_api.hpp"

#include <boost/json.hpp>
#include <boost/json/basic_parser_impl.hpp>

#include <algorithm>
#include <limits>
#include <set>
#include <vector>

#include "ringlb/errors.hpp"

namespace ringlb {
namespace {

namespace json = boost::json;

[[noreturn]] void reject(const std::string& message) { throw ControlError(400, message); }

// Length of the well-formed UTF-8 sequence at the start of `s` (Unicode
// Table 3-7: no overlong forms, surrogates or code points past U+10FFFF), or 0.
std::size_t utf8_sequence(std::string_view s) noexcept {
    const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
    const auto tail = [&](std::size_t i, unsigned lo = 0x80, unsigned hi = 0xBF) {
        return i < s.size() && byte(i) >= lo && byte(i) <= hi;
    };
    const unsigned b = byte(0);
    if (b < 0x80) return 1;
    if (b >= 0xC2 && b <= 0xDF) return tail(1) ? 2 : 0;
    if (b >= 0xE0 && b <= 0xEF) {
        const unsigned lo = b == 0xE0 ? 0xA0 : 0x80, hi = b == 0xED ? 0x9F : 0xBF;
        return tail(1, lo, hi) && tail(2) ? 3 : 0;
    }
    if (b >= 0xF0 && b <= 0xF4) {
        const unsigned lo = b == 0xF0 ? 0x90 : 0x80, hi = b == 0xF4 ? 0x8F : 0xBF;
        return tail(1, lo, hi) && tail(2) && tail(3) ? 4 : 0;
    }
    return 0;
}

// `text` with every byte that is not part of well-formed UTF-8 replaced by
// U+FFFD. Boost.JSON writes strings as they are, so a message that quotes a
// client's bytes (a path, a hostname cut at 100 bytes mid-character) would
// otherwise make the error body invalid JSON.
void append_valid_utf8(std::string& out, std::string_view text) {
    while (!text.empty()) {
        const std::size_t n = utf8_sequence(text);
        if (n == 0) {
            out += "\xEF\xBF\xBD";
            text.remove_prefix(1);
        } else {
            out.append(text.data(), n);
            text.remove_prefix(n);
        }
    }
}

struct Body {
    std::int64_t n = 0;
    std::vector<std::string> hostnames;
    std::vector<std::string> addresses;  // /add only: one "HOST:PORT" per new replica
    std::vector<std::int64_t> weights;   // /add only: one ring weight per new replica, unchecked
};

// Boost.JSON's DOM parser keeps the last of two equal keys, so {"n":1,"n":2}
// would act as n = 2 while another reader takes n = 1. Its SAX parser
// (basic_parser) sees every key: this handler only records, per open object,
// the keys met so far and fails on a repeat. Everything else is left to the
// DOM parse that follows.
class DuplicateKeyFinder {
public:
    static constexpr std::size_t max_object_size = std::size_t(-1);
    static constexpr std::size_t max_array_size = std::size_t(-1);
    static constexpr std::size_t max_key_size = std::size_t(-1);
    static constexpr std::size_t max_string_size = std::size_t(-1);

    std::string duplicate;  // the first repeated key

    bool on_document_begin(json::error_code&) { return true; }
    bool on_document_end(json::error_code&) { return true; }
    bool on_object_begin(json::error_code&) {
        keys_.emplace_back();
        return true;
    }
    bool on_object_end(std::size_t, json::error_code&) {
        keys_.pop_back();
        return true;
    }
    bool on_array_begin(json::error_code&) { return true; }
    bool on_array_end(std::size_t, json::error_code&) { return true; }
    bool on_key_part(json::string_view s, std::size_t, json::error_code&) {
        key_.append(s.data(), s.size());
        return true;
    }
    bool on_key(json::string_view s, std::size_t, json::error_code& ec) {
        key_.append(s.data(), s.size());
        if (!keys_.back().insert(key_).second) {
            duplicate = key_;
            ec = json::error::syntax;  // stops the parse; `duplicate` says why
            return false;
        }
        key_.clear();
        return true;
    }
    bool on_string_part(json::string_view, std::size_t, json::error_code&) { return true; }
    bool on_string(json::string_view, std::size_t, json::error_code&) { return true; }
    bool on_number_part(json::string_view, json::error_code&) { return true; }
    bool on_int64(std::int64_t, json::string_view, json::error_code&) { return true; }
    bool on_uint64(std::uint64_t, json::string_view, json::error_code&) { return true; }
    bool on_double(double, json::string_view, json::error_code&) { return true; }
    bool on_bool(bool, json::error_code&) { return true; }
    bool on_null(json::error_code&) { return true; }
    bool on_comment_part(json::string_view, json::error_code&) { return true; }
    bool on_comment(json::string_view, json::error_code&) { return true; }

private:
    std::vector<std::set<std::string>> keys_;
    std::string key_;
};

// The first key that appears twice in one object of `text`, or "" (also when
// `text` is not JSON: the DOM parse reports that).
std::string duplicate_key(std::string_view text) {
    json::basic_parser<DuplicateKeyFinder> p(json::parse_options{});
    json::error_code ec;
    p.write_some(false, text.data(), text.size(), ec);
    return p.handler().duplicate;
}

// Parses {"n": int, "hostnames": [str, ...]?} (and for /add "addresses":
// [str, ...]? and "weights": [int, ...]?) and checks everything that does not depend on the current
// replicas. `more_message` is the SPEC's exact text for a hostname list
// longer than n.
Body parse_body(std::string_view text, const char* more_message, bool add) {
    json::error_code ec;
    const json::value v = json::parse(json::string_view(text.data(), text.size()), ec);
    if (ec) reject("request body is not valid JSON: " + ec.message());
    if (const std::string dup = duplicate_key(text); !dup.empty()) {
        reject("request body names '" + dup.substr(0, 100) + "' more than once");
    }
    const json::object* obj = v.if_object();
    if (!obj) reject("request body must be a JSON object like {\"n\": 1, \"hostnames\": [...]}");
    for (const auto& kv : *obj) {
        if (kv.key() != "n" && kv.key() != "hostnames" &&
            !(add && (kv.key() == "addresses" || kv.key() == "weights"))) {
            reject("unknown field '" + std::string(kv.key()) +
                   (add ? "' (expected 'n', 'hostnames', 'addresses' and 'weights')"
                        : "' (expected 'n' and 'hostnames')"));
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
                       "' is invalid: it must match " + std::string(AdminApi::hostname_pattern));
            }
            if (!seen.insert(name).second) {
                reject("hostname '" + std::string(name) + "' appears more than once");
            }
            b.hostnames.emplace_back(name);
        }
    }
    // Where servers that ringlb does not start listen (the static backend):
    // one per new replica. Their form is the control plane's to check, since
    // it resolves them.
    if (const json::value* a = obj->if_contains("addresses")) {
        const json::array* arr = a->if_array();
        if (!arr || !std::all_of(arr->begin(), arr->end(), [](const json::value& e) {
                return e.is_string() && e.get_string().size() <= 300;
            })) {
            reject("'addresses' must be a list of \"HOST:PORT\" strings");
        }
        if (static_cast<std::int64_t>(arr->size()) != b.n) {
            reject("'addresses' must give one address per new replica: n is " +
                   std::to_string(b.n) + ", there are " + std::to_string(arr->size()));
        }
        for (const auto& e : *arr) b.addresses.emplace_back(e.get_string());
    }
    // Ring weights, one per new replica; their range, and whether the scheme
    // takes them, are the ring's to say (validate_add asks
    // HashRing::check_weight).
    if (const json::value* w = obj->if_contains("weights")) {
        const json::array* arr = w->if_array();
        if (!arr || !std::all_of(arr->begin(), arr->end(), [](const json::value& e) {
                return e.is_int64() || e.is_uint64();
            })) {
            reject("'weights' must be a list of integers");
        }
        if (static_cast<std::int64_t>(arr->size()) != b.n) {
            reject("'weights' must give one weight per new replica: n is " + std::to_string(b.n) +
                   ", there are " + std::to_string(arr->size()));
        }
        for (const auto& e : *arr) {
            // Past int64: certainly out of range.
            b.weights.push_back(e.is_int64() ? e.get_int64() : std::numeric_limits<std::int64_t>::max());
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

std::size_t AdminApi::room_left(const ReplicaSet::Snapshot& snap, std::size_t limit,
                               std::span<const std::uint32_t> weights) {
    auto ring = snap.ring;
    try {
        for (const auto& r : snap.registered) {
            if (ring->index_of(r->id) == HashRing::npos) {
                ring = ring->with_member({r->id, r->hostname, r->weight});
            }
        }
    } catch (const RingFullError&) {
        return 0;  // the replicas waiting to come back do not even fit: no room
    }
    std::size_t room = 0;
    for (const std::uint32_t id : snap.free_ids(limit)) {
        // A placeholder that no valid hostname can equal.
        const std::uint32_t weight = room < weights.size() ? weights[room] : 1;
        try {
            ring = ring->with_member({id, "#room" + std::to_string(id), weight});
        } catch (const RingFullError&) {
            break;
        }
        ++room;
    }
    return room;
}

ControlRequest AdminApi::validate_add(std::string_view body, const ReplicaSet::Snapshot& snap,
                                      const ReplicaLimits& limits, std::string_view prefix) {
    Body b = parse_body(body, "Length of hostname list is more than newly added instances", true);
    const std::size_t registered = snap.registered.size();
    const auto over_max = [&](std::size_t n) {
        reject("cannot add " + std::to_string(n) + " replicas: at most " +
               std::to_string(limits.max) + " may be registered (--max-replicas), " +
               std::to_string(registered) + " are");
    };
    // Checked before the ring is asked for room, which costs a ring per replica.
    if (static_cast<std::uint64_t>(b.n) > limits.max) over_max(static_cast<std::size_t>(b.n));
    std::set<std::string> taken;
    for (const auto& r : snap.registered) taken.insert(r->hostname);
    for (const auto& h : b.hostnames) {
        if (taken.count(h)) reject("hostname '" + h + "' is already present");
    }
    std::vector<std::uint32_t> weights;
    for (const std::int64_t w : b.weights) {
        try {
            snap.ring->check_weight(w);
        } catch (const std::invalid_argument& e) {
            reject(e.what());
        }
        weights.push_back(static_cast<std::uint32_t>(w));
    }
    const auto n = static_cast<std::size_t>(b.n);
    const std::size_t room = room_left(snap, n, weights);
    if (room < n) {
        reject("cannot add " + std::to_string(n) + " replicas: the ring has room for " +
               std::to_string(room) + " more");
    }
    if (registered + n > limits.max) over_max(n);
    ControlRequest req;
    req.op = ControlRequest::Op::add;
    req.hostnames = std::move(b.hostnames);
    req.addresses = std::move(b.addresses);
    req.weights = std::move(weights);
    for (auto& name : snap.fresh_names(n - req.hostnames.size(), prefix, req.hostnames)) {
        req.hostnames.push_back(std::move(name));
    }
    return req;
}

ControlRequest AdminApi::validate_remove(std::string_view body, const ReplicaSet::Snapshot& snap,
                                         std::mt19937_64& rng, const ReplicaLimits& limits) {
    Body b = parse_body(body, "Length of hostname list is more than removable instances", false);
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
    if (present.size() - n < limits.min) {
        reject("cannot remove " + std::to_string(n) + " replicas: at least " +
               std::to_string(limits.min) + " must stay registered (--min-replicas), " +
               std::to_string(present.size()) + " are");
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

std::optional<ControlError> AdminApi::authorize(std::string_view token,
                                              std::string_view authorization, bool loopback) {
    if (token.empty()) {
        if (loopback) return std::nullopt;
        return ControlError(403,
                          "/add and /rm are disabled on a non-loopback address without a token: "
                          "start ringlb serve with --admin-token TOKEN (or RINGLB_ADMIN_TOKEN) "
                          "and send 'Authorization: Bearer TOKEN', or serve the admin API on "
                          "loopback with --admin-listen 127.0.0.1:PORT");
    }
    // RFC 6750 §2.1: "Bearer" (case-insensitive), one space, the token.
    constexpr std::string_view scheme = "bearer ";
    bool ok = authorization.size() == scheme.size() + token.size();
    // Compared in constant time over the token's length, so that the time
    // taken says nothing about how much of a guess was right.
    unsigned char diff = ok ? 0 : 1;
    for (std::size_t i = 0; i < scheme.size() + token.size(); ++i) {
        const char want = i < scheme.size() ? scheme[i] : token[i - scheme.size()];
        char got = i < authorization.size() ? authorization[i] : '\0';
        if (i < scheme.size() && got >= 'A' && got <= 'Z') got = static_cast<char>(got - 'A' + 'a');
        diff |= static_cast<unsigned char>(want ^ got);
    }
    ok = ok && diff == 0;
    if (ok) return std::nullopt;
    return ControlError(401, authorization.empty()
                               ? "/add and /rm need 'Authorization: Bearer TOKEN' (--admin-token)"
                               : "the admin token is wrong");
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
    append_valid_utf8(text, message);
    o["message"] = std::move(text);
    o["status"] = "failure";
    return json::serialize(o);
}

std::string AdminApi::success_body(std::string_view message) {
    json::object o;
    o["message"] = message;
    o["status"] = "successful";
    return json::serialize(o);
}

}  // namespace ringlb
