#include "ringlb/slot_ring.hpp"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "ringlb/errors.hpp"

namespace ringlb {

SlotRing::SlotRing(RingOptions options, const SlotHash& hash)
    : HashRing(std::move(options), {}),
      hash_(&hash),
      free_slots_(options_.slots),
      owner_(options_.slots, kFree),
      server_(options_.slots, kFree) {}

std::uint64_t SlotRing::slot_of(std::uint64_t request_id) const noexcept {
    return hash_->request_slot(request_id, options_.slots);
}

std::size_t SlotRing::lookup(std::uint64_t request_id) const noexcept {
    const std::int32_t s = server_[slot_of(request_id)];
    return s == kFree ? npos : static_cast<std::size_t>(s);
}

std::size_t SlotRing::candidates(std::uint64_t request_id,
                                 std::span<std::size_t> out) const noexcept {
    if (out.empty() || members_.empty()) return 0;
    const std::size_t want = std::min(out.size(), members_.size());
    const std::size_t m = owner_.size();
    std::size_t n = 0;
    std::size_t slot = slot_of(request_id);
    // One lap visits every virtual server, so it finds every replica.
    for (std::size_t step = 0; step < m && n < want; ++step, slot = (slot + 1 == m ? 0 : slot + 1)) {
        const std::int32_t o = owner_[slot];
        if (o == kFree) continue;
        const auto idx = static_cast<std::size_t>(o);
        if (std::find(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(n), idx) ==
            out.begin() + static_cast<std::ptrdiff_t>(n)) {
            out[n++] = idx;
        }
    }
    return n;
}

std::uint32_t SlotRing::place(std::uint32_t id, std::uint32_t j) const noexcept {
    const std::uint64_t m = options_.slots;
    const std::uint64_t home = hash_->virtual_slot(id, j, m);
    if (options_.probing == Probing::quadratic) {
        // home + t^2 need not visit every slot (it reaches about half of them
        // for prime M), so after M tries we fall back to a linear scan.
        for (std::uint64_t t = 0; t < m; ++t) {
            const std::uint64_t s = (home + (t % m) * (t % m) % m) % m;
            if (owner_[s] == kFree) return static_cast<std::uint32_t>(s);
        }
    }
    for (std::uint64_t t = 0; t < m; ++t) {
        const std::uint64_t s = (home + t) % m;
        if (owner_[s] == kFree) return static_cast<std::uint32_t>(s);
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
    auto next = std::make_shared<SlotRing>(*this);
    const auto idx = static_cast<std::int32_t>(next->members_.size());
    for (std::uint32_t j = 0; j < options_.virtual_nodes; ++j) {
        next->owner_[next->place(member.id, j)] = idx;
    }
    next->free_slots_ -= options_.virtual_nodes;
    next->members_.push_back(std::move(member));
    next->rebuild_servers();
    return next;
}

std::shared_ptr<const HashRing> SlotRing::without_member(std::uint32_t id) const {
    const std::size_t gone = index_of(id);
    if (gone == npos) {
        throw std::invalid_argument("no replica with server id " + std::to_string(id));
    }
    auto next = std::make_shared<SlotRing>(*this);
    const auto g = static_cast<std::int32_t>(gone);
    for (auto& o : next->owner_) {
        if (o == g) {
            o = kFree;
            ++next->free_slots_;
        } else if (o > g) {
            --o;  // member indices above the removed one shift down
        }
    }
    next->members_.erase(next->members_.begin() + static_cast<std::ptrdiff_t>(gone));
    next->rebuild_servers();
    return next;
}

void SlotRing::rebuild_servers() {
    const std::size_t m = owner_.size();
    // The owner of the first occupied slot at or after s; the first pass
    // finds the wrap-around owner (the first one on the ring).
    std::int32_t current = kFree;
    for (std::size_t s = 0; s < m; ++s) {
        if (owner_[s] != kFree) {
            current = owner_[s];
            break;
        }
    }
    for (std::size_t s = m; s-- > 0;) {
        if (owner_[s] != kFree) current = owner_[s];
        server_[s] = current;
    }
}

std::vector<std::int32_t> SlotRing::slot_owners() const { return owner_; }

std::vector<std::int32_t> SlotRing::slot_servers() const { return server_; }

RingStats SlotRing::stats() const {
    return {owner_.size() - free_slots_,
            (owner_.capacity() + server_.capacity()) * sizeof(std::int32_t) +
                members_.capacity() * sizeof(Member)};
}

std::size_t SlotRing::max_members() const noexcept {
    return options_.slots / options_.virtual_nodes;
}

}  // namespace ringlb
