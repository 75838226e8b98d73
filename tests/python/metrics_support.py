"""Reading the router's /metrics: a parser of the Prometheus text format's
sample lines (enough for the tests; promtool checks the format itself)."""

from __future__ import annotations

import re

import router_support
from router_support import Fleet

import ringlb

Sample = tuple[str, frozenset[tuple[str, str]]]

_LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?')
_UNESCAPE = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}


def parse(text: str) -> dict[Sample, float]:
    """{(name, frozenset of (label, value))): value} for every sample line."""
    out: dict[Sample, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _LINE.match(line)
        assert m, f"not a sample line: {line!r}"
        name, labels, value = m.groups()
        pairs = frozenset(
            (k, re.sub(r'\\[\\"n]', lambda e: _UNESCAPE[e.group(0)], v))
            for k, v in _LABEL.findall(labels or ""))
        out[(name, pairs)] = float(value)
    return out


def value(samples: dict[Sample, float], name: str, **labels: str) -> float:
    """The sample `name` with exactly these labels (KeyError when absent)."""
    return samples[(name, frozenset(labels.items()))]


def total(samples: dict[Sample, float], name: str) -> float:
    """The sum of every sample of `name`, whatever its labels."""
    return sum(v for (n, _), v in samples.items() if n == name)


def scrape(admin_port: int) -> tuple[str, dict[Sample, float]]:
    """GET /metrics on the admin listener: (its text, its samples)."""
    status, headers, body = router_support.request(admin_port, "GET", "/metrics")
    assert status == 200, body
    assert headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    text = body.decode() if isinstance(body, bytes) else str(body)
    return text, parse(text)


def metrics_router(fleet: Fleet, **kwargs) -> ringlb.Router:
    """A router over three replica processes with an admin listener."""
    r = ringlb.Router(port=0, threads=2, admin_listen="127.0.0.1:0", **kwargs)
    for i in range(1, 4):
        r.add_replica(f"Server{i}", "127.0.0.1", fleet.start(f"Server{i}", i).port)
    return r
