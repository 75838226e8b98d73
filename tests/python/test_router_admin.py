"""The router's admin API against real ringlb-replica processes: GET /rep, POST /add and
DELETE /rm (SPEC section 3: every example and error), the control handler and its errors."""

from __future__ import annotations

import pickle
from collections import Counter

import pytest
from router_support import (
    SERVERS,
    Fleet,
    ReplicaProcess,
    failure,
    make_cluster,
    process_control_plane,
    request,
    running,
)

import ringlb


def rep(router: ringlb.Router) -> dict:
    status, _, body = request(router.port, "GET", "/rep")
    assert status == 200
    return body


# ---------------------------------------------------------------- GET /rep

def test_rep_lists_the_replicas(cluster: ringlb.Router) -> None:
    status, headers, body = request(cluster.port, "GET", "/rep")
    assert status == 200
    assert headers["content-type"] == "application/json"
    assert body == {"message": {"N": 3, "replicas": SERVERS}, "status": "successful"}


def test_rep_counts_replicas_that_are_off_the_ring(cluster: ringlb.Router) -> None:
    assert cluster.set_serving(2, False)
    assert rep(cluster)["message"] == {"N": 3, "replicas": SERVERS}


# ------------------------------------------------------ POST /add, /rm examples

def test_add_example_from_the_spec(cluster: ringlb.Router, fleet: Fleet) -> None:
    status, _, body = request(cluster.port, "POST", "/add",
                              {"n": 4, "hostnames": ["S5", "S4", "S10", "S11"]})
    assert status == 200
    assert body == {"message": {"N": 7, "replicas": SERVERS + ["S5", "S4", "S10", "S11"]},
                    "status": "successful"}
    assert set(fleet.replicas) == set(SERVERS + ["S5", "S4", "S10", "S11"])
    assert all(r["serving"] for r in cluster.replicas())
    # The new replicas serve. (The assignment's H(i) never reaches some
    # replicas, whatever the id: the notebooks measure it. Those it reaches are
    # checked here.)
    reached = 0
    for name in ["S5", "S4", "S10", "S11"]:
        key = next((f"user{k}" for k in range(5000)
                    if cluster.lookup(ringlb.key_to_request_id(f"user{k}")) == name), None)
        if key is None:
            continue
        reached += 1
        status, headers, body = request(cluster.port, "GET", f"/home?id={key}")
        assert status == 200 and headers["x-ringlb-replica"] == name
        assert body["message"].startswith("Hello from Server: ")
    assert reached >= 2


def test_added_replicas_take_traffic_with_a_well_mixed_hash(fleet: Fleet) -> None:
    router = make_cluster(fleet, key="query:id", scheme="splitmix64")
    router.set_control_handler(process_control_plane(router, fleet))
    with running(router):
        status, _, _ = request(router.port, "POST", "/add", {"n": 2, "hostnames": ["S5"]})
        assert status == 200
        seen = Counter(request(router.port, "GET", f"/home?id={100000 + 7919 * k}")[1][
            "x-ringlb-replica"] for k in range(150))
        assert set(seen) == set(SERVERS + ["S5", "Server4"])


def test_add_generates_the_missing_hostnames(cluster: ringlb.Router) -> None:
    status, _, body = request(cluster.port, "POST", "/add", {"n": 3, "hostnames": ["A1"]})
    assert status == 200
    assert body["message"]["replicas"] == SERVERS + ["A1", "Server4", "Server5"]
    status, _, body = request(cluster.port, "POST", "/add", {"n": 1})
    assert body["message"] == {"N": 7, "replicas": SERVERS + ["A1", "Server4", "Server5",
                                                                 "Server6"]}


def test_rm_example_from_the_spec(cluster: ringlb.Router, fleet: Fleet) -> None:
    request(cluster.port, "POST", "/add", {"n": 2, "hostnames": ["S5", "S4"]})
    status, _, body = request(cluster.port, "DELETE", "/rm", {"n": 3, "hostnames": ["S5", "S4"]})
    assert status == 200
    left = body["message"]["replicas"]
    assert body["message"]["N"] == 2 and len(left) == 2
    assert set(left) < set(SERVERS)
    assert set(fleet.replicas) == set(left)  # the removed replicas' processes are gone
    assert [r["hostname"] for r in cluster.replicas()] == left


def test_rm_picks_the_rest_at_random(fleet: Fleet) -> None:
    picked = Counter()
    for _ in range(12):
        router = ringlb.Router(port=0, threads=1)
        calls: list = []
        router.set_control_handler(lambda op, names, calls=calls: calls.append(names))
        for i in range(1, 4):
            router.add_replica(f"Server{i}", "127.0.0.1", 1000 + i)
        with running(router):
            status, _, _ = request(router.port, "DELETE", "/rm", {"n": 1})
            assert status == 200
        picked[calls[0][0]] += 1
    assert len(picked) >= 2  # 12 draws from 3: all the same with probability 3^-11


