// ringlb.Ring: a mutable handle on immutable HashRing snapshots, for notebooks
// and tests. Each add/remove swaps in a new ring, exactly as the router does.
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <optional>
#include <string>
#include <variant>

#include "bindings.hpp"
#include "ringlb/errors.hpp"
#include "ringlb/hash_ring.hpp"
#include "ringlb/hash_schemes.hpp"

namespace py = pybind11;

namespace ringlb::bindings {
namespace {

// Any Python object, shown as numpy.typing.ArrayLike in signatures and stubs:
// lookup_many checks and converts it itself (to_request_ids) instead of letting
// pybind11's forcecast truncate floats and wrap negative numbers.
inline bool accept_any(PyObject*) { return true; }
class ArrayLike : public py::object {
public:
    PYBIND11_OBJECT_DEFAULT(ArrayLike, py::object, accept_any)
};

}  // namespace
}  // namespace ringlb::bindings

template <>
struct pybind11::detail::handle_type_name<ringlb::bindings::ArrayLike> {
    static constexpr auto name = const_name("numpy.typing.ArrayLike");
};

namespace ringlb::bindings {
namespace {

class PyRing {
public:
    PyRing(std::optional<std::int64_t> slots, std::optional<std::int64_t> virtual_nodes,
           const std::string& scheme, const std::string& probing, bool canonical) {
        const RingOptions o = ring_options_arg(slots, virtual_nodes, scheme, probing, canonical);
        ring_ = make_ring(o);
    }

    std::uint32_t add(const std::string& hostname, std::optional<std::int64_t> id,
                      std::int64_t weight) {
        const std::uint32_t w = weight_arg(*ring_, weight);
        std::uint32_t sid = ring_->next_free_id();
        if (id) {
            if (*id < 1 || *id > 0xffffffffLL) {
                throw std::invalid_argument("id must be between 1 and 4294967295");
            }
            sid = static_cast<std::uint32_t>(*id);
        }
        ring_ = ring_->with_member({sid, hostname, w});
        return sid;
    }

    void remove(const std::variant<std::int64_t, std::string>& who) {
        std::size_t idx = HashRing::npos;
        if (const auto* id = std::get_if<std::int64_t>(&who)) {
            if (*id >= 1 && *id <= 0xffffffffLL) idx = ring_->index_of(static_cast<std::uint32_t>(*id));
            if (idx == HashRing::npos) throw py::key_error("no replica with id " + std::to_string(*id));
        } else {
            const auto& name = std::get<std::string>(who);
            idx = ring_->index_of(std::string_view(name));
            if (idx == HashRing::npos) throw py::key_error("no replica named '" + name + "'");
        }
        ring_ = ring_->without_member(ring_->members()[idx].id);
    }

    const std::string& lookup(std::uint64_t request_id) const {
        const std::size_t i = ring_->lookup(request_id);
        if (i == HashRing::npos) throw RingEmptyError("the ring has no replicas");
        return ring_->members()[i].hostname;
    }

    const std::string& lookup_key(const std::string& key) const {
        return lookup(key_to_request_id(key));
    }

    py::array_t<std::uint32_t> lookup_many(
        const py::array_t<std::uint64_t, py::array::c_style | py::array::forcecast>& ids) const {
        if (ring_->members().empty()) throw RingEmptyError("the ring has no replicas");
        if (ids.ndim() != 1) throw std::invalid_argument("request ids must be a 1-d array");
        const auto n = static_cast<std::size_t>(ids.shape(0));
        py::array_t<std::uint32_t> out(static_cast<py::ssize_t>(n));
        const std::uint64_t* in = ids.data();
        std::uint32_t* res = out.mutable_data();
        auto ring = ring_;  // keep it alive without touching Python objects
        {
            py::gil_scoped_release release;
            const auto& members = ring->members();
            for (std::size_t k = 0; k < n; ++k) res[k] = members[ring->lookup(in[k])].id;
        }
        return out;
    }

    py::array_t<std::uint64_t> slot_of_many(
        const py::array_t<std::uint64_t, py::array::c_style | py::array::forcecast>& ids) const {
        if (ids.ndim() != 1) throw std::invalid_argument("request ids must be a 1-d array");
        const auto n = static_cast<std::size_t>(ids.shape(0));
        py::array_t<std::uint64_t> out(static_cast<py::ssize_t>(n));
        const std::uint64_t* in = ids.data();
        std::uint64_t* res = out.mutable_data();
        auto ring = ring_;
        {
            py::gil_scoped_release release;
            for (std::size_t k = 0; k < n; ++k) res[k] = ring->slot_of(in[k]);
        }
        return out;
    }

