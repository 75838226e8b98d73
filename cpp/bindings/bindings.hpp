// One function per bound C++ class; module.cpp calls them in order. Only the
// files in cpp/bindings/ include pybind11 (DESIGN.md style rule 2).
#pragma once

#include <pybind11/pybind11.h>

namespace ringlb::bindings {

void bind_errors(pybind11::module_& m);
void bind_ring(pybind11::module_& m);
// ringlb.Router, held by std::shared_ptr<ringlb::Router>; also defines ringlb.ControlError.
void bind_router(pybind11::module_& m);
// ringlb.HeartbeatEngine, on a ringlb.Router's event loop (after bind_router).
void bind_heartbeat(pybind11::module_& m);

}  // namespace ringlb::bindings
