// ns per HashRing::lookup, measured in C++: the floor under every routed request.
// Usage: ringlb-bench-ring SCHEME N [LOOKUPS]; prints "ns_per_lookup <value>".
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
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
    for (int i = 1; i <= n; ++i) ring = ring->with_member({static_cast<std::uint32_t>(i), "S" + std::to_string(i)});

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
    std::printf("ns_per_lookup %.3f\nchecksum %zu\n", ns, sink);
    return 0;
}