def test_post_rm_is_accepted(cluster: ringlb.Router) -> None:
    status, _, body = request(cluster.port, "POST", "/rm", {"n": 1, "hostnames": ["Server2"]})
    assert status == 200
    assert body == {"message": {"N": 2, "replicas": ["Server1", "Server3"]},
                    "status": "successful"}


def test_the_handler_gets_the_exact_validated_list(fleet: Fleet) -> None:
    router = make_cluster(fleet)
    calls: list = []
    router.set_control_handler(process_control_plane(router, fleet, calls))
    with running(router):
        request(router.port, "POST", "/add", {"n": 2, "hostnames": ["Web-1.a_b"]})
        request(router.port, "DELETE", "/rm", {"n": 1, "hostnames": ["Web-1.a_b"]})
    assert calls == [("add", ["Web-1.a_b", "Server4"]), ("remove", ["Web-1.a_b"])]


# ------------------------------------------------------------ /add, /rm errors

ADD_ERRORS = [
    (b"not json", "request body is not valid JSON: syntax error"),
    (b"", "request body is not valid JSON: incomplete JSON"),
    (b"[1, 2]", 'request body must be a JSON object like {"n": 1, "hostnames": [...]}'),
    ({"hostnames": ["S1"]}, "'n' is missing"),
    ({"n": "2"}, "'n' must be an integer"),
    ({"n": 1.5}, "'n' must be an integer"),
    ({"n": True}, "'n' must be an integer"),
    ({"n": None}, "'n' must be an integer"),
    ({"n": 0}, "'n' must be a positive integer, got 0"),
    ({"n": -3}, "'n' must be a positive integer, got -3"),
    ({"n": 10**30}, "'n' must be an integer"),
    ({"n": 2**64 - 1}, "'n' must be at most 1000"),
    ({"n": 1001}, "'n' must be at most 1000"),
    ({"n": 1, "hostnames": "S5"}, "'hostnames' must be a list of strings"),
    ({"n": 2, "hostnames": ["S5", 7]}, "'hostnames' must be a list of strings"),
    ({"n": 1, "hostnames": [None]}, "'hostnames' must be a list of strings"),
    ({"n": 1, "hostnames": ["bad name"]},
     "hostname 'bad name' is invalid: it must match ^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"),
    ({"n": 1, "hostnames": ["-lead"]},
     "hostname '-lead' is invalid: it must match ^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"),
    ({"n": 1, "hostnames": [""]},
     "hostname '' is invalid: it must match ^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"),
    ({"n": 1, "hostnames": ["a" * 64]},
     f"hostname '{'a' * 64}' is invalid: it must match ^[A-Za-z0-9][A-Za-z0-9_.-]{{0,62}}$"),
    ({"n": 1, "hostnames": ["Serv\u00e9r"]},
     "hostname 'Serv\u00e9r' is invalid: it must match ^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"),
    ({"n": 2, "hostnames": ["S5", "S5"]}, "hostname 'S5' appears more than once"),
    ({"n": 1, "hostnames": ["Server2"]}, "hostname 'Server2' is already present"),
    ({"n": 1, "hostname": ["S5"]},
     "unknown field 'hostname' (expected 'n', 'hostnames', 'addresses' and 'weights')"),
    ({"n": 2, "hostnames": ["S5", "S4", "S10"]},
     "Length of hostname list is more than newly added instances"),
    ({"n": 54}, "cannot add 54 replicas: the ring has room for 53 more"),
]


@pytest.mark.parametrize(("body", "message"), ADD_ERRORS)
def test_add_rejects_bad_input_and_changes_nothing(fleet: Fleet, body, message: str) -> None:
    router = make_cluster(fleet)
    calls: list = []
    router.set_control_handler(process_control_plane(router, fleet, calls))
    with running(router):
        status, headers, got = request(router.port, "POST", "/add", body)
        assert status == 400
        assert headers["content-type"] == "application/json"
        assert got == failure(message)
        assert rep(router)["message"] == {"N": 3, "replicas": SERVERS}
    assert calls == []


RM_ERRORS = [
    (b"{", "request body is not valid JSON: incomplete JSON"),
    ({"n": 0}, "'n' must be a positive integer, got 0"),
    ({}, "'n' is missing"),
    ({"n": 4}, "cannot remove 4 replicas: only 3 present"),
    ({"n": 1, "hostnames": ["Nope"]}, "hostname 'Nope' is not a replica"),
    ({"n": 2, "hostnames": ["Server1", "Server1"]}, "hostname 'Server1' appears more than once"),
    ({"n": 1, "hostnames": {"a": 1}}, "'hostnames' must be a list of strings"),
    ({"n": 1, "hostnames": ["Server1", "Server2"]},
     "Length of hostname list is more than removable instances"),
]


@pytest.mark.parametrize("method", ["DELETE", "POST"])
@pytest.mark.parametrize(("body", "message"), RM_ERRORS)
def test_rm_rejects_bad_input_and_changes_nothing(fleet: Fleet, body, message: str,
                                                  method: str) -> None:
    router = make_cluster(fleet)
    calls: list = []
    router.set_control_handler(process_control_plane(router, fleet, calls))
    with running(router):
        status, _, got = request(router.port, method, "/rm", body)
        assert (status, got) == (400, failure(message))
        assert rep(router)["message"] == {"N": 3, "replicas": SERVERS}
    assert calls == []


