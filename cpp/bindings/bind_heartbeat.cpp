// ringlb.HeartbeatEngine: the C++ engine on a router's event loop, with the
// router's passive failure reports wired in and state changes delivered to a
// Python callable on the engine's notifier thread (never an I/O thread).
#include <pybind11/functional.h>
#include <pybind11/stl.h>

#include <chrono>
#include <cmath>
#include <memory>
#include <string>

#include "bindings.hpp"
#include "ringlb/heartbeat.hpp"
#include "ringlb/router.hpp"

namespace py = pybind11;

namespace ringlb::bindings {
namespace {

std::chrono::milliseconds millis_arg(double seconds, const char* what) {
    if (!std::isfinite(seconds) || seconds < 0.001 || seconds > 3600.0) {
        throw std::invalid_argument(std::string(what) + " must be between 0.001 and 3600 seconds");
    }
    return std::chrono::milliseconds(static_cast<std::int64_t>(std::llround(seconds * 1000.0)));
}

unsigned count_arg(std::int64_t n, const char* what) {
    if (n < 1 || n > 1000) throw std::invalid_argument(std::string(what) + " must be between 1 and 1000");
    return static_cast<unsigned>(n);
}

class PyHeartbeatEngine {
public:
    PyHeartbeatEngine(std::shared_ptr<Router> router, double interval, double timeout,
                      std::int64_t fall, std::int64_t rise, std::string path)
        : router_(std::move(router)) {
        if (!router_) throw py::type_error("router must be a ringlb.Router, not None");
        HeartbeatConfig c;
        c.interval = millis_arg(interval, "interval");
        c.timeout = millis_arg(timeout, "timeout");
        c.fall = count_arg(fall, "fall");
        c.rise = count_arg(rise, "rise");
        c.path = std::move(path);
        // State changes go into the router's event log (its /status "events").
        engine_ = std::make_unique<HeartbeatEngine>(router_->executor(), router_->replicas(), c,
                                                    &router_->events());
    }

    ~PyHeartbeatEngine() {
        // The notifier thread may be waiting for the GIL to call the listener.
        py::gil_scoped_release release;
        engine_.reset();
        router_.reset();
    }

    void start() {
        py::gil_scoped_release release;
        engine_->start();
        // Both hold the engine weakly: harmless once the engine is gone.
        router_->set_failure_listener(engine_->failure_listener());
        router_->set_health_source(engine_->health_source());
    }

    void stop() {
        py::gil_scoped_release release;
        engine_->stop();
    }

    void set_listener(const py::object& fn) {
        if (fn.is_none()) {
            py::gil_scoped_release release;
            engine_->set_listener({});
            return;
        }
        if (!PyCallable_Check(fn.ptr())) throw py::type_error("listener must be callable or None");
        // Released with the GIL held, whichever thread drops the last copy.
        std::shared_ptr<py::object> held(new py::object(fn), [](py::object* f) {
            py::gil_scoped_acquire gil;
            delete f;
        });
        HealthListener listener = [held](const HealthEvent& e) {
            py::gil_scoped_acquire gil;
            try {
                (*held)(e.id, e.hostname, to_string(e.from), to_string(e.to), e.detail);
            } catch (py::error_already_set& err) {
                err.discard_as_unraisable("ringlb.HeartbeatEngine listener");
            }
        };
        py::gil_scoped_release release;  // the previous listener may be in a call
        engine_->set_listener(std::move(listener));
    }

    py::list states() const {
        std::vector<ReplicaHealth> all;
        {
            py::gil_scoped_release release;
            all = engine_->states();
        }
        py::list out;
        for (const auto& h : all) {
            py::dict d;
            d["id"] = h.id;
            d["hostname"] = h.hostname;
            d["host"] = h.host;
            d["port"] = h.port;
            d["state"] = to_string(h.state);
            d["misses"] = h.misses;
            d["successes"] = h.successes;
            d["latency"] = h.last_latency
                               ? py::object(py::float_(static_cast<double>(h.last_latency->count()) / 1e6))
                               : py::object(py::none());
            d["checks"] = h.checks;
            d["passive_failures"] = h.passive_failures;
            d["last_error"] = h.last_error;
            out.append(std::move(d));
        }
        return out;
    }

