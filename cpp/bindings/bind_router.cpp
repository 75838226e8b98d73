// ringlb.Router: the C++ router with a Python control plane.
//
// The class is bound with a std::shared_ptr<Router> holder so that other
// bindings (the heartbeat engine) can take and keep a std::shared_ptr<Router>.
// Its deleter releases the GIL while the router stops: a control handler may
// be waiting for the GIL on the control worker, and stop() joins that worker.
#include <pybind11/eval.h>
#include <pybind11/functional.h>
#include <pybind11/stl.h>
#include <pybind11/typing.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cmath>
#include <optional>
#include <string>
#include <system_error>
#include <unordered_map>
#include <variant>

#include "bindings.hpp"
#include "ringlb/admin_api.hpp"
#include "ringlb/errors.hpp"
#include "ringlb/event_log.hpp"
#include "ringlb/router.hpp"

namespace py = pybind11;

namespace ringlb::bindings {
namespace {

using IdOrName = std::variant<std::int64_t, std::string>;
using Record = py::typing::Dict<py::str, py::object>;
using Records = py::typing::List<Record>;
using PyHandler = py::typing::Callable<void(py::str, py::typing::List<py::str>)>;
using ReplicaTuple =
    std::tuple<std::string, std::string, std::int64_t, std::optional<std::int64_t>>;
// The same with a weight: (hostname, host, port, id_or_None, weight).
using WeightedReplicaTuple =
    std::tuple<std::string, std::string, std::int64_t, std::optional<std::int64_t>, std::int64_t>;
using ReplicaItem = std::variant<WeightedReplicaTuple, ReplicaTuple>;

// The Python class ringlb.ControlError, created in bind_router().
py::handle control_error_class;

bool finalizing() {
#if PY_VERSION_HEX >= 0x030D0000
    return Py_IsFinalizing();
#else
    return _Py_IsFinalizing();
#endif
}

struct RouterDeleter {
    void operator()(Router* r) const {
        // Stopping joins the control worker, which may be waiting for the GIL.
        if (Py_IsInitialized() && PyGILState_Check() && !finalizing()) {
            py::gil_scoped_release release;
            delete r;
        } else {
            delete r;
        }
    }
};

std::chrono::milliseconds seconds_arg(double s, const char* name) {
    if (!std::isfinite(s) || s <= 0 || s > 86400.0 * 365) {
        throw std::invalid_argument(std::string(name) + " must be a positive number of seconds");
    }
    return std::chrono::milliseconds(std::max<std::int64_t>(1, std::llround(s * 1000.0)));
}

std::size_t size_arg(std::int64_t v, const char* name) {
    if (v < 0) throw std::invalid_argument(std::string(name) + " must be >= 0");
    return static_cast<std::size_t>(v);
}

// A count held in an unsigned (retries): anything out of range (negative
// ones too) becomes one check_limits refuses, with its message.
unsigned count_arg(std::int64_t v) {
    return v < 0 || v > std::int64_t{UINT_MAX} ? UINT_MAX : static_cast<unsigned>(v);
}

// The live settings (RouterLimits) by their Python names, which are also
// LauncherConfig's field names: Router.LIVE_SETTINGS, Router.reconfigure()
// and Router.limits() read this one table. Timeouts are seconds in Python.
struct LiveSetting {
    const char* name;
    void (*set)(RouterLimits&, py::handle value, const char* name);
    py::object (*get)(const RouterLimits&);
};

template <std::chrono::milliseconds RouterLimits::*M>
LiveSetting seconds_setting(const char* name) {
    return {name,
            [](RouterLimits& l, py::handle v, const char* n) { l.*M = seconds_arg(py::cast<double>(v), n); },
            [](const RouterLimits& l) -> py::object {
                return py::float_(std::chrono::duration<double>(l.*M).count());
            }};
}

template <std::size_t RouterLimits::*M>
LiveSetting size_setting(const char* name) {
    return {name,
            [](RouterLimits& l, py::handle v, const char* n) { l.*M = size_arg(py::cast<std::int64_t>(v), n); },
            [](const RouterLimits& l) -> py::object { return py::int_(l.*M); }};
}

const std::vector<LiveSetting>& live_settings() {
    static const std::vector<LiveSetting> table = {
        {"retries",
         [](RouterLimits& l, py::handle v, const char*) { l.retries = count_arg(py::cast<std::int64_t>(v)); },
         [](const RouterLimits& l) -> py::object { return py::int_(l.retries); }},
        {"bounded_load",
         [](RouterLimits& l, py::handle v, const char*) { l.bounded_load = py::cast<double>(v); },
         [](const RouterLimits& l) -> py::object { return py::float_(l.bounded_load); }},
        seconds_setting<&RouterLimits::connect_timeout>("connect_timeout"),
        seconds_setting<&RouterLimits::upstream_timeout>("upstream_timeout"),
        seconds_setting<&RouterLimits::header_timeout>("header_timeout"),
        seconds_setting<&RouterLimits::idle_timeout>("idle_timeout"),
        seconds_setting<&RouterLimits::resolve_interval>("resolve_interval"),
        size_setting<&RouterLimits::max_header_bytes>("max_header_bytes"),
        size_setting<&RouterLimits::max_body_bytes>("max_body_bytes"),
        size_setting<&RouterLimits::max_connections>("max_connections"),
        size_setting<&RouterLimits::max_idle_upstream>("max_idle_upstream"),
        {"replica_header",
         [](RouterLimits& l, py::handle v, const char*) {
             if (!py::isinstance<py::bool_>(v)) throw py::cast_error();  // not 3 or "no"
             l.replica_header = v.cast<bool>();
         },
         [](const RouterLimits& l) -> py::object { return py::bool_(l.replica_header); }},
    };
    return table;
}

// `base` with `settings` (LIVE_SETTINGS by name) changed: Router.reconfigure()
// from the running values, Router.check_limits() from the defaults.
RouterLimits with_settings(RouterLimits next, const py::kwargs& settings) {
    for (const auto& [key, value] : settings) {
        const std::string name = py::str(key);
        const auto& table = live_settings();
        const auto it = std::find_if(table.begin(), table.end(),
                                     [&](const LiveSetting& s) { return name == s.name; });
        if (it == table.end()) {
            throw py::type_error("'" + name + "' is not a setting a running router can change "
                                 "(Router.LIVE_SETTINGS)");
        }
        try {
            it->set(next, value, it->name);
        } catch (const py::cast_error&) {
            throw py::type_error(name + (name == "replica_header" ? " must be True or False"
                                                                   : " must be a number") +
                                 ", got " + std::string(py::repr(value)));
        }
    }
    return next;
}

std::uint16_t port_arg(std::int64_t port, bool allow_zero) {
    if (port < (allow_zero ? 0 : 1) || port > 65535) {
        throw std::invalid_argument(allow_zero ? "port must be between 0 and 65535"
                                               : "port must be between 1 and 65535");
    }
    return static_cast<std::uint16_t>(port);
}

std::uint32_t id_arg(std::int64_t id) {
    if (id < 1 || id > 0xffffffffLL) throw std::invalid_argument("id must be between 1 and 4294967295");
    return static_cast<std::uint32_t>(id);
}

Replica replica_arg(Router& r, const ReplicaTuple& t, std::int64_t weight) {
    const auto& [hostname, host, port, id] = t;
    if (!AdminApi::valid_hostname(hostname)) {
        throw std::invalid_argument("hostname '" + hostname + "' must match " +
                                    std::string(AdminApi::hostname_pattern));
    }
    // An IP literal or a DNS name: the ReplicaSet checks it.
    return Replica{id ? id_arg(*id) : 0, hostname, host, port_arg(port, false),
                   weight_arg(*r.replicas().snapshot()->ring, weight)};
}

Replica replica_arg(Router& r, const ReplicaItem& item) {
    if (const auto* t = std::get_if<ReplicaTuple>(&item)) return replica_arg(r, *t, 1);
    const auto& [hostname, host, port, id, weight] = std::get<WeightedReplicaTuple>(item);
    return replica_arg(r, ReplicaTuple{hostname, host, port, id}, weight);
}

std::shared_ptr<Router> make_router(const std::string& host, std::int64_t port,
                                    std::int64_t threads, std::optional<std::int64_t> slots,
                                    std::optional<std::int64_t> virtual_nodes,
                                    const std::string& scheme,
                                    const std::string& probing, const std::string& key,
                                    std::int64_t retries, double bounded_load,
                                    double connect_timeout, double upstream_timeout,
                                    double header_timeout, double idle_timeout,
                                    std::int64_t max_header_bytes, std::int64_t max_body_bytes,
                                    std::int64_t max_connections, std::int64_t max_idle_upstream,
                                    const std::string& admin_token, const std::string& admin_listen,
                                    bool admin_on_data_port, std::int64_t min_replicas,
                                    std::int64_t max_replicas, const std::string& hostname_prefix,
                                    bool replica_header, const std::string& access_log,
                                    bool canonical_ring, double resolve_interval) {
    RouterConfig c;
    c.host = host;
    c.port = port_arg(port, true);
    if (threads < 0 || threads > 1024) throw std::invalid_argument("threads must be between 0 and 1024");
    c.threads = static_cast<unsigned>(threads);
    c.ring = ring_options_arg(slots, virtual_nodes, scheme, probing, canonical_ring);
    c.key = key;
    c.retries = count_arg(retries);
    c.bounded_load = bounded_load;
    c.connect_timeout = seconds_arg(connect_timeout, "connect_timeout");
    c.upstream_timeout = seconds_arg(upstream_timeout, "upstream_timeout");
    c.header_timeout = seconds_arg(header_timeout, "header_timeout");
    c.idle_timeout = seconds_arg(idle_timeout, "idle_timeout");
    c.resolve_interval = seconds_arg(resolve_interval, "resolve_interval");
    c.max_header_bytes = size_arg(max_header_bytes, "max_header_bytes");
    c.max_body_bytes = size_arg(max_body_bytes, "max_body_bytes");
    c.max_connections = size_arg(max_connections, "max_connections");
    c.max_idle_upstream = size_arg(max_idle_upstream, "max_idle_upstream");
    c.admin_token = admin_token;
    c.admin_listen = admin_listen;
    c.admin_on_data_port = admin_on_data_port;
    c.min_replicas = size_arg(min_replicas, "min_replicas");
    c.max_replicas = size_arg(max_replicas, "max_replicas");
    c.hostname_prefix = hostname_prefix;
    c.replica_header = replica_header;
    c.access_log = access_log;
    return std::shared_ptr<Router>(new Router(std::move(c)), RouterDeleter{});
}

std::uint32_t resolve(const Router& r, const IdOrName& who) {
    auto& set = const_cast<Router&>(r).replicas();
    if (const auto* id = std::get_if<std::int64_t>(&who)) {
        if (*id >= 1 && *id <= 0xffffffffLL && set.find(static_cast<std::uint32_t>(*id))) {
            return static_cast<std::uint32_t>(*id);
        }
        throw py::key_error("no replica with id " + std::to_string(*id));
    }
    const auto& name = std::get<std::string>(who);
    if (auto rep = set.find(name)) return rep->id;
    throw py::key_error("no replica named '" + name + "'");
}

// The control handler each Router object holds, by the Python object (with
// the GIL held): what the garbage collector is shown (tp_traverse below). A
// handler that refers back to its router, as a closure over it does, makes a
// cycle through C++ that Python could not see, so such a router was never
// collected, and kept its threads' descriptors (the tests' control planes
// leaked ~9 per router this way).
std::unordered_map<PyObject*, PyObject*>& held_handlers() {
    static auto* held = new std::unordered_map<PyObject*, PyObject*>();  // never destroyed
    return *held;
}

// Wraps a Python callable as a ControlHandler of the router `owner`. The
// callable is released with the GIL held, whichever thread drops the last copy.
ControlHandler python_handler(py::function fn, PyObject* owner) {
    held_handlers()[owner] = fn.ptr();
    std::shared_ptr<py::function> held(new py::function(std::move(fn)), [owner](py::function* f) {
        py::gil_scoped_acquire gil;
        auto& all = held_handlers();
        if (auto it = all.find(owner); it != all.end() && it->second == f->ptr()) all.erase(it);
        delete f;
    });
    return [held](const ControlRequest& req) {
        py::gil_scoped_acquire gil;
        try {
            const char* op = req.op == ControlRequest::Op::add ? "add" : "remove";
            // Only a request that carried addresses or weights passes them: a
            // handler that takes neither keeps its (op, hostnames) signature.
            py::dict extra;
            if (!req.addresses.empty()) extra["addresses"] = req.addresses;
            if (!req.weights.empty()) extra["weights"] = req.weights;
            (*held)(op, req.hostnames, **extra);
        } catch (py::error_already_set& e) {
            if (e.matches(control_error_class)) {
                const py::object value = e.value();
                const int status = py::cast<int>(value.attr("status"));
                const std::string message = py::str(value.attr("message"));
                throw ControlError(status, message);
            }
            const std::string type = py::str(e.type().attr("__name__"));
            throw ControlError(500, type + ": " + std::string(py::str(e.value())));
        }
    };
}

// Router::start() without the GIL; a bind failure becomes OSError.
void start_router(Router& r) {
    std::optional<std::system_error> failed;
    {
        py::gil_scoped_release release;
        try {
            r.start();
        } catch (const std::system_error& e) {
            failed = e;
        }
    }
    if (failed) {
        PyErr_SetObject(PyExc_OSError, py::make_tuple(failed->code().value(), failed->what()).ptr());
        throw py::error_already_set();
    }
}

Record event_dict(const Event& e) {
    Record d;
    d["seq"] = e.seq;
    d["time"] = std::chrono::duration<double>(e.time.time_since_epoch()).count();
    d["monotonic_seconds"] = std::chrono::duration<double>(e.monotonic.time_since_epoch()).count();
    d["kind"] = py::str(std::string(to_string(e.kind)));
    d["id"] = e.id != 0 ? py::object(py::int_(e.id)) : py::object(py::none());
    d["hostname"] = !e.hostname.empty() ? py::object(py::str(e.hostname)) : py::object(py::none());
    d["detail"] = e.detail;
    return d;
}

Record replica_dict(const Replica& r, bool serving) {
    Record d;
    d["id"] = r.id;
    d["hostname"] = r.hostname;
    d["host"] = r.host;  // "" while its name resolves
    d["name"] = r.name.empty() ? py::object(py::none()) : py::object(py::str(r.name));
    d["port"] = r.port;
    d["serving"] = serving;
    d["weight"] = r.weight;
    return d;
}

}  // namespace

void bind_router(py::module_& m) {
    // ControlError(status, message): raised by a control handler to answer
    // {"message": "<Error> message", "status": "failure"} with `status`.
    py::dict scope;
    scope["RinglbError"] = m.attr("RinglbError");
    scope["__name__"] = m.attr("__name__");
    // A plain Python class (not a C++ one): it takes two arguments and must
    // pickle and subclass like any Python exception.
    py::exec(R"py(
class ControlError(RinglbError):
    """A control handler's refusal: the router answers {"message": "<Error> <message>", "status": "failure"} with HTTP status `status` (400-599)."""

    status: int
    message: str

    def __init__(self, status: int, message: str) -> None:
        if isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599:
            raise ValueError("ControlError status must be an integer between 400 and 599")
        super().__init__(str(message))
        self.status = status
        self.message = str(message)

    def __reduce__(self) -> tuple[type, tuple[int, str]]:
        return (type(self), (self.status, self.message))
)py",
             scope);
    py::object cls = scope["ControlError"];
    m.attr("ControlError") = cls;
    control_error_class = cls.release();  // lives as long as the module
    py::register_exception_translator([](std::exception_ptr p) {
        try {
            if (p) std::rethrow_exception(p);
        } catch (const ControlError& e) {
            const int status = e.status >= 400 && e.status <= 599 ? e.status : 500;
            py::object err = py::reinterpret_borrow<py::object>(control_error_class)(status, e.what());
            PyErr_SetObject(control_error_class.ptr(), err.ptr());
        }
    });

