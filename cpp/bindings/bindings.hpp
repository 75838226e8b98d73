// One function per bound C++ class; module.cpp calls them in order. Only the
// files in cpp/bindings/ include pybind11 (DESIGN.md style rule 2).
#pragma once

#include <pybind11/pybind11.h>

#include <cstdint>
#include <optional>
#include <string>

#include "ringlb/errors.hpp"
#include "ringlb/hash_ring.hpp"

namespace ringlb::bindings {

// A lookup on a ring with no replicas (ringlb.RingEmptyError). Only the
// binding raises it: the core's lookups answer HashRing::npos, which the
// router turns into a 503, while Ring.lookup and Router.lookup in Python
// have a hostname to return or this to raise.
struct RingEmptyError : Error {
    using Error::Error;
};

// Ring options from Python arguments, shared by Ring and Router: None sizes
// mean the scheme's default (RingOptions' 0). Throws std::invalid_argument for
// sizes out of range or an unknown probing; make_ring judges the rest.
RingOptions ring_options_arg(std::optional<std::int64_t> slots,
                             std::optional<std::int64_t> virtual_nodes, const std::string& scheme,
                             const std::string& probing, bool canonical);

// A replica weight from Python, as `ring` would take it (HashRing::check_weight
// throws std::invalid_argument otherwise).
std::uint32_t weight_arg(const HashRing& ring, std::int64_t weight);

void bind_errors(pybind11::module_& m);
void bind_ring(pybind11::module_& m);
// ringlb.Router, held by std::shared_ptr<ringlb::Router>; also defines ringlb.ControlError.
void bind_router(pybind11::module_& m);
// ringlb.HeartbeatEngine, on a ringlb.Router's event loop (after bind_router).
void bind_heartbeat(pybind11::module_& m);

}  // namespace ringlb::bindings
