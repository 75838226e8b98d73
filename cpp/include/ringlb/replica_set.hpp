// ReplicaSet: who the replicas are, where they listen, which of them serve,
// and the ring built from the serving ones.
//
// Readers (routing threads) call snapshot() and get an immutable Snapshot
// that stays valid for as long as they hold it; writers serialize on a mutex,
// build the next Snapshot, and publish it by swapping one pointer. A reader
// never waits for a membership change to be built and never sees half of one.
// Hot paths compare version() (one atomic load) with the version of the
// snapshot they cached and call snapshot() only when it changed.
//
// The pointer swap is guarded by its own mutex rather than
// std::atomic<std::shared_ptr>: libstdc++ 12 implements the latter with a
// lock bit that ThreadSanitizer cannot see, and the cost is paid only when
// the version moved.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ringlb/hash_ring.hpp"

namespace ringlb {

struct Replica {
    std::uint32_t id = 0;
    std::string hostname;
    // The IPv4/IPv6 literal the router connects to; "" while `name` has no
    // address yet (the replica is then off the ring: "resolving").
    std::string host;
    std::uint16_t port = 0;
    std::uint32_t weight = 1;  // its ring weight (Member::weight): kept while it is off the ring
    // The DNS name it was given instead of an address, which the router's
    // NameResolver turns into `host` (and again when it goes down, and every
    // resolve interval); "" when it was given an address.
    std::string name = {};
};

// Membership changes since the set was made, by kind; carried from snapshot
// to snapshot (ringlb_membership_changes_total).
struct MembershipChanges {
    std::uint64_t added = 0;    // registered (add)
    std::uint64_t removed = 0;  // unregistered (remove)
    std::uint64_t down = 0;     // taken off the ring, still registered (set_serving false)
    std::uint64_t up = 0;       // put back on the ring (set_serving true)
    std::uint64_t moved = 0;    // now listening elsewhere: a replacement (set_endpoint), a new address (set_address)

    // (kind, count) for each field, in the order above: the names /metrics
    // (its "kind" label) and /status ("membership_changes") give them.
    std::array<std::pair<std::string_view, std::uint64_t>, 5> by_kind() const noexcept {
        return {{{"added", added}, {"removed", removed}, {"down", down}, {"up", up},
                 {"moved", moved}}};
    }
};

class ReplicaSet {
public:
    struct Snapshot {
        std::shared_ptr<const HashRing> ring;
        // Parallel to ring->members(): the replica behind each member index.
        std::vector<std::shared_ptr<const Replica>> serving;
        // Every registered replica, serving or not, in registration order.
        std::vector<std::shared_ptr<const Replica>> registered;
        std::uint64_t version = 0;
        MembershipChanges changes;  // up to and including the one that made this snapshot

        // SPEC §2: a new replica takes the smallest unused id. The n smallest
        // ids no registered replica uses, ascending. (The one owner of that
        // rule: the router's /add, ReplicaSet::add and the launcher use it.)
        std::vector<std::uint32_t> free_ids(std::size_t n) const;
        // n names <prefix><k>, with the smallest k whose name no registered
        // replica has and that is not in `taken`: the names /add and the
        // launcher give replicas nobody named.
        std::vector<std::string> fresh_names(std::size_t n, std::string_view prefix,
                                             const std::vector<std::string>& taken = {}) const;
    };

    // Throws std::invalid_argument for bad ring options (see make_ring).
    explicit ReplicaSet(const RingOptions& options);

    // The current snapshot; never null. Safe from any thread.
    std::shared_ptr<const Snapshot> snapshot() const noexcept {
        std::lock_guard lock(current_mutex_);
        return current_;
    }
    // Bumped on every published change; a cheap way to notice one.
    std::uint64_t version() const noexcept { return version_.load(std::memory_order_acquire); }

    // Registers the replicas and puts them on the ring, all or none: throws
    // std::invalid_argument (bad or duplicate id, hostname, host or port, a
    // weight the ring refuses: HashRing::check_weight) or
    // RingFullError and then changes nothing. An id of 0 means "the smallest
    // free id". A host that is a DNS name (valid_host) becomes the replica's
    // `name`: it is registered without an address and off the ring until
    // set_address gives it one. Returns the replicas as registered (ids filled in).
    std::vector<Replica> add(std::vector<Replica> replicas);

    // Unregisters the replicas with these ids, all or none: throws
    // std::invalid_argument when one is unknown.
    void remove(const std::vector<std::uint32_t>& ids);

    // Takes a registered replica off the ring (serving = false) or puts it
    // back (true); it stays registered either way. Returns false when the id
    // is unknown, the replica was already in that state, or it has no address
    // to serve at yet.
    bool set_serving(std::uint32_t id, bool serving);

    // Changes where a registered replica listens (a replacement on a new
    // port). A DNS name other than its current one leaves it without an
    // address, off the ring, until set_address. Returns false when the id is unknown.
    bool set_endpoint(std::uint32_t id, const std::string& host, std::uint16_t port);

    // The NameResolver's answer: replica `id`, if it still has DNS name
    // `name`, is at `address` (an IP literal) now. Its first address puts it
    // on the ring (as add() does a replica given an address); a new one
    // moves it. Returns false when nothing changed.
    bool set_address(std::uint32_t id, const std::string& name, const std::string& address);

    // An IP literal, or a DNS name (letters, digits, '-', '_' and '.', at
    // most 253 characters; no leading '-' or '.').
    static bool valid_host(const std::string& host) noexcept;
    static bool is_address(const std::string& host) noexcept;

    std::optional<Replica> find(std::uint32_t id) const;
    std::optional<Replica> find(const std::string& hostname) const;
    // The smallest id that no registered replica uses.
    std::uint32_t next_free_id() const;

    // The ring options with the scheme defaults filled in (resolve_ring_options).
    const RingOptions& options() const noexcept { return options_; }

private:
    // Precondition: mutex_ held. Publishes a snapshot built from ring/registered
    // with `changes` (the previous snapshot's, counted up by the caller).
    void publish(std::shared_ptr<const HashRing> ring,
                 std::vector<std::shared_ptr<const Replica>> registered,
                 const MembershipChanges& changes);

    RingOptions options_;
    mutable std::mutex mutex_;          // serializes writers
    mutable std::mutex current_mutex_;  // guards current_ only, held for a pointer copy
    std::shared_ptr<const Snapshot> current_;
    std::atomic<std::uint64_t> version_{0};
};

}  // namespace ringlb
