// The exception types the core throws on purpose; the Python binding maps each
// to a class in ringlb.exceptions. Bad arguments use std::invalid_argument
// (ValueError in Python). An empty ring is no error in the core (lookup
// answers HashRing::npos); the binding's RingEmptyError (bindings.hpp) is
// where Python callers see one.
#pragma once

#include <stdexcept>

namespace ringlb {

// The root of the errors ringlb raises on purpose (RinglbError in Python).
struct Error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// The ring has fewer free slots than a new replica needs; nothing was changed.
struct RingFullError : Error {
    using Error::Error;
};

}  // namespace ringlb
