// AdminApi: validation of the admin endpoints' request bodies and the JSON the
// router answers with (SPEC §3). Pure functions of (body, replica snapshot):
// no I/O, so that every error in the SPEC's list is unit-tested in C++.
//
//   POST /add   {"n": 4, "hostnames": ["S5", "S4"]}  -> add S5, S4 and 2 generated names
//   POST /add   {"n": 2, "weights": [2, 1]}          -> two replicas, the first of weight 2
//               ("addresses": ["HOST:PORT", ...] too, for servers ringlb does not start)
//   DELETE /rm  {"n": 3, "hostnames": ["S5"]}        -> remove S5 and 2 picked at random
//
// Validation is complete before anything changes: a request either yields the
// exact ControlRequest for the control plane or a ControlError, never both.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <random>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>

#include "ringlb/replica_set.hpp"
#include "ringlb/router.hpp"

namespace ringlb {

// How many replicas may be registered after a change (RouterConfig::
// min_replicas / max_replicas, resolved by the router). No bounds by default.
struct ReplicaLimits {
    std::size_t min = 0;
    std::size_t max = SIZE_MAX;
};

class AdminApi {
public:
    // At most this many replicas per /add or /rm call: a guard against a huge
    // n turning one request into a long loop.
    static constexpr std::int64_t max_change = 1000;

    // Validates an /add body against the replicas registered in `snap`.
    // Hostnames beyond the given ones are <prefix><k> with the smallest unused
    // k (Snapshot::fresh_names). Throws ControlError(400, ...) for any bad input
    // (see the file comment). At most limits.max replicas afterwards (and so
    // at most that many per call).
    static ControlRequest validate_add(std::string_view body, const ReplicaSet::Snapshot& snap,
                                       const ReplicaLimits& limits = {},
                                       std::string_view prefix = "Server");

    // Validates an /rm body; the n - len(hostnames) extra replicas are drawn
    // uniformly from the other registered ones with `rng`. Throws ControlError.
    // At least limits.min replicas stay registered.
    static ControlRequest validate_remove(std::string_view body, const ReplicaSet::Snapshot& snap,
                                          std::mt19937_64& rng, const ReplicaLimits& limits = {});

    // May this request change the membership? `authorization` is the request's
    // Authorization field ("" when absent); `loopback` tells whether the
    // listener it came in on is bound to a loopback address. With a token, only
    // "Bearer <token>" passes (401 otherwise); without one, only a loopback
    // listener does (403 elsewhere: an open /rm on a public port lets anyone
    // take every replica down). Returns the refusal, or nothing.
    static std::optional<ControlError> authorize(std::string_view token,
                                               std::string_view authorization, bool loopback);

    // How many more replicas fit on the ring of `snap`, counting up to `limit`:
    // registered replicas that are off the ring (down, waiting for a
    // replacement) keep their room. The new ones would take the smallest free
    // ids; the k-th has weights[k] (1 past the end of `weights`).
    static std::size_t room_left(const ReplicaSet::Snapshot& snap, std::size_t limit,
                                 std::span<const std::uint32_t> weights = {});

    // SPEC §3 hostname rule, as error messages and Python (ringlb._core) show it.
    static constexpr std::string_view hostname_pattern = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$";
    // True when `name` matches hostname_pattern (the one implementation of it).
    static bool valid_hostname(std::string_view name) noexcept;

    // {"message": {"N": <registered>, "replicas": [...]}, "status": "successful"}
    static std::string rep_body(const ReplicaSet::Snapshot& snap);
    // {"message": "<Error> <message>", "status": "failure"}; bytes of
    // `message` that are not well-formed UTF-8 become U+FFFD, so the body is
    // JSON whatever the message quotes.
    static std::string error_body(std::string_view message);
    // {"message": message, "status": "successful"}.
    static std::string success_body(std::string_view message);
};

}  // namespace ringlb
