#include "ringlb/hash_ring.hpp"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "ringlb/hash_schemes.hpp"

namespace ringlb {

namespace {

// Appends `idx` to out[0..n) unless it is there already; returns the new n.
// out holds a handful of entries, so a linear search for repeats beats any set.
std::size_t append_distinct(std::span<std::size_t> out, std::size_t n, std::size_t idx) noexcept {
    const auto end = out.begin() + static_cast<std::ptrdiff_t>(n);
    if (std::find(out.begin(), end, idx) == end) out[n++] = idx;
    return n;
}

}  // namespace

std::size_t HashRing::candidates(std::uint64_t request_id, std::span<std::size_t> out,
                                 Walk walk) const noexcept {
    if (out.empty() || members_.empty()) return 0;
    const std::span<const std::uint32_t> table = owners();
    const std::size_t start = walk_start(request_id);
    const std::size_t m = table.size();
    const std::size_t want = std::min(out.size(), members_.size());
    const auto next = [m](std::size_t at) { return at + 1 == m ? 0 : at + 1; };
    // The first owner at or clockwise of `at`. One lap passes every member
    // (owners()' promise), so there is one.
    const auto owner_from = [&](std::size_t at) {
        for (std::size_t step = 0; step < m; ++step, at = next(at)) {
            if (table[at] != kNoOwner) return std::size_t{table[at]};
        }
        return npos;
    };
    std::size_t n = 0;
    if (walk == Walk::jump) {
        out[n++] = owner_from(start);  // the ring's own choice
        // Draw k: a position from (request_id, k), mixed so that keys next to
        // each other on the ring draw independent positions.
        const std::uint64_t seed = mix64(request_id ^ 0x9e3779b97f4a7c15ULL);
        // Draws depend on the ring, not on out.size(): a shorter buffer gets
        // the same order cut short.
        const std::size_t attempts = jump_attempts(members_.size());
        for (std::size_t k = 1; k <= attempts && n < want; ++k) {
            const std::uint64_t h = mix64(seed + k * 0xd1b54a32d192ed03ULL);
            const std::size_t idx = owner_from(static_cast<std::size_t>(reduce_range(h, m)));
            n = append_distinct(out, n, idx);
        }
    }
    // Clockwise from the start: the whole order, or what the draws missed.
    std::size_t at = start;
    for (std::size_t step = 0; step < m && n < want; ++step, at = next(at)) {
        const std::uint32_t o = table[at];
        if (o != kNoOwner) n = append_distinct(out, n, o);
    }
    return n;
}

std::vector<std::int32_t> HashRing::slot_owners() const {
    // kNoOwner converts to -1 (modulo 2^32), the "free" of slot_owners().
    const std::span<const std::uint32_t> o = owners();
    return {o.begin(), o.end()};
}

std::size_t HashRing::index_of(std::uint32_t id) const noexcept {
    for (std::size_t i = 0; i < members_.size(); ++i) {
        if (members_[i].id == id) return i;
    }
    return npos;
}

std::size_t HashRing::index_of(std::string_view hostname) const noexcept {
    for (std::size_t i = 0; i < members_.size(); ++i) {
        if (members_[i].hostname == hostname) return i;
    }
    return npos;
}

std::uint32_t HashRing::next_free_id() const noexcept {
    std::vector<std::uint32_t> ids;
    ids.reserve(members_.size());
    for (const auto& m : members_) ids.push_back(m.id);
    std::sort(ids.begin(), ids.end());
    std::uint32_t want = 1;
    for (auto id : ids) {
        if (id == want) ++want;
        else if (id > want) break;
    }
    return want;
}

void HashRing::check_weight(std::int64_t weight) const {
    if (weight < 1 || weight > kMaxWeight) {
        throw std::invalid_argument("weight must be between 1 and " + std::to_string(kMaxWeight) +
                                    ", got " + std::to_string(weight));
    }
    if (weight != 1 && !weighted()) {
        throw std::invalid_argument(
            "hash scheme '" + options_.scheme + "' does not take weights (each replica has K "
            "virtual servers); use ketama, ketama-xxh3 or maglev for weighted replicas");
    }
}

void HashRing::check_new_member(const Member& m) const {
    if (m.id == 0) throw std::invalid_argument("server id must be >= 1");
    check_weight(m.weight);
    if (m.hostname.empty()) throw std::invalid_argument("hostname must not be empty");
    if (index_of(m.id) != npos) {
        throw std::invalid_argument("server id " + std::to_string(m.id) + " is already on the ring");
    }
    if (index_of(m.hostname) != npos) {
        throw std::invalid_argument("hostname '" + m.hostname + "' is already on the ring");
    }
}

std::size_t HashRing::index_to_remove(std::uint32_t id) const {
    const std::size_t i = index_of(id);
    if (i == npos) throw std::invalid_argument("no replica with server id " + std::to_string(id));
    return i;
}

}  // namespace ringlb
