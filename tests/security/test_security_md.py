"""SECURITY.md names the tests behind every property; each name must be a test pytest collects.

A reference is a backticked pytest node id: `tests/test_x.py::test_y`, `sec/…` for
`tests/security/…`, `tests/test_x.py::TestClass::test_y`, `…::test_y[case]`, or a file alone.
Two shorthands continue the reference before them: `::test_z` (same file) and `[case]` (same
test, another parameter). Any reference pytest does not collect fails this test, so a renamed,
moved or mistyped test cannot leave the document pointing at nothing.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SECURITY_MD = ROOT / "SECURITY.md"

_SPAN = re.compile(r"`([^`\n]+)`")
_NODE_PART = r"[A-Za-z_]\w*(?:\[[^\]`]+\])?"
_FILE_REF = re.compile(rf"(?P<file>(?:tests|sec)/[\w/]+\.py)(?P<node>(?:::{_NODE_PART})*)")
_SAME_FILE = re.compile(rf"(?P<node>(?:::{_NODE_PART})+)")
_SAME_TEST = re.compile(r"\[[^\]`]+\]")


def references(text: str) -> list[str]:
    """Every test reference in `text`, shorthands resolved, in document order."""
    found: list[str] = []
    file = test = None
    for span in _SPAN.findall(text):
        span = span.strip()
        if match := _FILE_REF.fullmatch(span):
            file = re.sub(r"^sec/", "tests/security/", match["file"])
            test = file + match["node"] if match["node"] else None
            found.append(test or file)
        elif (match := _SAME_FILE.fullmatch(span)) and file is not None:
            test = file + match["node"]
            found.append(test)
        elif _SAME_TEST.fullmatch(span) and test is not None:
            test = test.split("[", 1)[0] + span
            found.append(test)
    return found


def is_collected(reference: str, collected: set[str]) -> bool:
    """A node id pytest collected, a parametrized test's base name, or a file/class holding
    collected tests. `test[case]` also names a case whose generated id pytest built from
    several parameters joined by `-` (`test[case-payload2-issuer]`): the case is the first."""
    if reference in collected or any(
            node.startswith((reference + "[", reference + "::")) for node in collected):
        return True
    return reference.endswith("]") and any(
        node.startswith(reference[:-1] + "-") for node in collected)


@pytest.fixture(scope="module")
def collected() -> set[str]:
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
         "tests"],
        cwd=ROOT, capture_output=True, text=True, timeout=180,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    nodes = {line.strip() for line in result.stdout.splitlines() if "::" in line}
    assert len(nodes) > 100, result.stdout[-3000:]
    return nodes


def test_every_test_security_md_names_is_collected_by_pytest(collected: set[str]) -> None:
    refs = references(SECURITY_MD.read_text(encoding="utf-8"))
    assert len(refs) > 100  # the coverage table is there and was parsed
    missing = [ref for ref in dict.fromkeys(refs) if not is_collected(ref, collected)]
    assert missing == [], "SECURITY.md names tests pytest does not collect:\n" + "\n".join(missing)


def test_shorthands_continue_the_reference_before_them() -> None:
    text = ("`tests/test_a.py::test_one`, `::test_two`, `[case]`, `sec/test_b.py::TestK::t[x]`, "
            "`[y]`, `::TestK::u`, `sec/test_c.py` (a file), `hmac.compare_digest`, `:: not`")
    assert references(text) == [
        "tests/test_a.py::test_one", "tests/test_a.py::test_two",
        "tests/test_a.py::test_two[case]", "tests/security/test_b.py::TestK::t[x]",
        "tests/security/test_b.py::TestK::t[y]", "tests/security/test_b.py::TestK::u",
        "tests/security/test_c.py",
    ]


def test_a_wrong_reference_is_reported() -> None:
    collected = {"tests/test_a.py::TestK::test_one", "tests/test_a.py::test_p[x]",
                 "tests/test_a.py::test_q[case-payload0-why]"}
    assert is_collected("tests/test_a.py::TestK::test_one", collected)
    assert is_collected("tests/test_a.py::test_p", collected)  # every parameter
    assert is_collected("tests/test_a.py::test_q[case]", collected)  # the case, first part
    assert not is_collected("tests/test_a.py::test_q[cas]", collected)
    assert is_collected("tests/test_a.py", collected)
    assert not is_collected("tests/test_a.py::test_one", collected)  # the class is missing
    assert not is_collected("tests/test_a.py::test_p[y]", collected)
    assert not is_collected("tests/test_a.py::test_o", collected)  # not a prefix match
