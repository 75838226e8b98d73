// HashRing: an immutable map from request ids to replicas.
//
// As in Envoy's ring-hash and Maglev balancers, a ring is built once and never
// changed: membership changes build a new ring (with_member / without_member)
// that the owner swaps in whole, so lookups are const, lock-free and safe from
// any number of threads.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace ringlb {

enum class Probing { linear, quadratic };

// What each field means depends on the scheme; 0 means "the scheme's
// default", which resolve_ring_options fills in (a built ring's options()
// always holds the resolved values). Each ring type documents its reading
// (ring_types(), ring_registry.hpp):
//   slot schemes ("assignment", "linear", "splitmix64", "xxh3"; SlotRing):
//       slots = M (default 512), virtual_nodes = K (default floor(log2 M),
//       9 for 512), probing as set. At most floor(M/K) replicas.
//   "ketama", "ketama-xxh3" (KetamaRing): virtual_nodes = points per replica
//       (default KetamaRing::kDefaultPoints); slots must stay 0 and probing
//       linear (neither applies).
//   "maglev" (MaglevRing): slots = the lookup table size M, a prime (default
//       65537); virtual_nodes must stay 0 and probing linear. At most M
//       replicas.
//
// canonical: the ring is a function of its member set alone, whatever order
// the members joined and left in (issue 15.1: several routers that never talk
// must build the same ring). Ketama and Maglev always are (their tie-breaks
// and turns go by server id), so for them it changes nothing. A slot ring
// cannot be both order-free and "a removal moves no other virtual server":
// canonical there means every change is a fresh build in ascending id order,
// which may move a few virtual servers of replicas that stay. Off (SPEC §2's
// join order) by default.
struct RingOptions {
    std::string scheme = "assignment";
    std::uint32_t slots = 0;          // 0 = the scheme's default
    std::uint32_t virtual_nodes = 0;  // 0 = the scheme's default
    Probing probing = Probing::linear;
    bool canonical = false;
};

// The largest replica weight: 256 times a weight-1 replica's share is past
// any sane mix (HAProxy allows 256 as well) and keeps a ketama replica of
// the default 2048 points within 2^19 points.
inline constexpr std::uint32_t kMaxWeight = 256;

struct Member {
    std::uint32_t id = 0;  // 1-based server id; Φ's i
    std::string hostname;
    // Its share relative to the others (1 .. kMaxWeight): ketama gives it
    // weight × points, Maglev weight turns in its population; slot rings take
    // weight 1 only (K virtual servers each is their definition, SPEC §2).
    std::uint32_t weight = 1;
};

struct RingStats {
    std::size_t occupied_slots = 0;  // slots (or points) owned by some virtual server
    std::size_t memory_bytes = 0;    // heap held by the ring's tables
};

class HashRing {
public:
    static constexpr std::size_t npos = static_cast<std::size_t>(-1);

    virtual ~HashRing() = default;

    // Index into members() of the replica that serves request_id, or npos
    // when the ring has no replicas. O(1) for slot and table rings.
    virtual std::size_t lookup(std::uint64_t request_id) const noexcept = 0;

    // How candidates() goes on after the ring's own choice.
    enum class Walk {
        // The next distinct replicas clockwise: the retry order.
        clockwise,
        // The random jump of Chen, Coleman and Shrivastava, "Revisiting
        // Consistent Hashing with Bounded Loads" (arXiv:1908.08762), as
        // Envoy's bounded loads do: the k-th further candidate is the first
        // replica clockwise of a position drawn from (request_id, k), so the
        // keys one replica serves continue on different replicas instead of
        // all on its clockwise neighbour (whose overload would cascade onto
        // its own neighbour). Deterministic per request id. After
        // jump_attempts(N) draws, the replicas no draw reached follow in
        // clockwise order, so the list is as complete as the clockwise one.
        jump,
    };

    // Fills `out` with up to out.size() distinct member indices in the order
    // the ring offers them for request_id: lookup() first, then the others
    // as `walk` says. Returns how many were written: 0 on an empty ring, at
    // most members().size(). One walk for every ring type, over the table
    // owners() hands it; no allocation.
    std::size_t candidates(std::uint64_t request_id, std::span<std::size_t> out,
                           Walk walk = Walk::clockwise) const noexcept;

    // The most draws a jump walk makes on a ring of `members` replicas:
    // enough that on equal replicas they miss a given one with probability
    // about e^-4, bounded so that the walk stays cheap.
    static constexpr std::size_t jump_attempts(std::size_t members) noexcept {
        return members <= 1 ? 0 : std::min<std::size_t>(4 * members, 256);
    }

