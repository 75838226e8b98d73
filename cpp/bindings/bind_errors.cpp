#include "bindings.hpp"
#include "ringlb/errors.hpp"

namespace py = pybind11;

namespace ringlb::bindings {

void bind_errors(py::module_& m) {
    // pybind11 tries translators newest first, so the root goes in before its subclasses.
    auto base = py::register_exception<Error>(m, "RinglbError", PyExc_RuntimeError);
    base.doc() = "The root of the errors ringlb raises on purpose.";
    auto full = py::register_exception<RingFullError>(m, "RingFullError", base);
    full.doc() = "The ring has no room for another replica; nothing was changed.";
    auto empty = py::register_exception<RingEmptyError>(m, "RingEmptyError", base);
    empty.doc() = "A lookup on a ring that has no replicas.";
}

}  // namespace ringlb::bindings
