"""`benchmarks/run --quick` runs every benchmark end to end (a few iterations, bounded time).

Benchmarks are not timed tests: this proves the script works and its table is complete; the
numbers are reported in benchmarks/RESULTS.md, not asserted here. The peers come from the
`bench` extra, which `make setup` installs (and benchmarks/run installs when it is missing).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.provider, pytest.mark.kernel]


def test_quick_benchmark_prints_every_row(tmp_path):
    out_json, out_png = tmp_path / "results.json", tmp_path / "plot.png"
    result = subprocess.run(
        [str(ROOT / "benchmarks" / "run"), "--quick", "--json", str(out_json),
         "--plot", str(out_png)],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows = {row["number"]: row for row in json.loads(out_json.read_text())["rows"]}
    for number in ("1a", "1b", "1d", "2b", "2c", "3c", "4a", "4b", "4c", "4d", "4e", "4f",
                   "4g", "4h", "4i", "4j", "5c", "5f", "6b", "7a", "7b", "7c", "7f", "7g", "7h",
                   "8a", "8b", "8c", "8d", "8e"):
        assert number in rows, f"row {number} is missing"
        assert rows[number]["samples"], f"row {number} has no samples"
    # Every hub user's callback was timed, and its relay is the end-to-end time minus its own
    # token POST (so it is smaller, and not negative).
    hub_users = len(rows["8b"]["samples"])
    assert hub_users == len(rows["8c"]["samples"]) == len(rows["8d"]["samples"]) >= 3
    for total, post, relay in zip(rows["8b"]["samples"], rows["8c"]["samples"],
                                  rows["8d"]["samples"], strict=True):
        assert 0 < relay < total and abs(total - post - relay) < 1e-6
    # What the suite measures about leaks, lazy imports and hub logins holds even in the quick
    # run.
    for number in ("1d", "7a", "7b", "7c", "7h", "8a"):
        assert rows[number]["met"] is True, rows[number]
    assert out_png.stat().st_size > 1000
    assert "| 4d " in result.stdout and "ratio nbauth / google-auth-oauthlib" in result.stdout
