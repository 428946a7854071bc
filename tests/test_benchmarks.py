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
    for number in ("1a", "1b", "1d", "2b", "2c", "3c", "4a", "4b", "4c", "4d", "4e", "5c",
                   "5f", "6b", "7a", "7b", "7c", "7f", "7g", "7h"):
        assert number in rows, f"row {number} is missing"
        assert rows[number]["samples"], f"row {number} has no samples"
    # What the suite measures about leaks and lazy imports holds even in the quick run.
    for number in ("1d", "7a", "7b", "7c", "7h"):
        assert rows[number]["met"] is True, rows[number]
    assert out_png.stat().st_size > 1000
    assert "| 4d " in result.stdout and "ratio nbauth / google-auth-oauthlib" in result.stdout
