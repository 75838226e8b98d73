#include "ringlb/ketama_ring.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <stdexcept>
#include <string>

#include "ringlb/errors.hpp"
#include "ringlb/hash_schemes.hpp"
#include "ringlb/ring_registry.hpp"

namespace ringlb {
namespace {

// splitmix64's increment (the golden ratio in 64 bits).
constexpr std::uint64_t kGamma = 0x9e3779b97f4a7c15ULL;

std::uint64_t mix_key(std::uint64_t request_id) noexcept { return mix64(request_id); }

// Point j of server i is output j of the splitmix64 generator seeded with
// mix64(i): distinct servers get unrelated streams, and the stream never
// depends on who else is on the ring.
std::uint64_t mix_point(std::uint32_t server_id, std::uint32_t j) noexcept {
    return mix64(mix64(server_id) + (static_cast<std::uint64_t>(j) + 1) * kGamma);
}

std::uint64_t xxh3_key(std::uint64_t request_id) noexcept { return xxh3_u64(request_id); }

std::uint64_t xxh3_point(std::uint32_t server_id, std::uint32_t j) noexcept {
    return xxh3_u64_pair(server_id, j);
}

constexpr std::array<KetamaRing::Scheme, 2> kSchemes = {{
    {"ketama", mix_key, mix_point},
    {"ketama-xxh3", xxh3_key, xxh3_point},
}};

}  // namespace

namespace {

std::vector<std::string_view> scheme_names() {
    std::vector<std::string_view> names;
    for (const auto& s : kSchemes) names.push_back(s.name);
    return names;
}

RingOptions resolve_options(RingOptions o) {
    if (o.slots != 0) {
        throw std::invalid_argument(
            "slots does not apply to '" + o.scheme +
            "' (a 64-bit circle); leave it unset (0 or None) and set virtual_nodes, the points per replica");
    }
    require_linear_probing(o);
    if (o.virtual_nodes == 0) o.virtual_nodes = KetamaRing::kDefaultPoints;
    if (o.virtual_nodes > KetamaRing::kMaxPoints) {
        throw std::invalid_argument("virtual_nodes (points per replica) must be between 1 and " +
                                    std::to_string(KetamaRing::kMaxPoints) + " for '" + o.scheme +
                                    "'");
    }
    return o;
}

std::shared_ptr<const HashRing> make_empty(const RingOptions& resolved) {
    return std::make_shared<KetamaRing>(resolved, *KetamaRing::find_scheme(resolved.scheme));
}

}  // namespace

constinit const RingType KetamaRing::kRingType = {scheme_names, resolve_options, make_empty};

const KetamaRing::Scheme* KetamaRing::find_scheme(std::string_view name) noexcept {
    for (const auto& s : kSchemes) {
        if (s.name == name) return &s;
    }
    return nullptr;
}

std::span<const KetamaRing::Scheme> KetamaRing::schemes() noexcept { return kSchemes; }

KetamaRing::KetamaRing(const RingOptions& options, const Scheme& scheme)
    : HashRing(options, kMaxRingPoints / options.virtual_nodes), scheme_(&scheme) {}

std::uint64_t KetamaRing::slot_of(std::uint64_t request_id) const noexcept {
    return scheme_->key(request_id);
}

std::size_t KetamaRing::rank(std::uint64_t position) const noexcept {
    const std::uint64_t b = position >> shift_;
    // Every point of bucket b lies in [lo, buckets_[b + 1]) and every later
    // one is above `position`, as are the kSentinel pads past the end; so
    // counting the points below `position` among the next window_ (the
    // fullest bucket's size) gives the successor's index with no branch.
    const std::uint64_t* p = points_.data() + buckets_[b];
    std::size_t below = 0;
    for (std::uint32_t k = 0; k < window_; ++k) below += p[k] < position ? 1 : 0;
    return buckets_[b] + below;
}

std::size_t KetamaRing::successor(std::uint64_t position) const noexcept {
    const std::size_t i = rank(position);
    return i == size_ ? 0 : i;
}

std::size_t KetamaRing::lookup(std::uint64_t request_id) const noexcept {
    if (size_ == 0) return npos;
    // owners_[size_] repeats owners_[0]: the wrap past the top needs no branch.
    return owners_[rank(slot_of(request_id))];
}

std::span<const std::uint32_t> KetamaRing::owners() const noexcept {
    return {owners_.data(), size_};
}

std::size_t KetamaRing::walk_start(std::uint64_t request_id) const noexcept {
    return successor(slot_of(request_id));
}

bool KetamaRing::point_less(const Point& a, const Point& b) const noexcept {
    if (a.first != b.first) return a.first < b.first;
    return members_[a.second].id < members_[b.second].id;
}

void KetamaRing::assign(const std::vector<Point>& pts) {
    size_ = pts.size();
    points_.clear();
    owners_.clear();
    points_.reserve(size_ + kMaxWindow);
    owners_.reserve(size_ + 1);
    for (const auto& [pos, owner] : pts) {
        points_.push_back(pos);
        owners_.push_back(owner);
    }
    if (size_ > 0) owners_.push_back(owners_.front());
    // About one point per bucket: the table costs ≈ 4 bytes per point and
    // the fullest bucket stays small (≈ 8 of 10^5 for Poisson(1) counts).
    const unsigned bits = std::clamp(static_cast<unsigned>(std::bit_width(size_)), 1U, 24U);
    shift_ = 64 - bits;
    const std::size_t nb = std::size_t{1} << bits;
    buckets_.assign(nb + 1, 0);
    std::size_t i = 0;
    window_ = 0;
    for (std::size_t b = 0; b < nb; ++b) {
        const std::uint64_t start = static_cast<std::uint64_t>(b) << shift_;
        while (i < size_ && points_[i] < start) ++i;
        buckets_[b] = static_cast<std::uint32_t>(i);
        if (b > 0) {
            window_ = std::max<std::uint32_t>(window_, buckets_[b] - buckets_[b - 1]);
        }
    }
    buckets_[nb] = static_cast<std::uint32_t>(size_);
    window_ = std::max<std::uint32_t>(window_, buckets_[nb] - buckets_[nb - 1]);
    points_.resize(size_ + window_, kSentinel);
}

std::shared_ptr<const HashRing> KetamaRing::with_member(Member member) const {
    check_new_member(member);
    const std::size_t per = std::size_t{options_.virtual_nodes} * member.weight;
    if (size_ + per > kMaxRingPoints) {
        throw RingFullError("the ring is full: " + std::to_string(size_) + " points and " +
                            std::to_string(per) + " more for a replica of weight " +
                            std::to_string(member.weight) + " pass the limit of " +
                            std::to_string(kMaxRingPoints) + " points");
    }
    auto next = std::make_shared<KetamaRing>(options_, *scheme_);
    next->members_ = members_;
    next->members_.push_back(std::move(member));
    std::vector<Point> pts;
    pts.reserve(size_ + per);
    for (std::size_t k = 0; k < size_; ++k) pts.emplace_back(points_[k], owners_[k]);
    const auto idx = static_cast<std::uint32_t>(members_.size());
    const std::uint32_t id = next->members_.back().id;
    for (std::size_t j = 0; j < per; ++j) {
        pts.emplace_back(scheme_->point(id, static_cast<std::uint32_t>(j)), idx);
    }
    // The present points are sorted already: sort the new ones and merge, O(P).
    const auto less = [&next](const Point& a, const Point& b) { return next->point_less(a, b); };
    const auto mid = pts.begin() + static_cast<std::ptrdiff_t>(size_);
    std::sort(mid, pts.end(), less);
    std::inplace_merge(pts.begin(), mid, pts.end(), less);
    next->assign(pts);
    return next;
}

std::shared_ptr<const HashRing> KetamaRing::without_member(std::uint32_t id) const {
    const std::size_t gone = index_to_remove(id);
    auto next = std::make_shared<KetamaRing>(options_, *scheme_);
    next->members_ = members_;
    next->members_.erase(next->members_.begin() + static_cast<std::ptrdiff_t>(gone));
    std::vector<Point> pts;
    pts.reserve(size_);
    for (std::size_t k = 0; k < size_; ++k) {
        const std::uint32_t o = owners_[k];
        if (o == gone) continue;
        // Member indices above the removed one shift down.
        pts.emplace_back(points_[k], o > gone ? o - 1 : o);
    }
    // Removing points keeps the rest in order.
    next->assign(pts);
    return next;
}

RingStats KetamaRing::stats() const {
    return {size_,
            points_.capacity() * sizeof(std::uint64_t) +
                (owners_.capacity() + buckets_.capacity()) * sizeof(std::uint32_t) +
                members_.capacity() * sizeof(Member)};
}

}  // namespace ringlb
