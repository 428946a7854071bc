"""`mypy --strict` on the package; ruff with security (bandit) rules on the whole repository;
no unexplained suppressions."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(*args):
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


def test_mypy_strict():
    result = run("mypy", "--strict", "nbauth")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_with_security_rules():
    result = run("ruff", "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_suppression_says_why():
    for path in (ROOT / "nbauth").rglob("*.py"):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            match = re.search(r"#\s*(noqa|type:\s*ignore)\b(.*)", line)
            if match:
                assert re.search(r"[-—:]\s*\w+", match.group(2)), f"{path.name}:{number}: {line}"
