// ns per HashRing::lookup, measured in C++: the floor under every routed request;
// then ns per HashRing::candidates for 3 replicas (the retry order a router
// computes when it may retry), since both sit on the request path.
// Usage: ringlb-bench-ring SCHEME N [LOOKUPS]; prints "ns_per_lookup <value>",
// then "ns_per_candidates3 <value>" (bench/ring.py reads the first line).
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <array>
#include <string>
#include <vector>

#include "ringlb/hash_ring.hpp"

int main(int argc, char** argv) {
    if (argc < 3) {
        std::fprintf(stderr, "usage: %s SCHEME N [LOOKUPS]\n", argv[0]);
        return 2;
    }
    ringlb::RingOptions options;
    options.scheme = argv[1];
    const int n = std::atoi(argv[2]);
    const std::size_t lookups = argc > 3 ? std::strtoull(argv[3], nullptr, 10) : 20'000'000;
    auto ring = ringlb::make_ring(options);
    // append, not "S" + to_string: GCC 12 at -O3 flags the latter with a
    // false -Wrestrict, which -DRINGLB_WERROR=ON turns into an error.
    for (int i = 1; i <= n; ++i) {
        ring = ring->with_member({static_cast<std::uint32_t>(i), std::string("S").append(std::to_string(i))});
    }

    // Keys drawn up front so that the timed loop is lookups only; 1 Mi keys
    // cycle through the cache like a real request stream would.
    std::mt19937_64 rng(42);
    std::uniform_int_distribution<std::uint64_t> six_digits(100000, 999999);
    std::vector<std::uint64_t> keys(1 << 20);
    for (auto& k : keys) k = six_digits(rng);

    std::size_t sink = 0;
    const auto t0 = std::chrono::steady_clock::now();
    for (std::size_t i = 0; i < lookups; ++i) sink += ring->lookup(keys[i & (keys.size() - 1)]);
    const auto t1 = std::chrono::steady_clock::now();
    const double ns = std::chrono::duration<double, std::nano>(t1 - t0).count() / static_cast<double>(lookups);
    // candidates() is slower per call; a tenth as many calls keeps the run short.
    const std::size_t walks = lookups / 10;
    std::array<std::size_t, 3> out{};
    const auto t2 = std::chrono::steady_clock::now();
    for (std::size_t i = 0; i < walks; ++i) {
        sink += ring->candidates(keys[i & (keys.size() - 1)], out) + out[0];
    }
    const auto t3 = std::chrono::steady_clock::now();
    const double cns = std::chrono::duration<double, std::nano>(t3 - t2).count() /
                       static_cast<double>(walks == 0 ? 1 : walks);
    std::printf("ns_per_lookup %.3f\nns_per_candidates3 %.3f\nchecksum %zu\n", ns, cns, sink);
    return 0;
}
