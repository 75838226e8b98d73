#include "ringlb/slot_ring.hpp"

#include <algorithm>
#include <bit>
#include <numeric>
#include <stdexcept>
#include <string>

#include "ringlb/errors.hpp"

namespace ringlb {
namespace {

std::vector<std::string_view> scheme_names() {
    std::vector<std::string_view> names;
    for (const auto& h : slot_hashes()) names.push_back(h.name);
    return names;
}

RingOptions resolve_options(RingOptions o) {
    if (o.slots == 0) o.slots = SlotRing::kDefaultSlots;
    // SPEC §2: K = log2(M); floor for an M that is not a power of two.
    if (o.virtual_nodes == 0) {
        o.virtual_nodes = std::max<std::uint32_t>(1, std::bit_width(o.slots) - 1);
    }
    // 2^31 - 1 keeps member indices and slot numbers inside int32 tables and
    // every (x mod M)^2 product inside 64 bits.
    if (o.slots > 0x7fffffffU) {
        throw std::invalid_argument("slots must be between 1 and 2147483647");
    }
    if (o.virtual_nodes > o.slots) {
        throw std::invalid_argument("virtual_nodes must be between 1 and slots");
    }
    return o;
}

std::shared_ptr<const HashRing> make_empty(const RingOptions& resolved) {
    return std::make_shared<SlotRing>(resolved, *find_slot_hash(resolved.scheme));
}

}  // namespace

constinit const RingType SlotRing::kRingType = {scheme_names, resolve_options, make_empty};

SlotRing::SlotRing(const RingOptions& options, const SlotHash& hash)
    : HashRing(options, options.slots / options.virtual_nodes),
      hash_(&hash),
      free_slots_(options_.slots),
      owner_(options_.slots, kNoOwner),
      server_(options_.slots, kNoOwner) {}

std::uint64_t SlotRing::slot_of(std::uint64_t request_id) const noexcept {
    return hash_->request_slot(request_id, options_.slots);
}

std::size_t SlotRing::lookup(std::uint64_t request_id) const noexcept {
    const std::uint32_t s = server_[slot_of(request_id)];
    return s == kNoOwner ? npos : s;
}

std::size_t SlotRing::walk_start(std::uint64_t request_id) const noexcept {
    return slot_of(request_id);
}

std::uint32_t SlotRing::place(std::uint32_t id, std::uint32_t j) const noexcept {
    const std::uint64_t m = options_.slots;
    const std::uint64_t home = hash_->virtual_slot(id, j, m);
    if (options_.probing == Probing::quadratic) {
        // home + t^2 need not visit every slot (it reaches about half of them
        // for prime M), so after M tries we fall back to a linear scan.
        for (std::uint64_t t = 0; t < m; ++t) {
            const std::uint64_t s = (home + (t % m) * (t % m) % m) % m;
            if (owner_[s] == kNoOwner) return static_cast<std::uint32_t>(s);
        }
    }
    for (std::uint64_t t = 0; t < m; ++t) {
        const std::uint64_t s = (home + t) % m;
        if (owner_[s] == kNoOwner) return static_cast<std::uint32_t>(s);
    }
    return 0;  // unreachable: the caller checked that a free slot exists
}

std::shared_ptr<const HashRing> SlotRing::with_member(Member member) const {
    check_new_member(member);
    if (free_slots_ < options_.virtual_nodes) {
        throw RingFullError("the ring is full: " + std::to_string(free_slots_) +
                            " free slots, a replica needs " +
                            std::to_string(options_.virtual_nodes));
    }
    if (options_.canonical) {
        auto members = members_;
        members.push_back(std::move(member));
        return rebuilt(std::move(members));
    }
    auto next = std::make_shared<SlotRing>(*this);
    const auto idx = static_cast<std::uint32_t>(next->members_.size());
    for (std::uint32_t j = 0; j < options_.virtual_nodes; ++j) {
        next->owner_[next->place(member.id, j)] = idx;
    }
    next->free_slots_ -= options_.virtual_nodes;
    next->members_.push_back(std::move(member));
    next->rebuild_servers();
    return next;
}

std::shared_ptr<const HashRing> SlotRing::without_member(std::uint32_t id) const {
    const std::size_t gone = index_to_remove(id);
    if (options_.canonical) {
        auto members = members_;
        members.erase(members.begin() + static_cast<std::ptrdiff_t>(gone));
        return rebuilt(std::move(members));
    }
    auto next = std::make_shared<SlotRing>(*this);
    const auto g = static_cast<std::uint32_t>(gone);
    for (auto& o : next->owner_) {
        if (o == kNoOwner) continue;  // (above every index: not to be shifted)
        if (o == g) {
            o = kNoOwner;
            ++next->free_slots_;
        } else if (o > g) {
            --o;  // member indices above the removed one shift down
        }
    }
    next->members_.erase(next->members_.begin() + static_cast<std::ptrdiff_t>(gone));
    next->rebuild_servers();
    return next;
}

std::shared_ptr<const HashRing> SlotRing::rebuilt(std::vector<Member> members) const {
    auto next = std::make_shared<SlotRing>(options_, *hash_);
    std::vector<std::uint32_t> order(members.size());
    std::iota(order.begin(), order.end(), 0U);
    std::sort(order.begin(), order.end(),
              [&members](std::uint32_t a, std::uint32_t b) { return members[a].id < members[b].id; });
    for (const std::uint32_t idx : order) {
        for (std::uint32_t j = 0; j < options_.virtual_nodes; ++j) {
            next->owner_[next->place(members[idx].id, j)] = idx;
        }
    }
    next->free_slots_ -= members.size() * options_.virtual_nodes;
    next->members_ = std::move(members);
    next->rebuild_servers();
    return next;
}

void SlotRing::rebuild_servers() {
    const std::size_t m = owner_.size();
    // The owner of the first occupied slot at or after s; the first pass
    // finds the wrap-around owner (the first one on the ring).
    std::uint32_t current = kNoOwner;
    for (std::size_t s = 0; s < m; ++s) {
        if (owner_[s] != kNoOwner) {
            current = owner_[s];
            break;
        }
    }
    for (std::size_t s = m; s-- > 0;) {
        if (owner_[s] != kNoOwner) current = owner_[s];
        server_[s] = current;
    }
}

std::vector<std::int32_t> SlotRing::slot_servers() const { return {server_.begin(), server_.end()}; }

RingStats SlotRing::stats() const {
    return {owner_.size() - free_slots_,
            (owner_.capacity() + server_.capacity()) * sizeof(std::uint32_t) +
                members_.capacity() * sizeof(Member)};
}

}  // namespace ringlb
