"""Proof Key for Code Exchange with the S256 method (RFC 7636).

https://www.rfc-editor.org/rfc/rfc7636 — only S256 exists here: "Clients MUST NOT downgrade to
plain after trying the S256 method" (§7.2), so there is no plain method to downgrade to.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from dataclasses import dataclass, field

__all__ = ["CODE_CHALLENGE_METHOD", "Pkce", "generate_code_verifier", "s256_challenge"]

CODE_CHALLENGE_METHOD = "S256"

# §4.1: code-verifier = 43*128unreserved, unreserved = ALPHA / DIGIT / "-" / "." / "_" / "~"
_VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def generate_code_verifier(nbytes: int = 32) -> str:
    """Return a fresh code verifier: base64url of `nbytes` random octets (§4.1).

    32 octets (the default, as the RFC recommends) give 43 characters and 256 bits.
    """
    if not 32 <= nbytes <= 96:
        raise ValueError("nbytes must be between 32 and 96 to give a 43–128 character verifier")
    return _b64url(secrets.token_bytes(nbytes))


def s256_challenge(verifier: str) -> str:
    """Return BASE64URL(SHA256(ASCII(verifier))) (§4.2)."""
    if not _VERIFIER.fullmatch(verifier):
        raise ValueError("a code verifier is 43–128 characters of [A-Za-z0-9-._~] (RFC 7636 §4.1)")
    return _b64url(hashlib.sha256(verifier.encode("ascii")).digest())


@dataclass(frozen=True)
class Pkce:
    """A verifier and its S256 challenge; the verifier never leaves the process."""

    verifier: str = field(default_factory=generate_code_verifier, repr=False)

    @property
    def challenge(self) -> str:
        return s256_challenge(self.verifier)

    method = CODE_CHALLENGE_METHOD

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("PKCE verifiers are not picklable: they must not be written to disk")