    // A new ring with `member` added after the present ones; this ring is not
    // touched. Throws std::invalid_argument when its id or hostname is taken,
    // its id is 0 or its weight is one check_weight refuses, RingFullError
    // when there is no room for its virtual servers (nothing is placed then).
    virtual std::shared_ptr<const HashRing> with_member(Member member) const = 0;

    // A new ring without the replica `id`; every other virtual server stays
    // where it was. Throws std::invalid_argument when no replica has that id.
    virtual std::shared_ptr<const HashRing> without_member(std::uint32_t id) const = 0;

    // For each slot (or table entry) in order, the member index of the
    // virtual server placed there, or -1 when it is free. Points-based rings
    // return the owner of each point in ascending order. The owners() table
    // that candidates() walks, as int32.
    std::vector<std::int32_t> slot_owners() const;

    // For each slot, the member index that serves a request hashed there.
    // By default the owner: right for tables where every entry is served by
    // the replica placed there (points, Maglev entries); a ring with free
    // slots overrides it.
    virtual std::vector<std::int32_t> slot_servers() const { return slot_owners(); }

    // The slot a request id hashes to (the x axis of slot_owners()).
    virtual std::uint64_t slot_of(std::uint64_t request_id) const noexcept = 0;

    virtual RingStats stats() const = 0;

    // The most replicas this ring can hold (floor(M/K) for a slot ring, M for
    // Maglev, kMaxRingPoints / points for ketama's weight-1 replicas), fixed
    // by the options; with_member throws RingFullError past it.
    std::size_t max_members() const noexcept { return max_members_; }

    const std::vector<Member>& members() const noexcept { return members_; }
    const RingOptions& options() const noexcept { return options_; }

    // Throws std::invalid_argument, saying why, unless a replica of this
    // weight may join: 1 .. kMaxWeight, and 1 only where the ring type does
    // not honour weights (weighted() false). The one rule: with_member, the
    // router's /add and the bindings all ask here.
    void check_weight(std::int64_t weight) const;
    // Whether the ring gives replicas shares in proportion to their weights.
    virtual bool weighted() const noexcept { return true; }

    // Index of the member with this id, or npos.
    std::size_t index_of(std::uint32_t id) const noexcept;
    // Index of the member with this hostname, or npos.
    std::size_t index_of(std::string_view hostname) const noexcept;
    // The smallest id >= 1 that no member uses (SPEC §2).
    std::uint32_t next_free_id() const noexcept;

protected:
    // An owners() entry that no replica holds (a free slot).
    static constexpr std::uint32_t kNoOwner = static_cast<std::uint32_t>(-1);

    // What candidates() walks and slot_owners() hands out: the member index
    // at each position of the ring in clockwise order (kNoOwner where nobody
    // is placed). One lap must pass every member.
    virtual std::span<const std::uint32_t> owners() const noexcept = 0;
    // The position in owners() where request_id's walk starts: the one
    // lookup() reads. Precondition: the ring has members.
    virtual std::size_t walk_start(std::uint64_t request_id) const noexcept = 0;

    // An empty ring; `options` resolved, `max_members` what they allow.
    HashRing(const RingOptions& options, std::size_t max_members)
        : options_(options), max_members_(max_members) {}

    // Throws std::invalid_argument unless `m` could join this ring.
    void check_new_member(const Member& m) const;
    // Index of the member `id` that without_member is asked to remove;
    // throws std::invalid_argument when no replica has that id.
    std::size_t index_to_remove(std::uint32_t id) const;

    RingOptions options_;
    std::size_t max_members_;
    std::vector<Member> members_;  // in join order
};

// `options` with every 0 replaced by the scheme's default (see RingOptions).
// Throws std::invalid_argument, naming the field, for an unknown scheme or a
// value the scheme cannot use: slot schemes need slots in 1 .. 2^31-1 and
// virtual_nodes in 1 .. slots; ketama needs virtual_nodes <= 2^20 and no
// slots; Maglev needs a prime slots <= 2^24 and no virtual_nodes; probing
// other than linear applies to slot schemes only. Defined with the scheme
// registry (ring_registry.cpp).
RingOptions resolve_ring_options(const RingOptions& options);

// An empty ring for `options` (resolved first; throws as
// resolve_ring_options does).
std::shared_ptr<const HashRing> make_ring(const RingOptions& options);

// Names accepted by make_ring, in the registry's order: the slot schemes,
// then "ketama", "ketama-xxh3" and "maglev".
std::vector<std::string> ring_scheme_names();

}  // namespace ringlb