    std::vector<std::string> candidates(std::uint64_t request_id, std::size_t n) const {
        std::vector<std::size_t> idx(std::min(n, ring_->members().size()));
        idx.resize(ring_->candidates(request_id, idx));
        std::vector<std::string> names;
        for (auto i : idx) names.push_back(ring_->members()[i].hostname);
        return names;
    }

    std::vector<std::optional<std::string>> hostnames_of(const std::vector<std::int32_t>& t) const {
        std::vector<std::optional<std::string>> out;
        out.reserve(t.size());
        for (auto i : t) {
            if (i < 0) out.emplace_back(std::nullopt);
            else out.emplace_back(ring_->members()[static_cast<std::size_t>(i)].hostname);
        }
        return out;
    }

    py::array_t<std::uint32_t> ids_of(const std::vector<std::int32_t>& t) const {
        py::array_t<std::uint32_t> out(static_cast<py::ssize_t>(t.size()));
        auto* p = out.mutable_data();
        for (std::size_t k = 0; k < t.size(); ++k) {
            p[k] = t[k] < 0 ? 0 : ring_->members()[static_cast<std::size_t>(t[k])].id;
        }
        return out;
    }

    std::shared_ptr<const HashRing> ring_;
};

// Request ids arrive as Python ints of any size; anything outside 0 .. 2^64-1
// is a ValueError rather than pybind11's generic TypeError.
std::uint64_t to_request_id(const py::int_& value) {
    const py::int_ zero(0);
    const py::int_ limit = py::reinterpret_steal<py::int_>(PyLong_FromUnsignedLongLong(~0ULL));
    if (value < zero || value > limit) {
        throw std::invalid_argument("request id must be between 0 and 2**64 - 1");
    }
    return value.cast<std::uint64_t>();
}

using IdArray = py::array_t<std::uint64_t, py::array::c_style | py::array::forcecast>;

std::string type_name(const py::handle& obj) {
    return py::str(py::type::handle_of(obj).attr("__name__"));
}

// One request id from a Python object: an int (or anything with __index__, like a
// numpy integer) in 0 .. 2^64-1. Floats, bools, strings and None are refused.
std::uint64_t request_id_of_item(const py::handle& item) {
    if (PyBool_Check(item.ptr()) || !PyIndex_Check(item.ptr())) {
        throw std::invalid_argument("request ids must be integers, got " + type_name(item));
    }
    const auto as_int = py::reinterpret_steal<py::object>(PyNumber_Index(item.ptr()));
    if (!as_int) {
        PyErr_Clear();
        throw std::invalid_argument("request ids must be integers, got " + type_name(item));
    }
    const unsigned long long v = PyLong_AsUnsignedLongLong(as_int.ptr());
    if (v == static_cast<unsigned long long>(-1) && PyErr_Occurred()) {
        PyErr_Clear();  // negative (OverflowError) or beyond 64 bits
        throw std::invalid_argument("request ids must be between 0 and 2**64 - 1, got " +
                                    std::string(py::str(as_int)));
    }
    return v;
}

// Many request ids as a uint64 array. A numpy array is checked by its dtype:
// unsigned integers pass as they are, signed ones must not be negative, anything
// else (float, bool, complex, str) is a ValueError rather than being truncated.
// Any other sequence is read element by element, because numpy's own inference
// would turn a list like [1, 2**63] into float64.
IdArray to_request_ids(const py::handle& obj) {
    py::array a;
    if (py::isinstance<py::array>(obj)) {
        a = py::reinterpret_borrow<py::array>(obj);
    } else {
        a = py::module_::import("numpy").attr("array")(obj, py::arg("dtype") = "object");
    }
    if (a.ndim() != 1) throw std::invalid_argument("request ids must be a 1-d array");
    if (a.size() == 0) return IdArray(0);
    const char kind = a.dtype().kind();
    if (kind == 'O') {
        IdArray out(a.size());
        std::uint64_t* res = out.mutable_data();
        py::ssize_t k = 0;
        for (const auto item : a) res[k++] = request_id_of_item(item);
        return out;
    }
    if (kind == 'i') {
        if (a.attr("min")().cast<std::int64_t>() < 0) {
            throw std::invalid_argument(
                "request ids must be between 0 and 2**64 - 1, got a negative one");
        }
    } else if (kind != 'u') {
        throw std::invalid_argument("request ids must be integers, got an array of " +
                                    std::string(py::str(a.dtype())));
    }
    return IdArray::ensure(a);
}

std::string probing_name(Probing p) { return p == Probing::linear ? "linear" : "quadratic"; }

}  // namespace

std::uint32_t weight_arg(const HashRing& ring, std::int64_t weight) {
    ring.check_weight(weight);
    return static_cast<std::uint32_t>(weight);
}

RingOptions ring_options_arg(std::optional<std::int64_t> slots,
                             std::optional<std::int64_t> virtual_nodes, const std::string& scheme,
                             const std::string& probing, bool canonical) {
    // 0 and None both mean "the scheme's default", as the core's RingOptions has it.
    if (slots && (*slots < 0 || *slots > 0x7fffffff)) {
        throw std::invalid_argument(
            "slots must be between 1 and 2147483647, or 0 / None for the scheme's default");
    }
    if (virtual_nodes && (*virtual_nodes < 0 || *virtual_nodes > 0x7fffffff)) {
        throw std::invalid_argument("virtual_nodes must be between 1 and 2147483647, or 0 / None "
                                    "for the scheme's default");
    }
    RingOptions o;
    o.slots = static_cast<std::uint32_t>(slots.value_or(0));
    o.virtual_nodes = static_cast<std::uint32_t>(virtual_nodes.value_or(0));
    o.scheme = scheme;
    if (probing == "linear") o.probing = Probing::linear;
    else if (probing == "quadratic") o.probing = Probing::quadratic;
    else throw std::invalid_argument("probing must be 'linear' or 'quadratic', got '" + probing + "'");
    o.canonical = canonical;
    return o;
}

void bind_ring(py::module_& m) {
    m.def("key_to_request_id", &key_to_request_id, py::arg("key"),
          "The request id for a routing key: a decimal integer below 2**64 is the id "
          "itself, anything else is hashed with XXH3-64 (SPEC section 3).");
    m.def("ring_schemes", &ring_scheme_names, "Names of every hash scheme the ring accepts.");
    m.attr("MAX_WEIGHT") = kMaxWeight;

    py::class_<PyRing>(m, "Ring", R"doc(
A consistent hash ring (SPEC section 2).

The defaults are the assignment's: 512 slots, 9 virtual servers per replica,
H(i) = i^2 + 2i + 17 and Phi(i, j) = i^2 + j^2 + 2j + 25 (mod 512), linear
probing. Each add/remove builds a new immutable ring, as the router does.

Schemes (ring_schemes() lists them) and what slots / virtual_nodes mean;
None or 0 means the scheme's default:

- slot schemes "assignment", "linear", "splitmix64", "xxh3": slots = M
  (default 512), virtual_nodes = K (default floor(log2 M)); at most M // K
  replicas.
- "ketama", "ketama-xxh3": a 64-bit circle; virtual_nodes = points per
  replica (default 2048, chosen from bench/quality.py); slots must be None
  or 0.
  Keys move only to an added / from a removed replica.
- "maglev": Maglev hashing; slots = the lookup table size, a prime (default
  65537); virtual_nodes must be None or 0. Near-perfect balance and O(1) lookup; a
  membership change may move a small fraction of keys between other replicas.

Weights (add(..., weight=w), 1 .. MAX_WEIGHT): ketama gives a replica w times
the points, maglev w turns in its table population, so its share is about
w / sum of weights; slot schemes take weight 1 only (ValueError otherwise).

canonical=True: the ring depends only on its (id, hostname, weight) set, not
on the order replicas joined and left in. Ketama and maglev always are; for
slot schemes every change becomes a fresh build in ascending id order (which
may move a few virtual servers of replicas that stay).
)doc")
        .def(py::init<std::optional<std::int64_t>, std::optional<std::int64_t>,
                      const std::string&, const std::string&, bool>(),
             py::arg("slots") = py::none(), py::arg("virtual_nodes") = py::none(),
             py::arg("scheme") = "assignment", py::arg("probing") = "linear",
             py::arg("canonical") = false,
             "Raises ValueError for an unknown scheme or probing, or sizes the scheme "
             "cannot use (the message names the field).")
        .def("add", &PyRing::add, py::arg("hostname"), py::arg("id") = py::none(),
             py::arg("weight") = 1,
             "Add a replica; returns its server id (the smallest unused one unless given). "
             "Raises ValueError for a taken id or hostname or a weight the scheme refuses, "
             "RingFullError when no room is left.")
        .def("remove", &PyRing::remove, py::arg("replica"),
             "Remove a replica by server id or hostname; KeyError when there is none. "
             "No other virtual server moves.")
        .def("lookup", [](const PyRing& r, const py::int_& id) { return r.lookup(to_request_id(id)); },
             py::arg("request_id"),
             "Hostname of the replica serving request_id. RingEmptyError on an empty ring.")
        .def("lookup_key", &PyRing::lookup_key, py::arg("key"),
             "Hostname of the replica serving a routing key (see key_to_request_id).")
        .def("lookup_many",
             [](const PyRing& r, const ArrayLike& ids) { return r.lookup_many(to_request_ids(ids)); },
             py::arg("request_ids"),
             "Server ids serving each of many request ids (a uint32 numpy array); "
             "runs without the GIL. The ids are any 1-d sequence or array of integers "
             "0 .. 2**64 - 1; negative or non-integer ids are a ValueError.")
        .def("candidates",
             [](const PyRing& r, const py::int_& id, std::size_t n) {
                 return r.candidates(to_request_id(id), n);
             },
             py::arg("request_id"), py::arg("n"),
             "Up to n distinct hostnames in retry order: the owner, then clockwise.")
        .def("slot_of",
             [](const PyRing& r, const py::int_& id) { return r.ring_->slot_of(to_request_id(id)); },
             py::arg("request_id"), "The slot that H maps request_id to.")
        .def("slot_of_many",
             [](const PyRing& r, const ArrayLike& ids) { return r.slot_of_many(to_request_ids(ids)); },
             py::arg("request_ids"),
             "The slot of each of many request ids (a uint64 numpy array); runs without "
             "the GIL. For ketama the slot is the 64-bit position on the circle, for "
             "maglev the table entry.")
        .def("copy", [](const PyRing& r) { return PyRing(r); },
             "An independent handle on the same immutable ring: adding to or removing "
             "from one does not change the other. O(1).")
        .def("__copy__", [](const PyRing& r) { return PyRing(r); })
        .def("slot_table", [](const PyRing& r) { return r.hostnames_of(r.ring_->slot_owners()); },
             "For each slot, the hostname of the virtual server placed there, or None.")
        .def("slot_ids", [](const PyRing& r) { return r.ids_of(r.ring_->slot_owners()); },
             "For each slot, the server id of the virtual server placed there, or 0.")
        .def("serving_ids", [](const PyRing& r) { return r.ids_of(r.ring_->slot_servers()); },
             "For each slot, the server id that serves requests hashed there (0: empty ring).")
        .def_property_readonly("members", [](const PyRing& r) {
                std::vector<std::pair<std::uint32_t, std::string>> v;
                for (const auto& mb : r.ring_->members()) v.emplace_back(mb.id, mb.hostname);
                return v;
            }, "(server id, hostname) pairs in join order.")
        .def_property_readonly("weights", [](const PyRing& r) {
                std::vector<std::uint32_t> v;
                for (const auto& mb : r.ring_->members()) v.push_back(mb.weight);
                return v;
            }, "The weight of each member, parallel to members.")
        .def_property_readonly("weighted", [](const PyRing& r) { return r.ring_->weighted(); },
                               "Whether the scheme honours weights other than 1.")
        .def_property_readonly("canonical",
                               [](const PyRing& r) { return r.ring_->options().canonical; })
        .def_property_readonly("slots", [](const PyRing& r) { return r.ring_->options().slots; })
        .def_property_readonly("virtual_nodes",
                               [](const PyRing& r) { return r.ring_->options().virtual_nodes; })
        .def_property_readonly("scheme", [](const PyRing& r) { return r.ring_->options().scheme; })
        .def_property_readonly("probing",
                               [](const PyRing& r) { return probing_name(r.ring_->options().probing); })
        .def("stats", [](const PyRing& r) {
                const auto s = r.ring_->stats();
                py::dict d;
                d["occupied_slots"] = s.occupied_slots;
                d["memory_bytes"] = s.memory_bytes;
                return d;
            }, "Occupied slots and bytes held by the ring's tables.")
        .def_property_readonly("max_members",
                               [](const PyRing& r) { return r.ring_->max_members(); },
                               "The most replicas this ring can hold (M // K for slot schemes, "
                               "M for maglev).")
        .def("__len__", [](const PyRing& r) { return r.ring_->members().size(); })
        .def("__contains__", [](const PyRing& r, const std::string& h) {
                return r.ring_->index_of(std::string_view(h)) != HashRing::npos;
            })
        .def("__repr__", [](const PyRing& r) {
                return "Ring(slots=" + std::to_string(r.ring_->options().slots) +
                       ", virtual_nodes=" + std::to_string(r.ring_->options().virtual_nodes) +
                       ", scheme='" + r.ring_->options().scheme + "', replicas=" +
                       std::to_string(r.ring_->members().size()) +
                       (r.ring_->options().canonical ? ", canonical=True)" : ")");
            });
}

}  // namespace ringlb::bindings
