#include "ringlb/hash_schemes.hpp"

// Inlined from the header rather than called in libxxhash: for the 8- and
// 16-byte inputs hashed per lookup, the call cost ≈ 10 ns more than the hash.
#define XXH_INLINE_ALL
#include <xxhash.h>

#include <charconv>

namespace ringlb {
namespace {

// Reducing i (and j) mod M first keeps every sum below 2^64 for any id
// (SPEC §2: no overflow): make_ring caps M at 2^31 - 1, so r < 2^31 and
// r^2 + r^2 + 2r + 25 < 2^63. (i mod M)^2 = i^2 (mod M), so the result is
// the spec's formula exactly.

// The assignment: H(i) = i^2 + 2i + 17 (mod M).
std::uint64_t assignment_request(std::uint64_t i, std::uint64_t m) noexcept {
    const std::uint64_t r = i % m;
    return (r * r + 2 * r + 17) % m;
}

// The assignment: Φ(i, j) = i^2 + j^2 + 2j + 25 (mod M).
std::uint64_t assignment_virtual(std::uint64_t i, std::uint64_t j, std::uint64_t m) noexcept {
    const std::uint64_t ri = i % m;
    const std::uint64_t rj = j % m;
    return (ri * ri + rj * rj + 2 * rj + 25) % m;
}

// The reading with the squares dropped: H(i) = 3i + 17, Φ(i, j) = i + 3j + 25.
std::uint64_t linear_request(std::uint64_t i, std::uint64_t m) noexcept {
    return (3 * (i % m) + 17) % m;
}

std::uint64_t linear_virtual(std::uint64_t i, std::uint64_t j, std::uint64_t m) noexcept {
    return (i % m + 3 * (j % m) + 25) % m;
}

// Well-mixed variants on the same slot ring: every input bit reaches the slot.
std::uint64_t splitmix_request(std::uint64_t i, std::uint64_t m) noexcept { return mix64(i) % m; }

std::uint64_t splitmix_virtual(std::uint64_t i, std::uint64_t j, std::uint64_t m) noexcept {
    // A distinct odd multiplier separates (i, j) pairs before the mixer.
    return mix64(mix64(i) ^ (j * 0x9e3779b97f4a7c15ULL + 0x632be59bd9b4e019ULL)) % m;
}

std::uint64_t xxh3_request(std::uint64_t i, std::uint64_t m) noexcept {
    return XXH3_64bits(&i, sizeof i) % m;
}

std::uint64_t xxh3_virtual(std::uint64_t i, std::uint64_t j, std::uint64_t m) noexcept {
    const std::uint64_t pair[2] = {i, j};
    return XXH3_64bits(pair, sizeof pair) % m;
}

}  // namespace

const std::vector<SlotHash>& slot_hashes() noexcept {
    // The formulas are at each function above.
    static const std::vector<SlotHash> schemes = {
        {"assignment", assignment_request, assignment_virtual},
        {"linear", linear_request, linear_virtual},
        {"splitmix64", splitmix_request, splitmix_virtual},
        {"xxh3", xxh3_request, xxh3_virtual},
    };
    return schemes;
}

const SlotHash* find_slot_hash(std::string_view name) noexcept {
    for (const auto& s : slot_hashes()) {
        if (s.name == name) return &s;
    }
    return nullptr;
}

std::uint64_t hash_bytes(std::string_view bytes) noexcept {
    return XXH3_64bits(bytes.data(), bytes.size());
}

std::uint64_t xxh3_u64(std::uint64_t x) noexcept { return XXH3_64bits(&x, sizeof x); }

std::uint64_t xxh3_u64_pair(std::uint64_t a, std::uint64_t b) noexcept {
    const std::uint64_t pair[2] = {a, b};
    return XXH3_64bits(pair, sizeof pair);
}

std::uint64_t key_to_request_id(std::string_view key) noexcept {
    std::uint64_t value = 0;
    const char* first = key.data();
    const char* last = key.data() + key.size();
    // from_chars accepts no sign and no whitespace, so "+5" and " 5" are hashed.
    if (!key.empty()) {
        auto [ptr, ec] = std::from_chars(first, last, value, 10);
        if (ec == std::errc() && ptr == last) return value;
    }
    return hash_bytes(key);
}

}  // namespace ringlb