def test_capacity_counts_the_room_left_on_the_ring(fleet: Fleet) -> None:
    # 64 slots, 16 virtual servers each: room for 4 replicas, 3 taken.
    router = make_cluster(fleet, slots=64, virtual_nodes=16)
    router.set_control_handler(process_control_plane(router, fleet))
    with running(router):
        status, _, body = request(router.port, "POST", "/add", {"n": 2})
        assert (status, body) == (400, failure("cannot add 2 replicas: the ring has room for 1 more"))
        status, _, body = request(router.port, "POST", "/add", {"n": 1})
        assert status == 200 and body["message"]["N"] == 4
        status, _, body = request(router.port, "POST", "/add", {"n": 1})
        assert (status, body) == (400, failure("cannot add 1 replicas: the ring has room for 0 more"))


def test_a_replica_off_the_ring_keeps_its_room(fleet: Fleet) -> None:
    router = make_cluster(fleet, slots=64, virtual_nodes=16)
    router.set_control_handler(process_control_plane(router, fleet))
    with running(router):
        router.set_serving(3, False)  # down, waiting for its replacement
        status, _, body = request(router.port, "POST", "/add", {"n": 2})
        assert (status, body) == (400, failure("cannot add 2 replicas: the ring has room for 1 more"))


def test_no_control_handler_is_a_503(fleet: Fleet) -> None:
    router = make_cluster(fleet)
    with running(router):
        for method, path in [("POST", "/add"), ("DELETE", "/rm"), ("POST", "/rm")]:
            status, _, body = request(router.port, method, path, {"n": 1})
            assert status == 503
            assert body == failure(
                "no control plane: this router's replicas are managed from Python")
        router.set_control_handler(lambda op, names: None)
        router.set_control_handler(None)
        assert request(router.port, "POST", "/add", {"n": 1})[0] == 503


def test_control_error_sets_the_status_and_message(fleet: Fleet) -> None:
    router = make_cluster(fleet)

    def refuse(op: str, names: list[str]) -> None:
        raise ringlb.ControlError(507, f"no room to start {names[0]}")

    router.set_control_handler(refuse)
    with running(router):
        status, _, body = request(router.port, "POST", "/add", {"n": 1, "hostnames": ["S9"]})
        assert (status, body) == (507, failure("no room to start S9"))
        assert rep(router)["message"]["N"] == 3


def test_any_other_exception_is_a_500_with_its_text(fleet: Fleet) -> None:
    router = make_cluster(fleet)

    def broken(op: str, names: list[str]) -> None:
        raise OSError("docker daemon went away")

    router.set_control_handler(broken)
    with running(router):
        status, _, body = request(router.port, "DELETE", "/rm", {"n": 1})
        assert (status, body) == (500, failure("OSError: docker daemon went away"))


def test_a_failed_spawn_undoes_the_whole_add(fleet: Fleet, monkeypatch) -> None:
    router = make_cluster(fleet)
    router.set_control_handler(process_control_plane(router, fleet))
    real_start = fleet.start

    def start(hostname: str, server_id: int) -> ReplicaProcess:
        if hostname == "S7":
            raise RuntimeError("image not found")
        return real_start(hostname, server_id)

    monkeypatch.setattr(fleet, "start", start)
    with running(router):
        status, _, body = request(router.port, "POST", "/add",
                                  {"n": 3, "hostnames": ["S6", "S7", "S8"]})
        assert (status, body) == (500, failure("could not start 'S7': image not found"))
        assert rep(router)["message"] == {"N": 3, "replicas": SERVERS}
        assert set(fleet.replicas) == set(SERVERS)


@pytest.mark.parametrize(("method", "path", "allow"), [
    ("POST", "/rep", "GET, HEAD"),
    ("DELETE", "/rep", "GET, HEAD"),
    ("GET", "/add", "POST"),
    ("PUT", "/add", "POST"),
    ("GET", "/rm", "DELETE, POST"),
])
def test_wrong_method_on_admin_paths_is_a_405(cluster: ringlb.Router, method: str, path: str,
                                              allow: str) -> None:
    status, headers, body = request(cluster.port, method, path, b"{}")
    assert status == 405
    assert headers["allow"] == allow
    assert body["status"] == "failure" and body["message"].startswith("<Error> method not allowed")


def test_control_error_is_a_picklable_ringlb_error() -> None:
    e = ringlb.ControlError(409, "busy")
    assert isinstance(e, ringlb.RinglbError)
    assert (e.status, e.message, str(e)) == (409, "busy", "busy")
    back = pickle.loads(pickle.dumps(e))
    assert (type(back), back.status, back.message) == (ringlb.ControlError, 409, "busy")
    for bad in (200, 600, True, "500"):
        with pytest.raises(ValueError, match="between 400 and 599"):
            ringlb.ControlError(bad, "x")
    assert ringlb.exceptions.ControlError is ringlb.ControlError
