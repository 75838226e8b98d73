// The hash scheme registry: which ring type builds a scheme name, how that
// type fills in and checks RingOptions, and how it builds an empty ring.
// make_ring, resolve_ring_options and ring_scheme_names (hash_ring.hpp) all
// read this one table, so a new ring type is its own files (which define its
// entry, a static kRingType) plus one line in ring_types() (ring_registry.cpp);
// a new scheme of an existing type is one entry in that type's scheme table
// (slot_hashes(), KetamaRing::schemes()).
#pragma once

#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "ringlb/hash_ring.hpp"

namespace ringlb {

struct RingType {
    // The scheme names this type builds, in the order ring_scheme_names()
    // lists them.
    std::vector<std::string_view> (*schemes)();
    // `options` (whose scheme is one of schemes()) with every 0 replaced by
    // the type's default; throws std::invalid_argument naming the field for
    // a value the type cannot use.
    RingOptions (*resolve)(RingOptions options);
    // An empty ring for options that resolve() returned.
    std::shared_ptr<const HashRing> (*make)(const RingOptions& resolved);
};

// Every ring type, in listing order: slot rings, ketama, Maglev.
std::span<const RingType* const> ring_types() noexcept;

// The type that builds `scheme`, or nullptr when no type knows the name.
const RingType* find_ring_type(std::string_view scheme);

// For resolvers of types that have no probing: throws std::invalid_argument
// unless options.probing is linear (the default, which means "unset").
void require_linear_probing(const RingOptions& options);

}  // namespace ringlb
