// MaglevRing: Maglev hashing (Eisenbud et al., "Maglev: A Fast and Reliable
// Software Network Load Balancer", NSDI 2016, §3.4).
//
// A lookup table of M entries (M prime) maps a request's hash to a replica in
// O(1). Each replica i has a permutation of 0 .. M-1,
//     permutation_i[j] = (offset_i + j × skip_i) mod M,
//     offset_i = h1(i) mod M,  skip_i = h2(i) mod (M − 1) + 1,
// which visits every entry because M is prime and 1 ≤ skip_i < M. Replicas
// take turns (in ascending server id, so the table is a function of the member
// set) claiming the next entry of their permutation that is still free, until
// the table is full. Every replica therefore owns floor(M/N) or ceil(M/N)
// entries: near-perfect balance, M ≥ 100 N recommended by the paper.
//
// The price is disruption: unlike a ring, a membership change can hand a few
// entries from one staying replica to another (the paper, §3.4, accepts this
// in exchange for balance and measures it in §5.3). With M = 65537,
// bench/quality.py sees 0.01–0.2 % of keys move between staying replicas on
// one join or leave at N = 2 … 6 and 0.5 % at N = 50; the tests hold ≤ 2 %.
//
// Worked example (M = 7, invented hashes): replica A with offset 3, skip 4
// prefers 3, 0, 4, 1, 5, 2, 6; B with offset 0, skip 2 prefers 0, 2, 4, 6,
// 1, 3, 5. Turns: A takes 3, B takes 0, A (0 taken) takes 4, B takes 2,
// A takes 1, B (4 taken) takes 6, A takes 5: table = B A B A A A B.
//
// Weights (Envoy's weighted Maglev): with W the largest weight, a replica of
// weight w takes its turn in round r (r = 1, 2, …) only while it has claimed
// no more than r·w / W entries, so it ends with about M·w / Σ weights of
// them; the heaviest takes every turn, and everyone claims one in round 1.
// With equal weights every replica takes every turn: the paper's loop.
//
// Retries (candidates): the owner of the request's entry, then the owners of
// the following entries, skipping repeats: a pseudo-random but deterministic
// order over the other replicas.
//
// h1, h2: splitmix64 of the server id with two different offsets; the
// request's entry is reduce_range(mix64(request id), M).
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "ringlb/hash_ring.hpp"
#include "ringlb/ring_registry.hpp"

namespace ringlb {

class MaglevRing final : public HashRing {
public:
    static constexpr std::string_view kSchemeName = "maglev";
    // RingOptions::slots (the table size M) when it is 0: the paper's 65537.
    static constexpr std::uint32_t kDefaultTableSize = 65537;
    // The largest table allowed: 2^24 entries (64 MB), far past any need.
    static constexpr std::uint32_t kMaxTableSize = 1U << 24;

    // True when n is prime (n < 2^32), by trial division.
    static bool is_prime(std::uint32_t n) noexcept;

    // The registry entry (ring_registry.hpp): the one scheme "maglev";
    // slots = the table size M, virtual_nodes unused.
    static const RingType kRingType;

    // Precondition: options resolved by kRingType.resolve (slots = M, a prime
    // in 2 .. kMaxTableSize). max_members(): M, as every replica needs at
    // least one entry.
    explicit MaglevRing(const RingOptions& options);

    std::size_t lookup(std::uint64_t request_id) const noexcept override;
    // Throws RingFullError when the ring already has M replicas.
    std::shared_ptr<const HashRing> with_member(Member member) const override;
    std::shared_ptr<const HashRing> without_member(std::uint32_t id) const override;
    // The table entry of a request: 0 .. M-1. slot_owners() is the lookup
    // table: the member index of every entry (all -1 when empty); also
    // slot_servers(), as each entry serves the requests hashed to it.
    std::uint64_t slot_of(std::uint64_t request_id) const noexcept override;
    RingStats stats() const override;

private:
    // The lookup table; a walk starts at the request's entry (retries, see
    // above).
    std::span<const std::uint32_t> owners() const noexcept override { return table_; }
    std::size_t walk_start(std::uint64_t request_id) const noexcept override;
    // Fills table_ from members_ (Maglev's population loop). O(M log M)
    // expected; every entry kNoOwner when there are no members.
    void populate();

    std::vector<std::uint32_t> table_;  // entry -> member index; kNoOwner when no members
};

}  // namespace ringlb
