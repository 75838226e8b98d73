"""/metrics, /status, /healthz and /readyz of the admin listener, against a
real router over real replica processes."""

from __future__ import annotations

import time

import pytest
from metrics_support import metrics_router, scrape, total, value
from router_support import Fleet, request, running, send

import ringlb
from ringlb.launcher import Launcher, LauncherConfig

SENT = 90


def test_metrics_count_every_request_sent_by_replica(fleet: Fleet) -> None:
    r = metrics_router(fleet)
    with running(r):
        seen = send(r.port, SENT)
        _, m = scrape(r.admin_port)
        per = r.replica_stats()
    assert total(m, "ringlb_requests_total") == SENT
    # Python reads the same counters.
    for x in per:
        assert x["responses"] == {"1xx": 0, "2xx": seen[x["hostname"]], "3xx": 0, "4xx": 0,
                                  "5xx": 0}
        assert x["share"] == value(m, "ringlb_ring_share", replica=x["hostname"])
        assert x["duration_seconds"] == pytest.approx(
            value(m, "ringlb_request_duration_seconds_sum", replica=x["hostname"]))
    for host in ("Server1", "Server2", "Server3"):
        assert value(m, "ringlb_requests_total", replica=host, code="2xx") == seen[host]
        for code in ("3xx", "4xx", "5xx"):
            assert value(m, "ringlb_requests_total", replica=host, code=code) == 0
        assert value(m, "ringlb_request_duration_seconds_count", replica=host) == seen[host]
        assert value(m, "ringlb_request_duration_seconds_bucket", replica=host, le="+Inf") == seen[host]
        assert value(m, "ringlb_upstream_failures_total", replica=host) == 0
        assert value(m, "ringlb_replica_up", replica=host) == 1
        assert value(m, "ringlb_replica_in_flight", replica=host) == 0
    assert value(m, "ringlb_replicas") == 3
    assert value(m, "ringlb_retries_total") == 0
    assert value(m, "ringlb_membership_changes_total", kind="added") == 3
    assert value(m, "ringlb_build_info", version=ringlb.__version__, scheme="assignment",
                 key="random") == 1
    # Experiment A-1's number: the assignment's ring gives Server1 84 % of the 6-digit ids.
    assert abs(total(m, "ringlb_ring_share") - 1) < 1e-9
    assert 0.83 < value(m, "ringlb_ring_share", replica="Server1") < 0.85


def test_status_lists_replicas_with_their_share_and_counters(fleet: Fleet) -> None:
    r = metrics_router(fleet, key="header:X-User")
    with running(r):
        seen = send(r.port, 12)
        status, headers, body = request(r.admin_port, "GET", "/status")
    assert status == 200 and headers["content-type"] == "application/json"
    assert body["ring"] == {"scheme": "assignment", "slots": 512, "virtual_nodes": 9,
                            "probing": "linear", "canonical": False, "replicas": 3,
                            "capacity": 56}
    assert body["router"]["key"] == "header:X-User"
    assert body["router"]["retries"] == 2
    assert body["router"]["totals"]["proxied"] == 12
    assert body["router"]["totals"]["retries"] == 0
    reps = body["replicas"]
    assert [x["hostname"] for x in reps] == ["Server1", "Server2", "Server3"]
    for x, sid in zip(reps, (1, 2, 3)):
        assert x["id"] == sid
        assert x["state"] == "up"
        assert x["address"] == f"127.0.0.1:{fleet.replicas[x['hostname']].port}"
        assert x["requests"] == x["responses"]["2xx"] == seen[x["hostname"]]
        assert x["failures"] == 0 and x["in_flight"] == 0
        assert x["weight"] == 1
    assert abs(sum(x["share"] for x in reps) - 1) < 1e-9


def test_healthz_and_readyz_follow_the_router_and_the_ring(fleet: Fleet) -> None:
    r = metrics_router(fleet, min_replicas=2)
    with running(r):
        status, _, body = request(r.admin_port, "GET", "/healthz")
        assert (status, body) == (200, {"message": "serving", "status": "successful"})
        assert request(r.admin_port, "GET", "/readyz")[0] == 200
        r.set_serving(1, False)
        assert request(r.admin_port, "GET", "/readyz")[0] == 200  # 2 left: still ready
        r.set_serving(2, False)
        status, _, body = request(r.admin_port, "GET", "/readyz")
        assert status == 503
        assert body == {"message": "<Error> not ready: 1 replicas on the ring, min-replicas is 2",
                        "status": "failure"}
        _, m = scrape(r.admin_port)
        assert value(m, "ringlb_replica_up", replica="Server1") == 0
        assert value(m, "ringlb_ring_share", replica="Server1") == 0
        assert value(m, "ringlb_ring_share", replica="Server3") == 1
        assert value(m, "ringlb_membership_changes_total", kind="down") == 2
        r.set_serving(2, True)
        assert request(r.admin_port, "GET", "/readyz")[0] == 200
        assert request(r.admin_port, "GET", "/healthz")[0] == 200


