#!/usr/bin/env python3
"""Distribution quality of every hash scheme, as a README-ready markdown table.

For each scheme in ``ringlb.ring_schemes()`` and N = 2..6 and 50 replicas
(ids 1..N), with 10**6 request ids of each kind:

- max/mean of the per-replica loads for the assignment's random 6-digit ids
  (100000-999999) and for uniform random 64-bit keys, next to the floor a
  perfect hash would show on the same ids (sampling noise, see
  ``ringlb.quality.ideal_max_over_mean``);
- on the 64-bit keys: coefficient of variation, keys moved when replica N+1
  joins (ideal 1/(N+1)) and when one replica leaves (mean over up to 8
  removals, ideal 1/N), the largest fraction moved between replicas that
  stayed, heap memory, build time for N replicas, time of one join;
- ns per lookup: ``Ring.lookup_many`` over the 10**6 64-bit keys (C++ loop,
  GIL released) divided by the count, best of 9 passes.

Then two short tables: weighted replicas (``ringlb.quality.weight_fit``: the
largest relative deviation of a replica's share of the 64-bit keys from
weight / sum of weights, for the schemes that take weights), and canonical
placement (issue 15.1) of the slot schemes: the keys moved between replicas
that stay on one join or leave, in canonical placement against SPEC §2's join
order (0 by construction).

Usage: ``python bench/quality.py [--keys 1000000] [--seed 0] [--json out.json]``
(about a minute). Numbers on a shared machine are noisy; the balance and
disruption columns are exact for the given seed.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time

import ringlb
from ringlb import quality

REPLICAS = (2, 3, 4, 5, 6, 50)
SLOT_SCHEMES = ("assignment", "linear", "splitmix64", "xxh3")
WEIGHTED_SCHEMES = ("ketama", "ketama-xxh3", "maglev")
#: Weight mixes of the weights table: a small spread, a wide one, and one heavy
#: replica among many light ones.
WEIGHT_MIXES = ((1, 2, 3, 4), (1, 1, 8), (16,) + (1,) * 15)
CANONICAL_REPLICAS = (3, 6, 20, 50)


def fmt_bytes(n: int) -> str:
    """Bytes in B / KB / MB with three significant digits."""
    if n < 1024:
        return f"{n} B"
    if n < 1024 * 1024:
        return f"{n / 1024:.3g} KB"
    return f"{n / 1024 / 1024:.3g} MB"


def fmt_seconds(s: float) -> str:
    """Seconds as µs or ms."""
    return f"{s * 1e6:.0f} µs" if s < 1e-3 else f"{s * 1e3:.1f} ms"


def fmt_moved(frac: float, ideal: float) -> str:
    """A moved fraction with its ratio to the ideal."""
    return f"{frac:.4f} ({frac / ideal:.2f}×)"


def main(argv: list[str] | None = None) -> int:
    """Measure every scheme and print the markdown report; returns the exit code."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keys", type=int, default=1_000_000, help="request ids per kind")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random ids")
    ap.add_argument("--repeats", type=int, default=9,
                    help="timed lookup passes per configuration; the best counts")
    ap.add_argument("--json", help="also write every measurement to this JSON file")
    ap.add_argument("--schemes", nargs="*", default=None, help="default: ring_schemes()")
    args = ap.parse_args(argv)

    schemes = args.schemes or ringlb.ring_schemes()
    six = quality.request_ids("6-digit", args.keys, args.seed)
    wide = quality.request_ids("64-bit", args.keys, args.seed + 1)
    started = time.perf_counter()

    print(f"ringlb {ringlb.__version__}, {platform.machine()}, Python "
          f"{platform.python_version()}; {args.keys:,} keys of each kind, seed {args.seed}.")
    print()
    print("| scheme | N | max/mean 6-digit | max/mean 64-bit | CV 64-bit | moved on join "
          "(÷ 1/(N+1)) | moved on leave (÷ 1/N) | moved between stayers | memory | build | "
          "one join | ns/lookup |")
    print("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    results = []
    for n in REPLICAS:
        print(f"| *perfect hash* | {n} | {quality.ideal_max_over_mean(n, six):.4f} | "
              f"{quality.ideal_max_over_mean(n, wide):.4f} | | {1 / (n + 1):.4f} | "
              f"{1 / n:.4f} | 0 | | | | |")
        for scheme in schemes:
            q = quality.measure(scheme, n, wide, seed=args.seed, lookup_repeats=args.repeats)
            six_max, six_cv = quality.balance(quality.build_ring(scheme, n), six)
            results.append({**q.as_dict(), "key_kind": "64-bit",
                            "max_over_mean_6digit": six_max, "cv_6digit": six_cv})
            print(f"| {scheme} | {n} | {six_max:.4f} | {q.max_over_mean:.4f} | {q.cv:.4f} | "
                  f"{fmt_moved(q.moved_on_add, q.ideal_moved_on_add)} | "
                  f"{fmt_moved(q.moved_on_remove, q.ideal_moved_on_remove)} | "
                  f"{q.stayers_moved:.4f} | {fmt_bytes(q.memory_bytes)} | "
                  f"{fmt_seconds(q.build_seconds)} | {fmt_seconds(q.change_seconds)} | "
                  f"{q.ns_per_lookup:.1f} |")
            sys.stdout.flush()

    print()
    print("Weighted replicas: largest |share / (weight / sum of weights) - 1| over the "
          "replicas, 64-bit keys:")
    print()
    print("| scheme | weights | max deviation | shares |")
    print("|---|---|--:|---|")
    for scheme in (s for s in WEIGHTED_SCHEMES if s in schemes):
        for mix in WEIGHT_MIXES:
            fit = quality.weight_fit(scheme, mix, wide)
            shown = (", ".join(str(w) for w in mix) if len(mix) <= 4
                     else f"{mix[0]}, 1 × {len(mix) - 1}")
            shares = ", ".join(f"{x:.3f}" for x in fit.shares[:4])
            if len(mix) > 4:
                shares += " …"
            results.append({"weight_fit": scheme, "weights": list(mix),
                            "max_deviation": fit.max_deviation, "shares": list(fit.shares)})
            print(f"| {scheme} | {shown} | {fit.max_deviation:.4f} | {shares} |")
    print()
    print("Canonical placement of the slot schemes (a fresh build in ascending id order on "
          "every change): the largest fraction of 64-bit keys moved between replicas that "
          "stay, over one join and up to 8 leaves (join order: 0):")
    print()
    print("| scheme | " + " | ".join(f"N = {n}" for n in CANONICAL_REPLICAS) + " |")
    print("|---|" + "--:|" * len(CANONICAL_REPLICAS))
    for scheme in (s for s in SLOT_SCHEMES if s in schemes):
        cells = []
        for n in CANONICAL_REPLICAS:
            q = quality.measure(scheme, n, wide, lookup_repeats=1, canonical=True)
            results.append({**q.as_dict(), "key_kind": "64-bit"})
            cells.append(f"{q.stayers_moved:.4f}")
        print(f"| {scheme} | " + " | ".join(cells) + " |")
    print()
    print("Slots that H reaches with the 6-digit ids (of the ring's M):")
    print()
    print("| scheme | slots reached | M |")
    print("|---|--:|--:|")
    for scheme in (s for s in SLOT_SCHEMES if s in schemes):
        ring = ringlb.Ring(scheme=scheme)
        print(f"| {scheme} | {quality.reachable_slots(scheme, six)} | {ring.slots} |")
    print()
    print(f"({time.perf_counter() - started:.0f} s)")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"keys": args.keys, "seed": args.seed, "results": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
