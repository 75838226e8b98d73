#include "ringlb/hash_ring.hpp"

#include <algorithm>
#include <bit>
#include <stdexcept>

#include "ringlb/hash_schemes.hpp"
#include "ringlb/ketama_ring.hpp"
#include "ringlb/maglev_ring.hpp"
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

namespace {

constexpr std::uint32_t kDefaultSlots = 512;

[[noreturn]] void unknown_scheme(const std::string& scheme) {
    std::string known;
    for (const auto& n : ring_scheme_names()) known += (known.empty() ? "" : ", ") + n;
    throw std::invalid_argument("unknown hash scheme '" + scheme + "' (known: " + known + ")");
}

void require_linear_probing(const RingOptions& o) {
    if (o.probing != Probing::linear) {
        throw std::invalid_argument("probing applies to slot schemes only, not to '" + o.scheme +
                                    "'");
    }
}

}  // namespace

RingOptions resolve_ring_options(const RingOptions& options) {
    RingOptions o = options;
    if (find_slot_hash(o.scheme) != nullptr) {
        if (o.slots == 0) o.slots = kDefaultSlots;
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
    if (KetamaRing::find_scheme(o.scheme) != nullptr) {
        if (o.slots != 0) {
            throw std::invalid_argument(
                "slots does not apply to '" + o.scheme +
                "' (a 64-bit circle); leave it unset (0 or None) and set virtual_nodes, the points per replica");
        }
        require_linear_probing(o);
        if (o.virtual_nodes == 0) o.virtual_nodes = KetamaRing::kDefaultPoints;
        if (o.virtual_nodes > KetamaRing::kMaxPoints) {
            throw std::invalid_argument("virtual_nodes (points per replica) must be between 1 and " +
                                        std::to_string(KetamaRing::kMaxPoints) + " for '" +
                                        o.scheme + "'");
        }
        return o;
    }
    if (o.scheme == MaglevRing::kSchemeName) {
        if (o.virtual_nodes != 0) {
            throw std::invalid_argument(
                "virtual_nodes does not apply to 'maglev'; leave it unset (0 or None) and set slots, the table size");
        }
        require_linear_probing(o);
        if (o.slots == 0) o.slots = MaglevRing::kDefaultTableSize;
        if (o.slots > MaglevRing::kMaxTableSize || !MaglevRing::is_prime(o.slots)) {
            throw std::invalid_argument(
                "slots (the Maglev table size) must be a prime no larger than " +
                std::to_string(MaglevRing::kMaxTableSize) + ", got " + std::to_string(o.slots) +
                " (65537 is the usual choice)");
        }
        return o;
    }
    unknown_scheme(o.scheme);
}

std::shared_ptr<const HashRing> make_ring(const RingOptions& options) {
    const RingOptions o = resolve_ring_options(options);
    if (const SlotHash* h = find_slot_hash(o.scheme)) return std::make_shared<SlotRing>(o, *h);
    if (const auto* k = KetamaRing::find_scheme(o.scheme)) {
        return std::make_shared<KetamaRing>(o, *k);
    }
    return std::make_shared<MaglevRing>(o);
}

std::vector<std::string> ring_scheme_names() {
    std::vector<std::string> names;
    for (const auto& s : slot_hashes()) names.emplace_back(s.name);
    for (const auto& s : KetamaRing::schemes()) names.emplace_back(s.name);
    names.emplace_back(MaglevRing::kSchemeName);
    return names;
}

}  // namespace ringlb