def test_the_data_port_still_proxies_these_paths(fleet: Fleet) -> None:
    # SPEC §3 unchanged: a path no replica knows is the client's 400, even /metrics.
    r = metrics_router(fleet)
    with running(r):
        for path in ("/metrics", "/status", "/healthz", "/readyz"):
            status, headers, body = request(r.port, "GET", path)
            assert status == 400, path
            assert headers["x-ringlb-replica"].startswith("Server")
            assert body == {"message": f"<Error> '{path}' endpoint does not exist in server "
                                       "replicas", "status": "failure"}
        _, m = scrape(r.admin_port)
    # They reached replicas, which answered 404 (a 400 for the client): counted as 4xx.
    assert total(m, "ringlb_requests_total") == 4
    assert sum(v for (n, labels), v in m.items()
               if n == "ringlb_requests_total" and ("code", "4xx") in labels) == 4


def test_a_scrape_is_not_a_request_and_other_methods_are_refused(fleet: Fleet) -> None:
    r = metrics_router(fleet)
    with running(r):
        for _ in range(3):
            scrape(r.admin_port)
        status, headers, _ = request(r.admin_port, "POST", "/metrics", b"")
        assert status == 405 and headers["allow"] == "GET, HEAD"
        status, headers, body = request(r.admin_port, "HEAD", "/metrics")
        assert status == 200 and body == b"" and int(headers["content-length"]) > 1000
        _, m = scrape(r.admin_port)
    assert total(m, "ringlb_requests_total") == 0


def wait_until(check, timeout: float) -> bool:
    """Polls check() every 50 ms for at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def test_a_launched_cluster_reports_health_round_trips_and_a_replacement(
        proc_cluster: str) -> None:
    config = LauncherConfig(port=0, replicas=3, backend="process", cluster=proc_cluster,
                            threads=2, admin_listen="127.0.0.1:0")
    with Launcher(config) as lb:
        assert lb.router is not None
        admin = lb.router.admin_port
        assert lb.wait_until_whole(5)

        def rtts() -> list[float]:
            _, m = scrape(admin)
            return [v for (n, _), v in m.items() if n == "ringlb_heartbeat_rtt_seconds"]

        assert wait_until(lambda: len(rtts()) == 3, 5)
        assert all(0 < v < 1 for v in rtts())
        _, _, status = request(admin, "GET", "/status")
        assert [x["state"] for x in status["replicas"]] == ["up", "up", "up"]

        lb.kill("Server2")

        def replaced() -> bool:
            _, m = scrape(admin)
            kinds = {k: value(m, "ringlb_membership_changes_total", kind=k)
                     for k in ("down", "moved", "up")}
            return all(n >= 1 for n in kinds.values()) and value(m, "ringlb_replicas") == 3

        assert wait_until(replaced, 10)
        assert lb.wait_until_whole(5)
        assert request(admin, "GET", "/readyz")[0] == 200
        _, m = scrape(admin)
        assert value(m, "ringlb_replica_up", replica="Server2") == 1

        # The router's event log, in /status: the launcher's actions and the heartbeat
        # engine's state changes in one list, oldest first, every one with its times.
        _, _, status = request(admin, "GET", "/status")
        events = status["events"]
        assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)
        assert status["events_recorded"] == events[-1]["seq"] == len(events)
        assert all(e["kind"] in ringlb.EVENT_KINDS for e in events)
        started = [e for e in events if e["kind"] == "started"]
        assert sorted(e["hostname"] for e in started) == ["Server1", "Server2", "Server3"]
        mine = [(e["kind"], e["id"]) for e in events if e["hostname"] == "Server2"
                and e["kind"] in ("killed", "down", "replaced", "up")]
        # Killed, then down, replaced and up again: the replacement starts only once the
        # replica is down, and is up only once it answers.
        assert mine[0] == ("killed", 2) and mine[-1] == ("up", 2), mine
        kinds = [k for k, _ in mine]
        assert kinds.index("down") < kinds.index("replaced") < len(kinds) - 1, kinds
        down = next(e for e in events if e["kind"] == "down")
        assert down["detail"].startswith(("up -> down: ", "suspect -> down: ")), down
        assert all(e["monotonic_seconds"] <= status["monotonic_seconds"] for e in events)
        assert abs(events[-1]["time"] - time.time()) < 60
        # Launcher.events() is the same log, on time.monotonic()'s clock.
        assert [(e["kind"], e["hostname"]) for e in lb.events()[:len(events)]] == [
            (e["kind"], e["hostname"]) for e in events]


def test_recent_events_are_bounded_and_bad_ones_change_nothing(fleet: Fleet) -> None:
    r = metrics_router(fleet)
    with running(r):
        r.record_event("added", 1, "Server1", "127.0.0.1:1")
        r.record_event("stopped", detail="cluster test")
        for bad, message in [
                ({"kind": "exploded"}, "unknown event kind 'exploded'"),
                ({"kind": "added", "id": 0}, "id must be between"),
                ({"kind": "added", "hostname": "bad name!"}, "hostname 'bad name!' must match")]:
            with pytest.raises(ValueError, match=message):
                r.record_event(**bad)
        _, _, status = request(r.admin_port, "GET", "/status")
        assert [(e["seq"], e["kind"], e["id"], e["hostname"], e["detail"])
                for e in status["events"]] == [
            (1, "added", 1, "Server1", "127.0.0.1:1"), (2, "stopped", None, None, "cluster test")]
        assert r.events() == status["events"]
        for k in range(250):
            r.record_event("moved", 2, "Server2", f"move {k}")
        _, _, status = request(r.admin_port, "GET", "/status")
    events = status["events"]
    assert len(events) == 200 and status["events_recorded"] == 252
    assert events[0]["seq"] == 53 and events[-1]["detail"] == "move 249"
