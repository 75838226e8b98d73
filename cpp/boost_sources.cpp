// Boost.JSON and Boost.URL compiled into ringlb itself, from their "src.hpp"
// builds (each library's sources in one header, for exactly one translation
// unit). The extension then links no shared Boost library, so a wheel runs
// where Boost is not installed (auditwheel: no libboost_*.so dependency).
#include <boost/json/src.hpp>
#include <boost/url/src.hpp>
