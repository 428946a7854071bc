"""httpx, keyring and jupyter_core are optional: nbauth works without them (a fresh
interpreter where importing them fails, as if they were not installed)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import sys
    for name in ("httpx", "keyring", "jupyter_core"):
        sys.modules[name] = None  # "import httpx" now raises ImportError
    import nbauth
    from nbauth.credentials import Credentials, Identity
    from nbauth.tokenstore import FileStore, default_store, store_directory
    from nbauth.tokens import TokenResponse

    assert isinstance(default_store(), FileStore)
    assert str(store_directory()).endswith("/jupyter/nbauth"), store_directory()
    creds = Credentials(TokenResponse("at", "Bearer", None, None), identity=Identity(),
                        issuer="https://i.example/", client_id="c",
                        token_endpoint="https://i.example/oauth/token")
    try:
        creds.httpx_auth()
    except nbauth.ConfigurationError as exc:
        print("refused:", exc)
""")


def test_nbauth_works_without_the_optional_packages(tmp_path):
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                            timeout=60, env=env)
    assert result.returncode == 0, result.stderr
    assert "refused: httpx_auth() needs the optional httpx package: pip install httpx" in \
        result.stdout
