// Fuzzes AdminApi::validate_add and validate_remove (cpp/include/ringlb/admin_api.hpp)
// on arbitrary /add and /rm bodies.
//
// Input: one selector byte, then the body. The selector's low bits pick
//   bit 0: /rm (set) or /add (clear)
//   bit 1: a small ring (M = 64, K = 16: room for one more replica) instead of the default
//   bit 2: Server2 is down (registered, off the ring) and S5 has id 5 (a gap in the ids)
// so that the ASCII digits '0'..'7' spell every case in a readable seed.
//
// ControlError is the expected rejection. Findings: any other exception, a crash
// or sanitizer report, an ControlError that is not a 4xx or whose error body is
// not the SPEC's JSON shape, and an accepted request that breaks the SPEC:
// exactly n hostnames, the given ones first, valid, distinct; /add's all new
// and within the room left on the ring, /rm's all registered.
#include <boost/json.hpp>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "ringlb/admin_api.hpp"
#include "ringlb/replica_set.hpp"

namespace {

namespace json = boost::json;
using ringlb::AdminApi;
using ringlb::ControlError;
using ringlb::ControlRequest;
using ringlb::ReplicaSet;

[[noreturn]] void finding(const char* what, std::string_view body) {
    std::fprintf(stderr, "fuzz_admin_json: %s; body: '%.*s'\n", what, static_cast<int>(body.size()),
                 body.data());
    std::abort();
}

std::unique_ptr<ReplicaSet> make_set(bool small_ring, bool one_down) {
    ringlb::RingOptions options;
    if (small_ring) {
        options.slots = 64;
        options.virtual_nodes = 16;
    }
    auto set = std::make_unique<ReplicaSet>(options);
    set->add({{0, "Server1", "127.0.0.1", 1}, {0, "Server2", "127.0.0.1", 2},
              {0, "Server3", "127.0.0.1", 3}});
    if (one_down) {
        set->set_serving(2, false);
        if (!small_ring) set->add({{5, "S5", "127.0.0.1", 5}});
    }
    return set;
}

// Built once: validation never changes a snapshot.
const ReplicaSet& replica_set(unsigned selector) {
    static const auto sets = [] {
        std::array<std::unique_ptr<ReplicaSet>, 4> s;
        for (unsigned i = 0; i < s.size(); ++i) s[i] = make_set(i & 1, i & 2);
        return s;
    }();
    return *sets[(selector >> 1) & 3];
}

// n and the given hostnames, read independently of AdminApi, for an accepted body.
struct Asked {
    std::size_t n = 0;
    std::vector<std::string> hostnames;
};

Asked asked(std::string_view body) {
    const json::value v = json::parse(json::string_view(body.data(), body.size()));
    const json::object& o = v.as_object();
    Asked a;
    a.n = static_cast<std::size_t>(o.at("n").as_int64());
    if (const auto* h = o.if_contains("hostnames")) {
        for (const auto& e : h->as_array()) a.hostnames.emplace_back(e.as_string());
    }
    return a;
}

void check_accepted(const ControlRequest& req, ControlRequest::Op op, std::string_view body,
                    const ReplicaSet::Snapshot& snap) {
    if (req.op != op) finding("wrong op", body);
    const Asked a = asked(body);
    if (req.hostnames.size() != a.n) finding("not exactly n hostnames", body);
    if (a.hostnames.size() > req.hostnames.size() ||
        !std::equal(a.hostnames.begin(), a.hostnames.end(), req.hostnames.begin())) {
        finding("the given hostnames do not come first", body);
    }
    std::set<std::string> registered;
    for (const auto& r : snap.registered) registered.insert(r->hostname);
    std::set<std::string> seen;
    for (const auto& h : req.hostnames) {
        if (!AdminApi::valid_hostname(h)) finding("an invalid hostname was accepted", body);
        if (!seen.insert(h).second) finding("a hostname twice", body);
        const bool present = registered.count(h) > 0;
        if (op == ControlRequest::Op::add && present) finding("/add of a present hostname", body);
        if (op == ControlRequest::Op::remove && !present) finding("/rm of an unknown hostname", body);
    }
    if (op == ControlRequest::Op::add && AdminApi::room_left(snap, a.n) < a.n) {
        finding("/add beyond the room left on the ring", body);
    }
}

void check_rejected(const ControlError& e, std::string_view body) {
    if (e.status < 400 || e.status > 499) finding("a rejection that is not a 4xx", body);
    // The answer the router sends: {"message": "<Error> ...", "status": "failure"}.
    json::error_code ec;
    const json::value v = json::parse(AdminApi::error_body(e.what()), ec);
    if (ec || !v.is_object() || v.as_object().size() != 2) finding("error body is not the SPEC's shape", body);
    const auto* message = v.as_object().if_contains("message");
    const auto* status = v.as_object().if_contains("status");
    if (!message || !message->is_string() || !message->as_string().starts_with("<Error> ") ||
        !status || *status != "failure") {
        finding("error body is not the SPEC's shape", body);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    const unsigned selector = data[0];
    const std::string_view body(reinterpret_cast<const char*>(data + 1), size - 1);
    const auto snap = replica_set(selector).snapshot();
    const auto op = (selector & 1) ? ControlRequest::Op::remove : ControlRequest::Op::add;
    try {
        std::mt19937_64 rng(size);
        const ControlRequest req = op == ControlRequest::Op::add
                                       ? AdminApi::validate_add(body, *snap)
                                       : AdminApi::validate_remove(body, *snap, rng);
        check_accepted(req, op, body, *snap);
    } catch (const ControlError& e) {
        check_rejected(e, body);
    }
    return 0;
}
