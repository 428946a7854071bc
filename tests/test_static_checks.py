"""`mypy --strict` on the package; ruff with security (bandit) rules on the whole repository;
no unexplained suppressions."""

from __future__ import annotations

import io
import re
import subprocess
import sys
import tokenize
from pathlib import Path

import pytest

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


# -- suppressions ---------------------------------------------------------------------------
#: A noqa comment: its codes (S603, B009), then the rest of the comment.
_NOQA = re.compile(r"#\s*noqa\b(?P<rest>.*)", re.IGNORECASE)
_NOQA_CODES = re.compile(r":\s*[A-Z]+[0-9]+(?:\s*,\s*[A-Z]+[0-9]+)*(?P<rest>.*)")
#: A type-ignore comment: its error codes ([attr-defined, misc]), then the rest.
_TYPE_IGNORE = re.compile(r"#\s*type:\s*ignore\b(?P<rest>.*)")
_TYPE_IGNORE_CODES = re.compile(r"\[\s*[a-z][a-z-]*(?:\s*,\s*[a-z][a-z-]*)*\s*\](?P<rest>.*)")
#: A reason: a separator (`-`, `—`, `:` or a second `#`), then words.
_REASON = re.compile(r"\s*(?:[-—:]|#)\s*.*?[A-Za-z]{2,}")
#: Comments that switch a checker off for a whole file, or bandit's own marker.
_FILE_LEVEL = re.compile(r"#\s*(?:ruff\s*:\s*noqa|flake8\s*:\s*noqa|mypy\s*:|pyright\s*:|nosec\b"
                         r"|pylint\s*:\s*disable)", re.IGNORECASE)


def suppression_problem(comment: str) -> str | None:
    """Why this comment is an unacceptable suppression, or None if it is fine (or none)."""
    if _FILE_LEVEL.search(comment):
        return "a whole-file or bandit suppression (say why per line instead)"
    if match := _NOQA.search(comment):
        codes = _NOQA_CODES.match(match["rest"])
        if codes is None:
            return "a blanket noqa (name the codes)"
        if not _REASON.match(codes["rest"]):
            return "a noqa without a reason after its codes"
    if match := _TYPE_IGNORE.search(comment):
        codes = _TYPE_IGNORE_CODES.match(match["rest"])
        if codes is None:
            return "a blanket type: ignore (name the error codes)"
        if not _REASON.match(codes["rest"]):
            return "a type: ignore without a reason after its codes"
    return None


def unexplained_suppressions(source: str) -> list[tuple[int, str, str]]:
    """(line, comment, problem) for every suppression comment in `source` that does not say why.

    Only real comments count (tokenize), not text inside strings.
    """
    problems = []
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            problem = suppression_problem(token.string)
            if problem:
                problems.append((token.start[0], token.string, problem))
    return problems


def test_every_suppression_in_the_package_says_why():
    files = sorted((ROOT / "nbauth").rglob("*.py"))
    assert len(files) > 20
    found = [f"{path.relative_to(ROOT)}:{line}: {comment}  ({problem})"
             for path in files
             for line, comment, problem in unexplained_suppressions(path.read_text())]
    assert found == []


@pytest.mark.parametrize("line", [
    "x = 1  # noqa",
    "x = 1  # NOQA",
    "x = 1  # noqa: S603",
    "x = 1  # noqa:S603",
    "x = 1  # noqa: S603, B009",
    "x = 1  # noqa: S603 -",
    "x = 1  # noqa: S603 - ",
    "x = 1  # noqa - because",
    "x = 1  # noqa: S603 why",  # no separator: is `why` a code or a reason?
    "x = f()  # type: ignore",
    "x = f()  # type: ignore[attr-defined]",
    "x = f()  # type: ignore[attr-defined, misc]",
    "x = f()  # type: ignore[attr-defined]  #",
    "x = f()  # type: ignore - because",
    "# ruff: noqa",
    "# ruff: noqa: E501 - the whole file",
    "# flake8: noqa",
    "# mypy: ignore-errors",
    "# mypy: disable-error-code=attr-defined",
    "x = run(cmd)  # nosec",
    "x = run(cmd)  # nosec B603 - our own interpreter",
    "x = 1  # pylint: disable=all",
    "x = 1  # why not  # noqa: E501",
])
def test_an_unexplained_suppression_is_refused(line):
    assert len(unexplained_suppressions(line + "\n")) == 1


@pytest.mark.parametrize("line", [
    "x = 1  # noqa: S603 - this interpreter, our own probe",
    "x = 1  # noqa: S603,B009 — both explained",
    "x = 1  # noqa: S105: a variable name, not a secret",
    "x = f()  # type: ignore[attr-defined]  # untyped library",
    "x = f()  # type: ignore[attr-defined, misc] - untyped library",
    's = "# noqa"  # a string, not a suppression',
    "x = 1  # a plain comment about noqa-free code",
])
def test_an_explained_suppression_passes(line):
    assert unexplained_suppressions(line + "\n") == []
