#include "ringlb/hash_ring.hpp"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace ringlb {

std::size_t HashRing::candidates(std::uint64_t request_id,
                                 std::span<std::size_t> out) const noexcept {
    if (out.empty() || members_.empty()) return 0;
    const OwnerTable table = owner_table(request_id);
    const std::size_t m = table.owners.size();
    const std::size_t want = std::min(out.size(), members_.size());
    std::size_t n = 0;
    std::size_t at = table.start;
    // One lap passes every member (owner_table's promise), so it finds every
    // replica; out holds a handful of entries, so a linear search for repeats
    // beats any set.
    for (std::size_t step = 0; step < m && n < want; ++step, at = (at + 1 == m ? 0 : at + 1)) {
        const std::uint32_t o = table.owners[at];
        if (o == kNoOwner) continue;
        const std::size_t idx = o;
        const auto end = out.begin() + static_cast<std::ptrdiff_t>(n);
        if (std::find(out.begin(), end, idx) == end) out[n++] = idx;
    }
    return n;
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
