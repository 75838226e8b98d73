#include <gtest/gtest.h>

#include <stdexcept>

#include "ringlb/hash_ring.hpp"
#include "ringlb/ketama_ring.hpp"
#include "ringlb/maglev_ring.hpp"

namespace ringlb {
namespace {

TEST(RingOptions, ZeroMeansTheSchemeDefault) {
    RingOptions o;  // the assignment, with every size left to the scheme
    EXPECT_EQ(o.slots, 0u);
    EXPECT_EQ(o.virtual_nodes, 0u);
    const RingOptions r = resolve_ring_options(o);
    EXPECT_EQ(r.slots, 512u);
    EXPECT_EQ(r.virtual_nodes, 9u);  // SPEC §2: K = log2(M)
    EXPECT_EQ(make_ring(o)->options().slots, 512u);
    EXPECT_EQ(make_ring(o)->max_members(), 56u);  // floor(512 / 9)

    o.slots = 1024;
    EXPECT_EQ(resolve_ring_options(o).virtual_nodes, 10u);
    o.slots = 1000;  // not a power of two: floor(log2)
    EXPECT_EQ(resolve_ring_options(o).virtual_nodes, 9u);
    o.slots = 1;
    EXPECT_EQ(resolve_ring_options(o).virtual_nodes, 1u);
    o.slots = 0;
    o.virtual_nodes = 4;
    EXPECT_EQ(resolve_ring_options(o).slots, 512u);
    EXPECT_EQ(make_ring(o)->max_members(), 128u);

    for (const char* name : {"linear", "splitmix64", "xxh3"}) {
        RingOptions s;
        s.scheme = name;
        EXPECT_EQ(resolve_ring_options(s).slots, 512u) << name;
        EXPECT_EQ(resolve_ring_options(s).virtual_nodes, 9u) << name;
    }
}

TEST(RingOptions, UnknownSchemeNamesTheKnownOnes) {
    RingOptions o;
    o.scheme = "md5";
    try {
        resolve_ring_options(o);
        FAIL() << "no exception";
    } catch (const std::invalid_argument& e) {
        const std::string what = e.what();
        EXPECT_NE(what.find("unknown hash scheme 'md5'"), std::string::npos) << what;
        EXPECT_NE(what.find("maglev"), std::string::npos) << what;
        EXPECT_NE(what.find("ketama"), std::string::npos) << what;
    }
}

TEST(RingOptions, SchemeNamesInOrder) {
    const std::vector<std::string> want = {"assignment", "linear",      "splitmix64", "xxh3",
                                           "ketama",     "ketama-xxh3", "maglev"};
    EXPECT_EQ(ring_scheme_names(), want);
}

}  // namespace
}  // namespace ringlb
