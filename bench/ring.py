#!/usr/bin/env python3
"""Benchmark: ns per ring lookup, in C++ and through ringlb.Ring from Python.

    python bench/ring.py [--lookups 20000000] [--n 3]

Builds bench/ring_lookup.cpp with CMake into build-bench/ (once), then prints a
markdown table. Targets (issue 2): < 20 ns per lookup in C++, < 100 ns per key
batched from Python. A benchmark, not a test: numbers vary with the machine.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import ringlb

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build-bench"


def build_cpp_bench() -> Path:
    exe = BUILD / "ringlb-bench-ring"
    subprocess.run(["cmake", "-S", str(ROOT), "-B", str(BUILD), "-G", "Ninja", "-DRINGLB_BENCH=ON",
                    "-DRINGLB_PYTHON=OFF", "-DCMAKE_BUILD_TYPE=Release"],
                   check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["ninja", "-C", str(BUILD), "ringlb-bench-ring"], check=True,
                   stdout=subprocess.DEVNULL)
    return exe


def cpp_ns(exe: Path, scheme: str, n: int, lookups: int) -> float:
    out = subprocess.run([str(exe), scheme, str(n), str(lookups)], check=True, capture_output=True,
                         text=True).stdout
    return float(out.split()[1])


def python_ns(scheme: str, n: int, keys: int) -> tuple[float, float]:
    ring = ringlb.Ring(scheme=scheme)
    for i in range(1, n + 1):
        ring.add(f"Server{i}")
    rng = np.random.default_rng(42)
    ids = rng.integers(100000, 1000000, size=keys, dtype=np.uint64)
    ring.lookup_many(ids[:1000])
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter_ns()
        ring.lookup_many(ids)
        best = min(best, (time.perf_counter_ns() - t0) / keys)
    single = [int(i) for i in ids[:100000]]
    t0 = time.perf_counter_ns()
    for i in single:
        ring.lookup(i)
    one = (time.perf_counter_ns() - t0) / len(single)
    return best, one


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lookups", type=int, default=20_000_000, help="C++ lookups per scheme")
    ap.add_argument("--keys", type=int, default=2_000_000, help="keys per batched Python call")
    ap.add_argument("--n", type=int, default=3, help="replicas on the ring")
    ap.add_argument("--schemes", nargs="*", default=ringlb.ring_schemes())
    args = ap.parse_args()

    exe = build_cpp_bench()
    print(f"ring lookup cost, N = {args.n}, random 6-digit request ids\n")
    print("| scheme | C++ ns/lookup | Python batched ns/key | Python single ns/call |")
    print("|---|---:|---:|---:|")
    for scheme in args.schemes:
        c = cpp_ns(exe, scheme, args.n, args.lookups)
        batched, single = python_ns(scheme, args.n, args.keys)
        print(f"| {scheme} | {c:.1f} | {batched:.1f} | {single:.0f} |")
    print("\ntargets: C++ < 20 ns/lookup, Python batched < 100 ns/key")
    return 0


if __name__ == "__main__":
    sys.exit(main())