    // The collector's view of a Router: the control handler it holds (see
    // held_handlers); clearing drops that handler.
    const py::custom_type_setup collectable([](PyHeapTypeObject* heap_type) {
        auto* type = &heap_type->ht_type;
        type->tp_flags |= Py_TPFLAGS_HAVE_GC;
        type->tp_traverse = [](PyObject* self, visitproc visit, void* arg) {
            Py_VISIT(Py_TYPE(self));
            const auto& all = held_handlers();
            if (auto it = all.find(self); it != all.end()) Py_VISIT(it->second);
            return 0;
        };
        type->tp_clear = [](PyObject* self) {
            if (held_handlers().count(self) == 0) return 0;
            // The router drops its handler; the handler's deleter forgets it here.
            py::cast<Router&>(py::handle(self)).set_control_handler({});
            held_handlers().erase(self);
            return 0;
        };
    });
    py::class_<Router, std::shared_ptr<Router>>(m, "Router", collectable, R"doc(
The ringlb load balancer's data plane (SPEC section 3): an HTTP/1.1 reverse proxy
in C++ (Boost.Beast) that serves GET /rep, POST /add, DELETE /rm and forwards every
other request to the replica the consistent hash ring picks.

Replicas are registered from Python (add_replica) or, for /add and /rm, by the
control handler (set_control_handler). Timeouts are in seconds.
)doc")
        .def(py::init(&make_router), py::arg("host") = "127.0.0.1", py::arg("port") = 5000,
             py::arg("threads") = 0, py::arg("slots") = py::none(), py::arg("virtual_nodes") = py::none(),
             py::arg("scheme") = "assignment", py::arg("probing") = "linear",
             py::arg("key") = "random", py::arg("retries") = 2, py::arg("bounded_load") = 0.0,
             py::arg("connect_timeout") = 0.3, py::arg("upstream_timeout") = 5.0,
             py::arg("header_timeout") = 5.0, py::arg("idle_timeout") = 60.0,
             py::arg("max_header_bytes") = 8192, py::arg("max_body_bytes") = 1048576,
             py::arg("max_connections") = 10000, py::arg("max_idle_upstream") = 64,
             py::arg("admin_token") = "", py::arg("admin_listen") = "",
             py::arg("admin_on_data_port") = true, py::arg("min_replicas") = 1,
             py::arg("max_replicas") = 0, py::arg("hostname_prefix") = "Server",
             py::arg("replica_header") = true, py::arg("access_log") = "",
             py::arg("canonical_ring") = false, py::arg("resolve_interval") = 30.0,
             "admin_token: /add and /rm need 'Authorization: Bearer <token>'; without one they "
             "answer 403 on a non-loopback listener. admin_listen: 'HOST:PORT' of a second "
             "listener serving the admin API. admin_on_data_port=False proxies /add and /rm on "
             "the data port like any path. min_replicas / max_replicas bound what /rm and /add "
             "leave (max 0: the ring's capacity, at most 64). replica_header=False leaves out "
             "the X-Ringlb-Replica response field. access_log: a file to append a line per "
             "request to ('-': standard output). canonical_ring: the ring is a function of the "
             "replica set alone, whatever order they joined in (slot schemes: a fresh build in "
             "ascending id order on every change; ketama and maglev always are). "
             "resolve_interval: seconds between two resolutions of a replica's DNS name "
             "(a replica may be given one instead of an address: the router resolves it). "
             "Raises ValueError for a bad argument (unknown scheme, probing or key source, "
             "a host that is not an IP address, negative sizes, non-positive timeouts).")
        .def("start", &start_router,
            "Bind and start the I/O threads. OSError when the address cannot be bound, "
            "RuntimeError when already running.")
        .def("stop", &Router::stop, py::call_guard<py::gil_scoped_release>(),
             "Stop accepting, let requests in flight finish, close every connection and join "
             "the threads. Idempotent.")
        .def_property_readonly("running", &Router::running)
        .def_property_readonly("port", &Router::port, "The bound port (after start()).")
        .def_property_readonly("host", [](const Router& r) { return r.config().host; },
                               "The address the data port is bound to.")
        .def_property_readonly("admin_port", &Router::admin_port,
                               "The admin listener's bound port (after start()); 0: none.")
        .def_property_readonly("min_replicas", &Router::min_replicas)
        .def_property_readonly("max_replicas", &Router::max_replicas,
                               "The most replicas /add may leave registered (resolved).")
        .def_property_readonly("threads", &Router::threads,
                               "The I/O threads: as configured, or the CPUs usable when 0.")
        .def_property_readonly("threads_reason", &Router::threads_reason,
                               "Why that many threads (affinity mask, cgroup quota, setting).")
        .def_property_readonly("key", [](const Router& r) { return r.config().key; })
        .def(
            "reconfigure",
            [](Router& r, const py::kwargs& settings) {
                const RouterLimits next = with_settings(r.limits(), settings);
                py::gil_scoped_release release;  // it waits for every I/O thread
                r.reconfigure(next);
            },
            "Change settings of the running router, all or none: any of LIVE_SETTINGS as "
            "keywords (timeouts in seconds). Requests that start from then on use them; one "
            "being read or answered finishes with the values it started with, and an open "
            "keep-alive connection takes them at its next request. ValueError for a value out "
            "of range (nothing changes), TypeError for another setting or a wrong type.")
        .def_static(
            "check_limits",
            [](const py::kwargs& settings) { check_limits(with_settings(RouterLimits{}, settings)); },
            "Judge LIVE_SETTINGS given as keywords (the rest at their defaults) as the router "
            "would, without one: ValueError naming the first out of range, TypeError for "
            "another setting or a wrong type. LauncherConfig and `ringlb config check` use it.")
        .def(
            "limits",
            [](const Router& r) {
                const RouterLimits l = r.limits();
                py::typing::Dict<py::str, py::object> out;
                for (const auto& s : live_settings()) out[py::str(s.name)] = s.get(l);
                return out;
            },
            "The LIVE_SETTINGS as they are now: as constructed, or as reconfigure() set them "
            "(timeouts in seconds).")
        .def(
            "add_replica",
            [](Router& r, const std::string& hostname, const std::string& host, std::int64_t port,
               std::optional<std::int64_t> id, std::int64_t weight) {
                return r.replicas().add({replica_arg(r, {hostname, host, port, id}, weight)}).front().id;
            },
            py::arg("hostname"), py::arg("host"), py::arg("port"), py::arg("id") = py::none(),
            py::arg("weight") = 1,
            "Register a replica and put it on the ring; returns its server id (the smallest "
            "free one unless given). host: an IP address, or a DNS name that the router "
            "resolves (off the ring, 'resolving', until it has an address; again when it goes "
            "down or a connection to it fails, and every resolve_interval). ValueError for a bad or taken id/hostname or a weight the "
            "scheme refuses (1 .. MAX_WEIGHT; slot schemes: 1 only), RingFullError when the "
            "ring has no room.")
        .def(
            "add_replicas",
            [](Router& r, const std::vector<ReplicaItem>& items) {
                std::vector<Replica> reps;
                for (const auto& t : items) reps.push_back(replica_arg(r, t));
                std::vector<std::uint32_t> ids;
                for (const auto& rep : r.replicas().add(std::move(reps))) ids.push_back(rep.id);
                return ids;
            },
            py::arg("replicas"),
            "Register several (hostname, host, port, id_or_None[, weight]) replicas, all or "
            "none; returns their ids.")
        .def(
            "remove_replica",
            [](Router& r, const IdOrName& who) { r.replicas().remove({resolve(r, who)}); },
            py::arg("replica"), "Unregister a replica by id or hostname; KeyError when unknown.")
        .def(
            "remove_replicas",
            [](Router& r, const std::vector<IdOrName>& who) {
                std::vector<std::uint32_t> ids;
                for (const auto& w : who) {
                    const auto id = resolve(r, w);
                    if (std::find(ids.begin(), ids.end(), id) != ids.end()) {
                        throw std::invalid_argument("replica " + std::to_string(id) +
                                                    " is listed twice");
                    }
                    ids.push_back(id);
                }
                r.replicas().remove(ids);
            },
            py::arg("replicas"),
            "Unregister several replicas (ids or hostnames), all or none; KeyError when one "
            "is unknown.")
        .def(
            "set_serving",
            [](Router& r, std::int64_t id, bool serving) {
                return r.replicas().set_serving(id_arg(id), serving);
            },
            py::arg("id"), py::arg("serving"),
            "Take a replica off the ring (False) or put it back (True); it stays registered. "
            "Returns False when the id is unknown or nothing changed.")
        .def(
            "set_endpoint",
            [](Router& r, std::int64_t id, const std::string& host, std::int64_t port) {
                return r.replicas().set_endpoint(id_arg(id), host, port_arg(port, false));
            },
            py::arg("id"), py::arg("host"), py::arg("port"),
            "Change where a replica listens (host: an IP address or a DNS name, which the "
            "router resolves; a new name keeps it off the ring until it does); returns False "
            "when the id is unknown.")
        .def(
            "replicas",
            [](Router& r) {
                const auto snap = r.replicas().snapshot();
                Records out;
                for (const auto& rep : snap->registered) {
                    out.append(replica_dict(*rep, snap->ring->index_of(rep->id) != HashRing::npos));
                }
                return out;
            },
            "Registered replicas in registration order: dicts with id, hostname, host (the "
            "address the router connects to, '' while its name resolves), name (the DNS name it "
            "was given, or None), port, serving, weight.")
        .def("next_free_id", [](Router& r) { return r.replicas().next_free_id(); },
             "The smallest server id no registered replica uses.")
        .def(
            "fresh",
            [](Router& r, std::int64_t n) {
                if (n < 0 || n > 100000) throw std::invalid_argument("n must be in 0..100000");
                const auto snap = r.replicas().snapshot();
                const auto count = static_cast<std::size_t>(n);
                const auto ids = snap->free_ids(count);
                const auto names = snap->fresh_names(count, r.config().hostname_prefix);
                std::vector<std::pair<std::uint32_t, std::string>> out;
                for (std::size_t i = 0; i < count; ++i) out.emplace_back(ids[i], names[i]);
                return out;
            },
            py::arg("n"),
            "n (id, hostname) pairs for new replicas: the smallest free ids (SPEC section 2) "
            "and <hostname_prefix><k> names with the smallest unused k, as /add gives them.")
        .def(
            "lookup",
            [](Router& r, std::uint64_t request_id) {
                const auto snap = r.replicas().snapshot();
                const std::size_t i = snap->ring->lookup(request_id);
                if (i == HashRing::npos) throw RingEmptyError("no replica is serving");
                return snap->ring->members()[i].hostname;
            },
            py::arg("request_id"),
            "Hostname of the serving replica that request_id maps to; RingEmptyError when none.")
        .def(
            "set_control_handler",
            [](py::handle self, std::optional<PyHandler> fn) {
                auto& r = py::cast<Router&>(self);
                if (fn) {
                    r.set_control_handler(python_handler(std::move(*fn), self.ptr()));
                } else {
                    r.set_control_handler({});
                    held_handlers().erase(self.ptr());
                }
            },
            py::arg("handler"),
            "fn(op, hostnames) with op 'add' or 'remove' and the validated hostnames, run on "
            "the router's control thread for POST /add and DELETE /rm; it must register or "
            "remove the replicas before returning. An /add that carried \"addresses\" or "
            "\"weights\" passes them too, as keyword arguments addresses= and weights= (lists "
            "parallel to hostnames; the weights already checked against the ring). Raise ControlError(status, message) to "
            "refuse; any other exception answers 500. None removes it (then /add and /rm "
            "answer 503).")
        .def(
            "stats",
            [](const Router& r) {
                const RouterStats s = r.stats();
                Record d;
#define RINGLB_COUNTER_KEY(name, what) d[#name] = s.name;
                RINGLB_ROUTER_COUNTERS(RINGLB_COUNTER_KEY)
#undef RINGLB_COUNTER_KEY
                d["active_connections"] = s.active_connections;
                py::typing::Dict<py::str, py::int_> per;
                for (const auto& rs : r.replica_stats()) per[py::str(rs.hostname)] = rs.requests;
                d["replicas"] = per;
                return d;
            },
            "Counters: requests answered, proxied, retries, upstream_failures, errors (5xx "
            "from the router), active_connections, upstream_connects (connections opened to "
            "replicas; the other requests reused one), and replicas: {hostname: requests "
            "answered}.")
        .def(
            "replica_stats",
            [](const Router& r) {
                Records out;
                for (const auto& rs : r.replica_stats()) {
                    Record d;
                    d["id"] = rs.id;
                    d["hostname"] = rs.hostname;
                    d["serving"] = rs.serving;
                    d["requests"] = rs.requests;
                    d["in_flight"] = rs.in_flight;
                    d["failures"] = rs.failures;
                    d["host"] = rs.host;
                    d["port"] = rs.port;
                    d["share"] = rs.share;
                    d["weight"] = rs.weight;
                    py::dict responses;
                    for (std::size_t k = 0; k < rs.responses.size(); ++k) {
                        responses[py::str(std::to_string(k + 1) + "xx")] = rs.responses[k];
                    }
                    d["responses"] = responses;
                    d["duration_seconds"] = rs.duration_seconds;
                    out.append(d);
                }
                return out;
            },
            "Per registered replica: id, hostname, host, port, serving, weight, share (of the request-id "
            "space on the ring now), requests (answered), responses ({'1xx': n, ... '5xx': n}, "
            "by the status the client got), duration_seconds (their sum), in_flight, failures.")
        .def(
            "record_event",
            [](Router& r, const std::string& kind, std::optional<std::int64_t> id,
               std::optional<std::string> hostname, const std::string& detail) {
                const EventKind k = parse_event_kind(kind);
                const std::uint32_t sid = id ? id_arg(*id) : 0;
                if (hostname && !AdminApi::valid_hostname(*hostname)) {
                    throw std::invalid_argument("hostname '" + *hostname + "' must match " +
                                                std::string(AdminApi::hostname_pattern));
                }
                r.events().record(k, sid, hostname.value_or(""), detail);
            },
            py::arg("kind"), py::arg("id") = py::none(), py::arg("hostname") = py::none(),
            py::arg("detail") = "",
            "Record an event the control plane observed (kind: one of EVENT_KINDS; id and "
            "hostname: the replica's, None when it is about no one replica) in the router's "
            "recent events. ValueError for an unknown kind, a bad id or hostname (nothing is "
            "recorded then).")
        .def(
            "events",
            [](Router& r) {
                Records out;
                for (const Event& e : r.events().recent()) out.append(event_dict(e));
                return out;
            },
            "The recent events, oldest first (the last 200; /status's \"events\"): dicts of seq "
            "(1, 2, ... as recorded), time (Unix seconds), monotonic_seconds (time.monotonic()'s "
            "clock), kind, id and hostname (None when about no one replica) and detail. The "
            "heartbeat engine records suspect, down and up; the launcher the rest.")
        .def("__enter__",
             [](std::shared_ptr<Router> self) {
                 if (!self->running()) start_router(*self);
                 return self;
             })
        .def("__exit__",
             [](Router& r, py::args) {
                 py::gil_scoped_release release;
                 r.stop();
             })
        .def("__repr__", [](const Router& r) {
            return "Router(host='" + r.config().host + "', port=" + std::to_string(r.port()) +
                   ", key='" + r.config().key + "', running=" + (r.running() ? "True" : "False") +
                   ")";
        });

    py::list live;
    for (const auto& setting : live_settings()) live.append(py::str(setting.name));
    // The settings reconfigure() takes: what SIGHUP can change without a restart.
    m.attr("Router").attr("LIVE_SETTINGS") = py::tuple(live);

    // The router's hostname rule, for the Python backends to check names before
    // they start anything (one implementation: AdminApi::valid_hostname).
    m.attr("HOSTNAME_PATTERN") = std::string(AdminApi::hostname_pattern);
    // The event kinds Router.record_event takes and /status shows (event_log.hpp owns them).
    py::list kinds;
    for (const auto k : event_kind_names) kinds.append(py::str(std::string(k)));
    m.attr("EVENT_KINDS") = py::tuple(kinds);
    m.def("valid_hostname", &AdminApi::valid_hostname, py::arg("name"),
          "True when `name` is a replica hostname the router accepts: it matches "
          "HOSTNAME_PATTERN (SPEC §3).");
}

}  // namespace ringlb::bindings
