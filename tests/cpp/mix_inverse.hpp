// The inverse of ringlb::mix64, so that tests can build request ids whose
// hash lands exactly on a chosen position (a point, point + 1, 0, the top).
#pragma once

#include <cstdint>

namespace ringlb::testing {

// x with x ^ (x >> shift) == y.
constexpr std::uint64_t unxorshift(std::uint64_t y, unsigned shift) noexcept {
    std::uint64_t x = y;
    for (unsigned done = shift; done < 64; done += shift) x = y ^ (x >> shift);
    return x;
}

// The inverse of an odd number mod 2^64 (Newton's iteration doubles the
// correct low bits each step: 5 steps from 3 bits reach 64+).
constexpr std::uint64_t inverse_odd(std::uint64_t a) noexcept {
    std::uint64_t x = a;  // correct to 3 bits for odd a
    for (int i = 0; i < 5; ++i) x *= 2 - a * x;
    return x;
}

// The request id whose mix64 is `h`.
constexpr std::uint64_t unmix64(std::uint64_t h) noexcept {
    std::uint64_t x = unxorshift(h, 31);
    x *= inverse_odd(0x94d049bb133111ebULL);
    x = unxorshift(x, 27);
    x *= inverse_odd(0xbf58476d1ce4e5b9ULL);
    return unxorshift(x, 30);
}

}  // namespace ringlb::testing