    void on_failure(std::int64_t id) {
        if (id < 1 || id > 0xffffffffLL) return;  // no such replica: ignored, like the engine
        engine_->on_failure(static_cast<std::uint32_t>(id));
    }

    std::unique_ptr<HeartbeatEngine> engine_;
    std::shared_ptr<Router> router_;
};

}  // namespace

void bind_heartbeat(py::module_& m) {
    m.def("check_health_path", &check_health_path, py::arg("path"),
          "ValueError unless `path` can be probed as it is: '/' first, no space or control "
          "character, at most 1024 bytes.");
    py::class_<PyHeartbeatEngine>(m, "HeartbeatEngine", R"doc(
Active and passive health checks of a router's replicas (SPEC section 4).

Every registered replica's GET `path` (/heartbeat) is polled every `interval`
seconds on a keep-alive connection; no 2xx or 3xx answer within `timeout` is a
miss. A request the
router fails to forward (refused, reset, timed out) is a miss at once and
triggers an immediate probe. `fall` misses in a row make a replica "down": it
leaves the ring at once. `rise` successes in a row bring it back. A replica
with fewer than `fall` misses is "suspect" (still serving). The engine runs on
the router's I/O threads; the listener runs on a thread of its own. Every
state change is also recorded in the router's events (Router.events(), /status).
)doc")
        .def(py::init<std::shared_ptr<Router>, double, double, std::int64_t, std::int64_t,
                      std::string>(),
             py::arg("router"), py::arg("interval") = 0.2, py::arg("timeout") = 0.2,
             py::arg("fall") = 2, py::arg("rise") = 1, py::arg("path") = "/heartbeat",
             "Raises ValueError for interval/timeout outside 0.001..3600 s, fall/rise "
             "outside 1..1000, or a path that does not start with '/' or holds a space or "
             "control character. The engine keeps the router alive.")
        .def("start", &PyHeartbeatEngine::start,
             "Start probing the router's replicas (those registered later too) and count the "
             "router's forwarding failures. The probes run while the router runs. "
             "RuntimeError when called twice: an engine starts once.")
        .def("stop", &PyHeartbeatEngine::stop,
             "Stop probing; no state changes and no listener call start after it returns. "
             "Idempotent; safe from the listener.")
        .def_property_readonly("running",
                               [](const PyHeartbeatEngine& e) { return e.engine_->running(); })
        .def("set_listener", &PyHeartbeatEngine::set_listener, py::arg("listener"),
             "listener(id, hostname, old_state, new_state, detail) is called on the engine's "
             "notifier thread for every state change (states: 'up', 'suspect', 'down'); None "
             "removes it. Exceptions it raises are reported as unraisable and ignored.")
        .def("states", &PyHeartbeatEngine::states,
             "Every tracked replica by ascending id: dicts of id, hostname, host, port, state, "
             "misses and successes (consecutive), latency (seconds of the last successful "
             "probe, or None), checks, passive_failures, last_error.")
        .def("refresh",
             [](PyHeartbeatEngine& e) { e.engine_->refresh(); },
             "Re-read the router's replicas now (after set_endpoint, say) instead of at the "
             "next poll.")
        .def("on_failure", &PyHeartbeatEngine::on_failure, py::arg("id"),
             "Report a passive failure of replica `id` (the router does this itself).")
        .def_property_readonly("interval", [](const PyHeartbeatEngine& e) {
            return static_cast<double>(e.engine_->config().interval.count()) / 1000.0;
        })
        .def_property_readonly("timeout", [](const PyHeartbeatEngine& e) {
            return static_cast<double>(e.engine_->config().timeout.count()) / 1000.0;
        })
        .def_property_readonly("fall", [](const PyHeartbeatEngine& e) { return e.engine_->config().fall; })
        .def_property_readonly("rise", [](const PyHeartbeatEngine& e) { return e.engine_->config().rise; })
        .def("__repr__", [](const PyHeartbeatEngine& e) {
            const auto& c = e.engine_->config();
            return "HeartbeatEngine(interval=" + std::to_string(c.interval.count()) +
                   " ms, timeout=" + std::to_string(c.timeout.count()) +
                   " ms, fall=" + std::to_string(c.fall) + ", rise=" + std::to_string(c.rise) +
                   (e.engine_->running() ? ", running)" : ")");
        });
}

}  // namespace ringlb::bindings
