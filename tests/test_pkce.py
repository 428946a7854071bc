"""RFC 7636: verifier shape, S256 only, the Appendix B vector (S-01, S-02, S-03)."""

from __future__ import annotations

import ast
import base64
import re
from pathlib import Path

import pytest

from nbauth.pkce import CODE_CHALLENGE_METHOD, Pkce, generate_code_verifier, s256_challenge

APPENDIX_B_OCTETS = bytes([
    116, 24, 223, 180, 151, 153, 224, 37, 79, 250, 96, 125, 216, 173, 187, 186, 22, 212, 37, 77,
    105, 214, 191, 240, 91, 88, 5, 88, 83, 132, 141, 121,
])
APPENDIX_B_VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
APPENDIX_B_CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_appendix_b_challenge():
    assert s256_challenge(APPENDIX_B_VERIFIER) == APPENDIX_B_CHALLENGE


def test_appendix_b_verifier_is_base64url_of_its_octets():
    assert base64.urlsafe_b64encode(APPENDIX_B_OCTETS).rstrip(b"=").decode() == APPENDIX_B_VERIFIER


def test_verifiers_have_the_rfc_shape_and_do_not_repeat():
    shape = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
    seen = set()
    for _ in range(10_000):
        verifier = generate_code_verifier()
        assert shape.fullmatch(verifier) and "=" not in verifier
        seen.add(verifier)
    assert len(seen) == 10_000


@pytest.mark.parametrize("nbytes,length", [(32, 43), (96, 128)])
def test_verifier_length_bounds(nbytes, length):
    assert len(generate_code_verifier(nbytes)) == length


@pytest.mark.parametrize("nbytes", [31, 97])
def test_verifier_outside_bounds_is_refused(nbytes):
    with pytest.raises(ValueError):
        generate_code_verifier(nbytes)


@pytest.mark.parametrize("bad", ["short", "x" * 129, "a" * 42 + "=", "a" * 42 + " "])
def test_challenge_refuses_malformed_verifiers(bad):
    with pytest.raises(ValueError):
        s256_challenge(bad)


def test_only_s256_exists():
    assert CODE_CHALLENGE_METHOD == "S256"
    assert Pkce().method == "S256"
    for path in (Path(__file__).parents[1] / "nbauth").rglob("*.py"):
        literals = {n.value for n in ast.walk(ast.parse(path.read_text()))
                    if isinstance(n, ast.Constant) and isinstance(n.value, str)}
        assert "plain" not in literals, path


def test_pkce_pair_is_bound_and_never_shown():
    pair = Pkce()
    assert pair.challenge == s256_challenge(pair.verifier)
    assert pair.verifier not in repr(pair)
    import pickle

    with pytest.raises(TypeError):
        pickle.dumps(pair)


def test_package_never_imports_random():
    for path in (Path(__file__).parents[1] / "nbauth").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                assert all(alias.name != "random" for alias in node.names), path
            if isinstance(node, ast.ImportFrom):
                assert node.module != "random", path
