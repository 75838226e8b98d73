#include "ringlb/ring_registry.hpp"

#include <algorithm>
#include <array>
#include <stdexcept>
#include <string>

#include "ringlb/ketama_ring.hpp"
#include "ringlb/maglev_ring.hpp"
#include "ringlb/slot_ring.hpp"

namespace ringlb {
namespace {

// The one list of ring types; its order is the order of ring_scheme_names().
// Each type's entry is defined with the type (kRingType).
constexpr std::array<const RingType*, 3> kRingTypes = {
    &SlotRing::kRingType,
    &KetamaRing::kRingType,
    &MaglevRing::kRingType,
};

[[noreturn]] void unknown_scheme(const std::string& scheme) {
    std::string known;
    for (const auto& n : ring_scheme_names()) known += (known.empty() ? "" : ", ") + n;
    throw std::invalid_argument("unknown hash scheme '" + scheme + "' (known: " + known + ")");
}

}  // namespace

std::span<const RingType* const> ring_types() noexcept { return kRingTypes; }

const RingType* find_ring_type(std::string_view scheme) {
    for (const RingType* type : kRingTypes) {
        const auto names = type->schemes();
        if (std::find(names.begin(), names.end(), scheme) != names.end()) return type;
    }
    return nullptr;
}

void require_linear_probing(const RingOptions& options) {
    if (options.probing != Probing::linear) {
        throw std::invalid_argument("probing applies to slot schemes only, not to '" +
                                    options.scheme + "'");
    }
}

RingOptions resolve_ring_options(const RingOptions& options) {
    const RingType* type = find_ring_type(options.scheme);
    if (type == nullptr) unknown_scheme(options.scheme);
    return type->resolve(options);
}

std::shared_ptr<const HashRing> make_ring(const RingOptions& options) {
    const RingType* type = find_ring_type(options.scheme);
    if (type == nullptr) unknown_scheme(options.scheme);
    return type->make(type->resolve(options));
}

std::vector<std::string> ring_scheme_names() {
    std::vector<std::string> names;
    for (const RingType* type : kRingTypes) {
        for (const auto name : type->schemes()) names.emplace_back(name);
    }
    return names;
}

}  // namespace ringlb
