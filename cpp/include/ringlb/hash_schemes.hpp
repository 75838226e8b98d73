// Hash functions for the slot ring: H maps a request id to a slot, Φ maps a
// virtual server (server id i, replica j) to a slot. Looked up by name so that
// `ringlb serve --hash NAME` and Python pick them without recompiling.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

namespace ringlb {

// A pair of slot functions. Both must return a value < slots for every input
// (slots >= 1): the ring indexes its table with the result unchecked.
struct SlotHash {
    std::string_view name;
    std::uint64_t (*request_slot)(std::uint64_t request_id, std::uint64_t slots) noexcept;
    std::uint64_t (*virtual_slot)(std::uint64_t server_id, std::uint64_t j,
                                  std::uint64_t slots) noexcept;
};

// The scheme called `name`, or nullptr when there is none.
const SlotHash* find_slot_hash(std::string_view name) noexcept;

// Every slot scheme, in a stable order (the assignment's first).
const std::vector<SlotHash>& slot_hashes() noexcept;

// splitmix64's finalizer (Steele, Lea, Flood 2014): a bijection on 64-bit
// integers whose output bits each depend on every input bit.
constexpr std::uint64_t mix64(std::uint64_t x) noexcept {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

// SPEC §3: a key that is a decimal integer below 2^64 is the request id
// itself; anything else (including the empty key) is hashed with XXH3-64.
std::uint64_t key_to_request_id(std::string_view key) noexcept;

// XXH3-64 of arbitrary bytes; the one place the core calls into libxxhash.
std::uint64_t hash_bytes(std::string_view bytes) noexcept;

// XXH3-64 of one 64-bit integer, and of a pair (a, b), in native byte order:
// the same values the "xxh3" slot scheme reduces mod M.
std::uint64_t xxh3_u64(std::uint64_t x) noexcept;
std::uint64_t xxh3_u64_pair(std::uint64_t a, std::uint64_t b) noexcept;

// Maps a well-mixed 64-bit hash uniformly onto 0 .. n-1 without a division
// (Lemire, "Fast Random Integer Generation in an Interval", 2019): the high
// half of h × n. Uses the hash's high bits, so h must be mixed throughout.
constexpr std::uint64_t reduce_range(std::uint64_t h, std::uint64_t n) noexcept {
    return static_cast<std::uint64_t>((static_cast<unsigned __int128>(h) * n) >> 64);
}

}  // namespace ringlb
