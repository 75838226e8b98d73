#include "ringlb/hash_ring.hpp"

#include <algorithm>
#include <stdexcept>

#include "ringlb/hash_schemes.hpp"
#include "ringlb/slot_ring.hpp"

namespace ringlb {

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

void HashRing::check_new_member(const Member& m) const {
    if (m.id == 0) throw std::invalid_argument("server id must be >= 1");
    if (m.hostname.empty()) throw std::invalid_argument("hostname must not be empty");
    if (index_of(m.id) != npos) {
        throw std::invalid_argument("server id " + std::to_string(m.id) + " is already on the ring");
    }
    if (index_of(m.hostname) != npos) {
        throw std::invalid_argument("hostname '" + m.hostname + "' is already on the ring");
    }
}

std::shared_ptr<const HashRing> make_ring(const RingOptions& options) {
    // 2^31 - 1 keeps member indices and slot numbers inside int32 tables and
    // every (x mod M)^2 product inside 64 bits.
    if (options.slots < 1 || options.slots > 0x7fffffffU) {
        throw std::invalid_argument("slots must be between 1 and 2147483647");
    }
    if (options.virtual_nodes < 1 || options.virtual_nodes > options.slots) {
        throw std::invalid_argument("virtual_nodes must be between 1 and slots");
    }
    if (const SlotHash* h = find_slot_hash(options.scheme)) {
        return std::make_shared<SlotRing>(options, *h);
    }
    std::string known;
    for (const auto& n : ring_scheme_names()) known += (known.empty() ? "" : ", ") + n;
    throw std::invalid_argument("unknown hash scheme '" + options.scheme + "' (known: " + known + ")");
}

std::vector<std::string> ring_scheme_names() {
    std::vector<std::string> names;
    for (const auto& s : slot_hashes()) names.emplace_back(s.name);
    return names;
}

}  // namespace ringlb
