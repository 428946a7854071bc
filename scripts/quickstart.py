"""Run notebooks/quickstart.ipynb headlessly against the bundled provider — the README's demo.

A real IPython kernel executes the notebook; `%auth0_login` opens the login URL with Python's
`webbrowser`, which $BROWSER points at a scripted person (provider/scripted_user.py) who signs
in on the provider's pages and lets the redirect reach nbauth's loopback listener. Nothing in
nbauth is mocked. The API's answer is printed at the end.

    python scripts/quickstart.py [--output artifacts/quickstart.executed.ipynb]
"""

from __future__ import annotations

import argparse
import os
import stat
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "notebooks" / "quickstart.ipynb"
sys.path.insert(0, str(ROOT / "provider"))


@contextmanager
def scripted_browser(record_urls: Path | None = None) -> Iterator[str]:
    """Yield a path usable as $BROWSER: a script that completes the login as the demo user."""
    with tempfile.TemporaryDirectory(prefix="nbauth-browser-") as tmp:
        script = Path(tmp) / "scripted-browser"
        record = f'printf "%s\\n" "$1" >> "{record_urls}"\n' if record_urls else ""
        script.write_text(
            "#!/bin/sh\n" + record
            + f'exec "{sys.executable}" "{ROOT / "provider" / "scripted_user.py"}" "$@"\n'
        )
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
        yield str(script)


def demo_environment(info: Any, browser: str) -> dict[str, str]:
    """What the notebook's kernel needs: provider settings as a user would export them."""
    return {
        "AUTH0_DOMAIN": info.issuer,
        "AUTH0_CLIENT_ID": info.client_id,
        "AUTH0_AUDIENCE": info.audience,
        "NBAUTH_DEMO_API": info.api_url,
        "NBAUTH_SCOPE": "openid profile email offline_access read:messages",
        # The scripted person runs on this machine, so the kernel is local to its "browser" even
        # when this runs in a JupyterHub or Binder terminal: loopback, and open the browser.
        "NBAUTH_CALLBACK": "loopback",
        "JUPYTERHUB_SERVICE_PREFIX": "",
        "BINDER_SERVICE_HOST": "",
        "BROWSER": browser,
    }


def execute_notebook(path: Path, env: Mapping[str, str], *, extra_cells: list[str] = (),
                     timeout: int = 120) -> Any:
    """Execute a notebook in a fresh kernel with `env` added to its environment."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    for source in extra_cells:
        nb.cells.append(nbformat.v4.new_code_cell(source))
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        NotebookClient(nb, timeout=timeout, kernel_name="python3",
                       resources={"metadata": {"path": str(path.parent)}}).execute()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return nb


def cell_text(cell: Any) -> str:
    """All text a cell shows: streams, plain-text results, errors."""
    parts = []
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream":
            parts.append(output.get("text", ""))
        elif "data" in output:
            text = output["data"].get("text/plain", "")
            parts.append(text if not text or text.endswith("\n") else text + "\n")
        elif output.get("output_type") == "error":
            parts.append(f"{output.get('ename')}: {output.get('evalue')}")
    return "".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path,
                        default=ROOT / "artifacts" / "quickstart.executed.ipynb",
                        help="where to save the executed notebook")
    args = parser.parse_args(argv)

    import nbformat
    from devprovider import running_provider

    print("Starting the local Auth0-compatible provider (node oidc-provider on 127.0.0.1)…")
    with running_provider() as info, scripted_browser() as browser:
        print(f"  issuer {info.issuer}   API {info.api_url}")
        print(f"Running {QUICKSTART.relative_to(ROOT)} in a real IPython kernel…")
        nb = execute_notebook(QUICKSTART, demo_environment(info, browser))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, args.output)
    for cell in nb.cells:
        if cell.cell_type == "code":
            print(f"\nIn  : {cell.source.strip()}")
            text = cell_text(cell).strip()
            if text:
                print("Out : " + text.replace("\n", "\n      "))
    print(f"\nExecuted notebook saved to {args.output}")
    answers = [c for c in nb.cells if "api_answer" in c.source]
    if not answers or "Hello from the nbauth demo API" not in cell_text(answers[-1]):
        print("The API did not answer as expected.", file=sys.stderr)
        return 1
    print("The notebook logged in with Authorization Code + PKCE and the API accepted the token.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
