#include "ringlb/ring_share.hpp"

#include <cstdint>

namespace ringlb {
namespace {

// SplitMix64 (Steele, Lea, Flood 2014): a fixed, well-spread sequence of
// 64-bit ids, so that a share computed twice is the same number.
std::uint64_t splitmix64(std::uint64_t& state) noexcept {
    std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

}  // namespace

std::vector<double> key_space_shares(const HashRing& ring, IdSpace space) {
    const std::size_t n = ring.members().size();
    if (n == 0) return {};
    std::vector<std::uint64_t> hits(n, 0);
    std::uint64_t total = 0;
    const auto count = [&](std::uint64_t id) {
        const std::size_t m = ring.lookup(id);
        if (m < n) ++hits[m];
        ++total;
    };
    if (space == IdSpace::six_digit) {
        for (std::uint64_t id = 100000; id <= 999999; ++id) count(id);
    } else {
        std::uint64_t state = 0;
        for (std::size_t i = 0; i < (std::size_t{1} << 18); ++i) count(splitmix64(state));
    }
    std::vector<double> shares(n);
    for (std::size_t m = 0; m < n; ++m) {
        shares[m] = static_cast<double>(hits[m]) / static_cast<double>(total);
    }
    return shares;
}

}  // namespace ringlb
