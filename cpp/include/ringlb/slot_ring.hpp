// SlotRing: the assignment's ring. M slots; each replica places K virtual
// servers at Φ(i, j), probing to the next free slot on a collision; a request
// goes to the first virtual server at or clockwise after H(request id).
//
// Worked example (M = 512, K = 9, assignment scheme): Φ(1, 0) = 1 + 0 + 0 + 25
// = 26 and Φ(2, 0) = 4 + 25 = 29, so request id 3 (H = 9 + 6 + 17 = 32)
// walks clockwise from slot 32 to the next virtual server.
//
// A ring is never modified: with_member copies the slot table and places the
// new virtual servers into free slots; without_member copies it and frees one
// replica's slots. Either way no other virtual server moves, which a rebuild
// from scratch would not guarantee once probing has displaced something.
//
// Canonical placement (RingOptions::canonical, for several routers that must
// agree): every change is instead a fresh build that places the replicas in
// ascending id order, so the table depends on the member set only. A change
// may then move a few virtual servers of replicas that stay (a later joiner
// that probed past a leaver's slot moves into it); ringlb.quality measures
// how many keys that moves. Weights: none (every replica has K virtual
// servers, SPEC §2); with_member refuses a weight other than 1.
#pragma once

#include "ringlb/hash_ring.hpp"
#include "ringlb/hash_schemes.hpp"
#include "ringlb/ring_registry.hpp"

namespace ringlb {

class SlotRing final : public HashRing {
public:
    // M when RingOptions::slots is 0: the assignment's 512.
    static constexpr std::uint32_t kDefaultSlots = 512;

    // The registry entry (ring_registry.hpp): one scheme per slot_hashes()
    // entry; slots = M, virtual_nodes = K (default floor(log2 M)).
    static const RingType kRingType;

    // Precondition: options resolved by kRingType.resolve; `hash` names
    // options.scheme. max_members(): floor(M/K) (SPEC §2), 56 with the defaults.
    SlotRing(const RingOptions& options, const SlotHash& hash);

    std::size_t lookup(std::uint64_t request_id) const noexcept override;
    std::shared_ptr<const HashRing> with_member(Member member) const override;
    std::shared_ptr<const HashRing> without_member(std::uint32_t id) const override;
    std::vector<std::int32_t> slot_servers() const override;
    std::uint64_t slot_of(std::uint64_t request_id) const noexcept override;
    RingStats stats() const override;
    // False: K virtual servers per replica is what the slot ring is.
    bool weighted() const noexcept override { return false; }

private:
    // The slot table, free slots included; a walk starts at H(request id).
    std::span<const std::uint32_t> owners() const noexcept override { return owner_; }
    std::size_t walk_start(std::uint64_t request_id) const noexcept override;

    // Recomputes server_ from owner_ in two passes over the ring: O(M).
    void rebuild_servers();
    // A fresh ring of these members (members() keeps their order), their
    // virtual servers placed in ascending id order: the canonical placement.
    // Precondition: they fit (K each).
    std::shared_ptr<const HashRing> rebuilt(std::vector<Member> members) const;
    // The slot for virtual server (id, j), probing from Φ past taken slots.
    // Precondition: at least one free slot.
    std::uint32_t place(std::uint32_t id, std::uint32_t j) const noexcept;

    const SlotHash* hash_;
    std::size_t free_slots_;
    // Member indices as in owners(); slot_owners() and slot_servers()
    // hand them out as int32, where kNoOwner reads -1.
    std::vector<std::uint32_t> owner_;   // slot -> member index placed there, or kNoOwner
    std::vector<std::uint32_t> server_;  // slot -> member index serving it, or kNoOwner if empty
};

}  // namespace ringlb
