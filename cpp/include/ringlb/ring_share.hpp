// The fraction of the request-id space each member of a ring serves: the
// number experiment A-1 is about (with the assignment's ring, Server1 serves
// 84 % of the 6-digit ids), exported as ringlb_ring_share and in /status.
#pragma once

#include <vector>

#include "ringlb/hash_ring.hpp"

namespace ringlb {

// Which ids the router's key source makes (KeySource): the random source
// draws the 900,000 six-digit ids 100000..999999, every other source hashes
// its key to a 64-bit id.
enum class IdSpace { six_digit, hashed64 };

// Per member index of `ring` (parallel to ring.members()), the share of the
// id space it serves; the shares sum to 1 (an empty ring: an empty vector).
// six_digit counts every id exactly; hashed64 counts a fixed sample of 2^18
// well-spread 64-bit ids (a share within about ±0.003 of the true one).
// Costs up to 900,000 lookups: call it once per ring, not per request.
std::vector<double> key_space_shares(const HashRing& ring, IdSpace space);

}  // namespace ringlb
