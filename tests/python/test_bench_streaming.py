"""bench/streaming.py end to end, small: its origin, each proxy it can find, both
directions, and the table it prints. The benchmark's real numbers come from a
quiet machine and 1 GiB bodies (README); this checks that it measures what it says."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.mark.skipif(not shutil.which("nginx"), reason="the origin is Debian's nginx")
def test_streaming_bench_moves_both_ways_through_ringlb(tmp_path: Path) -> None:
    targets = ["direct", "ringlb"] + [t for t in ("haproxy", "nginx") if shutil.which(t)]
    out = subprocess.run(
        [sys.executable, str(BENCH / "streaming.py"), "--mib", "64", "--rounds", "1",
         "--targets", ",".join(targets), "--json", str(tmp_path / "rows.json")],
        capture_output=True, text=True, timeout=300, cwd=BENCH, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    rows = json.loads((tmp_path / "rows.json").read_text())
    assert {(r["target"], r["direction"]) for r in rows} == {
        (t, d) for t in targets for d in ("download", "upload")}
    for r in rows:
        assert r["mb_per_s"] > 1, r
        # The core curl and the origin share was busy moving the bytes (64 MiB take it
        # tens of clock ticks); a proxy's own CPU is counted, direct has none.
        assert r["load_core_s_per_gib"] > 0, r
        assert (r["proxy_cpu_s_per_gib"] is None) == (r["target"] == "direct"), r
        if r["target"] == "ringlb":
            # One 64 KiB window, not the 64 MiB body.
            assert r["rss_growth_mb"] < 16, r
    assert "| ringlb | upload |" in out.stdout
