// KetamaRing: consistent hashing on a 64-bit circle (Karger et al., STOC 1997),
// laid out as libketama and Envoy's ring hash do: every replica puts
// `points` pseudo-random points on the circle; a request hashes to a 64-bit
// position and is served by the first point at or after it, wrapping past the
// top to the first point.
//
// Point positions depend only on (server id, j), j = 0 .. points-1, never on
// the other members, so adding a replica only moves keys onto it and
// removing one only moves its own keys (Karger's monotonicity): no key ever
// moves between replicas that stay.
//
// Weights (as Envoy's ring hash and nginx's ketama): a replica of weight w
// places w × `points` points, j = 0 .. w·points − 1, so its expected share is
// w / Σ weights; its weight-1 points are among them, so raising a weight only
// moves keys onto that replica.
//
// Balance: a replica's share of the circle is a sum of `points` arcs, so its
// relative spread is about 1/sqrt(points). The default, 2048 points, was
// chosen from bench/quality.py (README) and a simulation of random points:
// expected max/mean 1.02 at N = 3, 1.03 at N = 6 and 1.05 at N = 50 (measured
// with ids 1..N and 10^6 keys: 1.018–1.024 and 1.050), against 1.06, 1.10 and
// 1.19 at libketama's 160 points; 4096 points would gain only ≈ 1 % more but
// push a 50-replica lookup past 30 ns. At 2048 a lookup costs ≈ 10 ns for
// N ≤ 6 and ≈ 25 ns at N = 50, whose 100 k points take 1.7 MB.
//
// Lookup: the points are a sorted array of 64-bit positions; a table of
// ≈ one bucket per point, indexed by the position's top bits, gives the first
// point of the request's bucket, and a branch-free count over the next few
// points (as many as the fullest bucket holds, ≈ 8) finds the successor.
// That is O(1) per lookup with no data-dependent branch; a first version that
// binary-searched inside the bucket measured 2–3× slower (mispredictions).
//
// Worked example ("ketama", 1 point per replica, for readability): say
// replica 1's point is at 0x4000… and replica 2's at 0xC000…; a request whose
// key hashes to 0x8000… goes to replica 2, one at 0xC000… exactly goes to
// replica 2, 0xC000…01 and 0xF000… wrap to replica 1.
//
// Schemes (by name): "ketama" mixes with splitmix64 (key: mix64(request id);
// point j of server i: the splitmix64 stream seeded with mix64(i)), and
// "ketama-xxh3" hashes with XXH3-64 (key: XXH3(request id); point:
// XXH3(i, j)).
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include "ringlb/hash_ring.hpp"
#include "ringlb/ring_registry.hpp"

namespace ringlb {

class KetamaRing final : public HashRing {
public:
    // Points per replica when RingOptions::virtual_nodes is 0.
    static constexpr std::uint32_t kDefaultPoints = 2048;
    // Bounds on points per replica, and on points in one ring (so that point
    // indices fit in 32 bits and a ring stays below ≈ 1 GB).
    static constexpr std::uint32_t kMaxPoints = 1U << 20;
    static constexpr std::size_t kMaxRingPoints = std::size_t{1} << 26;

    // How one scheme hashes request ids and places points.
    struct Scheme {
        std::string_view name;
        std::uint64_t (*key)(std::uint64_t request_id) noexcept;
        std::uint64_t (*point)(std::uint32_t server_id, std::uint32_t j) noexcept;
    };

    // The ketama scheme called `name`, or nullptr.
    static const Scheme* find_scheme(std::string_view name) noexcept;
    // Every ketama scheme, in a stable order.
    static std::span<const Scheme> schemes() noexcept;

    // The registry entry (ring_registry.hpp): one scheme per schemes()
    // entry; virtual_nodes = points per replica, slots unused.
    static const RingType kRingType;

    // Precondition: options resolved by kRingType.resolve (virtual_nodes =
    // points per replica, 1 .. kMaxPoints); `scheme` names options.scheme.
    // max_members(): kMaxRingPoints / points per replica (replicas of weight 1).
    KetamaRing(const RingOptions& options, const Scheme& scheme);

    std::size_t lookup(std::uint64_t request_id) const noexcept override;
    std::shared_ptr<const HashRing> with_member(Member member) const override;
    std::shared_ptr<const HashRing> without_member(std::uint32_t id) const override;
    // The request's 64-bit position on the circle. slot_owners() is the
    // owner of each point, in ascending order of position; also what
    // slot_servers() returns, since a request hashed exactly onto a point is
    // served by that point's owner.
    std::uint64_t slot_of(std::uint64_t request_id) const noexcept override;
    RingStats stats() const override;

    // The sorted point positions (parallel to slot_owners()), for tests.
    std::span<const std::uint64_t> points() const noexcept { return {points_.data(), size_}; }

private:
    using Point = std::pair<std::uint64_t, std::uint32_t>;  // position, member index
    // Pads points_ past the last point: above every position, so never counted.
    static constexpr std::uint64_t kSentinel = ~std::uint64_t{0};
    // Room reserved for the pads; the fullest bucket is far smaller.
    static constexpr std::size_t kMaxWindow = 64;

    // Index of the first point at or after `position`; size_ when there is
    // none (the caller wraps to 0). Precondition: size_ > 0.
    std::size_t rank(std::uint64_t position) const noexcept;
    // rank() wrapped: always a valid point index. Precondition: size_ > 0.
    std::size_t successor(std::uint64_t position) const noexcept;
    // The points' owners in ascending order; a walk starts at the request's
    // successor.
    std::span<const std::uint32_t> owners() const noexcept override;
    std::size_t walk_start(std::uint64_t request_id) const noexcept override;
    // Sort order of points: by position, ties by server id, so the order is
    // a function of the member set.
    bool point_less(const Point& a, const Point& b) const noexcept;
    // Takes sorted points into points_/owners_ and rebuilds the bucket table.
    void assign(const std::vector<Point>& pts);

    const Scheme* scheme_;
    std::size_t size_ = 0;                // points on the ring
    std::vector<std::uint64_t> points_;   // sorted positions, then window_ kSentinel pads
    std::vector<std::uint32_t> owners_;   // member index of each point, then owners_[0] again
    std::vector<std::uint32_t> buckets_;  // first point >= b << shift_, then size_
    unsigned shift_ = 63;
    std::uint32_t window_ = 0;            // points in the fullest bucket
};

}  // namespace ringlb
