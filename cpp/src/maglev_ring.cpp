#include "ringlb/maglev_ring.hpp"

#include <algorithm>
#include <numeric>
#include <stdexcept>
#include <string>

#include "ringlb/errors.hpp"
#include "ringlb/hash_schemes.hpp"
#include "ringlb/ring_registry.hpp"

namespace ringlb {
namespace {

// Two unrelated hashes of a server id (the paper hashes the backend name; the
// id is as stable here: a replacement keeps it). The offsets exceed 2^32, so
// h1 of one id never equals h2 of another.
constexpr std::uint64_t kOffsetSeed = 0x6a09e667f3bcc909ULL;
constexpr std::uint64_t kSkipSeed = 0xbb67ae8584caa73bULL;

std::uint64_t h1(std::uint32_t id) noexcept { return mix64(id + kOffsetSeed); }
std::uint64_t h2(std::uint32_t id) noexcept { return mix64(id + kSkipSeed); }

}  // namespace

bool MaglevRing::is_prime(std::uint32_t n) noexcept {
    if (n < 2) return false;
    if (n % 2 == 0) return n == 2;
    for (std::uint64_t d = 3; d * d <= n; d += 2) {
        if (n % d == 0) return false;
    }
    return true;
}

namespace {

std::vector<std::string_view> scheme_names() { return {MaglevRing::kSchemeName}; }

RingOptions resolve_options(RingOptions o) {
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

std::shared_ptr<const HashRing> make_empty(const RingOptions& resolved) {
    return std::make_shared<MaglevRing>(resolved);
}

}  // namespace

constinit const RingType MaglevRing::kRingType = {scheme_names, resolve_options, make_empty};

MaglevRing::MaglevRing(const RingOptions& options)
    : HashRing(options, options.slots), table_(options.slots, kNoOwner) {}

std::uint64_t MaglevRing::slot_of(std::uint64_t request_id) const noexcept {
    return reduce_range(mix64(request_id), options_.slots);
}

std::size_t MaglevRing::lookup(std::uint64_t request_id) const noexcept {
    const std::uint32_t s = table_[slot_of(request_id)];
    return s == kNoOwner ? npos : s;
}

std::size_t MaglevRing::walk_start(std::uint64_t request_id) const noexcept {
    // Every replica owns at least one entry, so one lap finds them all.
    return slot_of(request_id);
}

void MaglevRing::populate() {
    const std::uint64_t m = options_.slots;
    table_.assign(m, kNoOwner);
    const std::size_t n = members_.size();
    if (n == 0) return;

    // Turns go by ascending server id, so the table depends on the member
    // set only, not on the join order.
    std::vector<std::uint32_t> order(n);
    std::iota(order.begin(), order.end(), 0U);
    std::sort(order.begin(), order.end(),
              [this](std::uint32_t a, std::uint32_t b) { return members_[a].id < members_[b].id; });
    std::vector<std::uint64_t> pos(n), skip(n), weight(n), claimed(n, 0);
    std::uint64_t heaviest = 1;
    for (std::size_t k = 0; k < n; ++k) {
        const Member& mb = members_[order[k]];
        pos[k] = h1(mb.id) % m;
        skip[k] = m == 1 ? 1 : h2(mb.id) % (m - 1) + 1;
        weight[k] = mb.weight;
        heaviest = std::max(heaviest, weight[k]);
    }
    // The paper's population loop, walking each permutation by adding skip
    // (mod M, by one conditional subtraction since skip < M) instead of
    // computing offset + j × skip. A replica's permutation visits every
    // entry, so each turn ends on a free one while any is left. In round r a
    // replica takes its turn while claimed × W <= r × w (Envoy's rule, in
    // integers): the heaviest one every round, so every round fills some.
    const auto step = [m](std::uint64_t c, std::uint64_t s) {
        c += s;
        return c >= m ? c - m : c;
    };
    std::uint64_t filled = 0;
    for (std::uint64_t round = 1;; ++round) {
        for (std::size_t k = 0; k < n; ++k) {
            if (round * weight[k] < claimed[k] * heaviest) continue;
            std::uint64_t c = pos[k];
            while (table_[c] != kNoOwner) c = step(c, skip[k]);
            table_[c] = order[k];
            pos[k] = step(c, skip[k]);
            ++claimed[k];
            if (++filled == m) return;
        }
    }
}

std::shared_ptr<const HashRing> MaglevRing::with_member(Member member) const {
    check_new_member(member);
    if (members_.size() >= options_.slots) {
        throw RingFullError("the ring is full: a Maglev table of " +
                            std::to_string(options_.slots) + " entries holds at most " +
                            std::to_string(options_.slots) + " replicas");
    }
    auto next = std::make_shared<MaglevRing>(options_);
    next->members_ = members_;
    next->members_.push_back(std::move(member));
    next->populate();
    return next;
}

std::shared_ptr<const HashRing> MaglevRing::without_member(std::uint32_t id) const {
    const std::size_t gone = index_to_remove(id);
    auto next = std::make_shared<MaglevRing>(options_);
    next->members_ = members_;
    next->members_.erase(next->members_.begin() + static_cast<std::ptrdiff_t>(gone));
    next->populate();
    return next;
}

RingStats MaglevRing::stats() const {
    return {members_.empty() ? 0 : table_.size(),
            table_.capacity() * sizeof(std::uint32_t) + members_.capacity() * sizeof(Member)};
}

}  // namespace ringlb
