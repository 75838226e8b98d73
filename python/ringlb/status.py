"""`ringlb status`: the admin listener's /status as a terminal table (issue 14.4).

The router owns the numbers (GET /status on `--admin-listen`); this only fetches
and lays them out, so the table and the JSON never disagree.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from typing import Any

#: Where `ringlb status` looks without --admin: README's example admin listener.
DEFAULT_ADMIN = "http://127.0.0.1:5001"


class StatusError(RuntimeError):
    """/status could not be read; the message says where and why."""


def fetch(admin: str, timeout: float = 5.0) -> dict[str, Any]:
    """GET <admin>/status as a dict. StatusError when it cannot be had."""
    url = admin.rstrip("/") + "/status"
    if not url.startswith(("http://", "https://")):
        url = "http://" + url
    try:
        with urllib.request.urlopen(url, timeout=timeout) as res:
            return json.loads(res.read())
    except urllib.error.HTTPError as e:
        raise StatusError(f"{url} answered {e.code}: is this ringlb's admin listener "
                          f"(--admin-listen)?") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise StatusError(f"cannot reach {url}: {reason} (start `ringlb serve "
                          f"--admin-listen HOST:PORT`, or give --admin)") from None
    except ValueError:
        raise StatusError(f"{url} did not answer JSON: is this ringlb's admin listener?") from None


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f}"


def render(status: dict[str, Any], events: int = 5) -> str:
    """The table `ringlb status` prints, then the router's `events` most recent events
    (oldest of them first, as /status lists them)."""
    ring, router = status["ring"], status["router"]
    totals = router["totals"]
    reps = status["replicas"]
    on_ring = sum(1 for r in reps if r["on_ring"])
    sizes = (f"{ring['slots']} slots, {ring['virtual_nodes']} virtual servers"
             if ring.get("virtual_nodes") else f"{ring['slots']} slots")
    summary = (f"ringlb {router['version']}: {on_ring} of {len(reps)} replicas on the ring "
               f"(capacity {ring['capacity']}); hash {ring['scheme']} ({sizes}), "
               f"key {router['key']}")
    counts = (f"requests {totals['requests']:,} (proxied {totals['proxied']:,}, retries "
              f"{totals['retries']:,}, upstream failures {totals['upstream_failures']:,}, "
              f"errors {totals['errors']:,}); connections {totals['connections_active']:,}")
    lines = [summary, counts, ""]
    head = ["ID", "HOSTNAME", "ADDRESS", "STATE", "RING", "SHARE", "WEIGHT", "REQUESTS", "2XX",
            "4XX", "5XX", "FAILED", "IN FLIGHT", "MEAN MS", "HEARTBEAT MS"]
    rows = [head]
    for r in reps:
        resp = r["responses"]
        mean = r["duration_seconds_sum"] / r["requests"] if r["requests"] else None
        # A replica given a DNS name: the name, and where it resolved to.
        where = (f"{r['name']} ({r['address'] or 'resolving'})" if r.get("name")
                 else r["address"] or "-")
        rows.append([str(r["id"]), r["hostname"], where, r["state"],
                     "yes" if r["on_ring"] else "no", f"{r['share']:.1%}", str(r.get("weight", 1)),
                     f"{r['requests']:,}", f"{resp['2xx']:,}", f"{resp['4xx']:,}",
                     f"{resp['5xx']:,}", f"{r['failures']:,}", f"{r['in_flight']:,}", _ms(mean),
                     _ms(r.get("heartbeat_rtt_seconds"))])
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    numeric = set(range(5, len(head)))
    for row in rows:
        cells = [c.rjust(w) if i in numeric else c.ljust(w)
                 for i, (c, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(cells).rstrip())
    changes = status.get("membership_changes") or {}
    if changes:
        lines += ["", "membership changes: " + ", ".join(f"{k} {v}" for k, v in changes.items())]
    recent = status.get("events", [])[-events:] if events > 0 else []
    if recent:
        recorded = status.get("events_recorded", "?")
        lines += ["", f"recent events (last {len(recent)} of {recorded}, newest last):"]
        now = status.get("monotonic_seconds")
        for e in recent:
            who = e["hostname"] or "-"
            if e["id"] is not None:
                who += f" (id {e['id']})"
            ago = f"{now - e['monotonic_seconds']:8.1f} s ago" if now is not None else ""
            lines.append(f"  {time.strftime('%H:%M:%S', time.localtime(e['time']))} {ago}  "
                         f"{e['kind']:<8}  {who}{': ' + e['detail'] if e['detail'] else ''}")
    return "\n".join(lines)


def admin_from_env() -> str:
    """--admin's default: RINGLB_ADMIN_URL, else DEFAULT_ADMIN."""
    return os.environ.get("RINGLB_ADMIN_URL", DEFAULT_ADMIN)
