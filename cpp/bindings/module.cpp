#include "bindings.hpp"

PYBIND11_MODULE(_core, m) {
    m.doc() = "ringlb's C++ core: the hash ring, the router and the heartbeat engine.";
    m.attr("__version__") = RINGLB_VERSION;
    ringlb::bindings::bind_errors(m);
    ringlb::bindings::bind_ring(m);
    ringlb::bindings::bind_router(m);
    ringlb::bindings::bind_heartbeat(m);
}
