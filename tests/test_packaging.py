"""Packaging and Binder files agree with pyproject.toml (no real Binder build runs here)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_pyproject_declares_the_runtime_dependencies():
    names = {re.split(r"[<>=\[ ;]", d, maxsplit=1)[0].lower()
             for d in PYPROJECT["project"]["dependencies"]}
    assert {"ipython", "ipywidgets", "requests", "traitlets", "pyjwt"} <= names


def test_binder_environment_matches_pyproject():
    env = (ROOT / "binder" / "environment.yml").read_text()
    python = re.search(r"python=(\d+)\.(\d+)", env)
    assert python, "binder/environment.yml pins a Python version"
    minimum = re.search(r">=(\d+)\.(\d+)", PYPROJECT["project"]["requires-python"])
    assert tuple(map(int, python.groups())) >= tuple(map(int, minimum.groups()))
    node = re.search(r"nodejs=(\d+)", env)
    assert node, "binder/environment.yml brings Node.js for the demo provider"
    engines = json.loads((ROOT / "provider" / "package.json").read_text()).get("engines", {})
    wanted = re.search(r"(\d+)", engines.get("node", ">=20"))
    assert int(node.group(1)) >= int(wanted.group(1))


def test_binder_post_build_installs_the_package_its_server_extension_and_the_provider():
    post = (ROOT / "binder" / "postBuild").read_text()
    extras = re.search(r'pip install[^\n]*-e "\.\[([a-z,]+)\]"', post)
    assert extras, "postBuild installs this repository with pip"
    assert "server" in extras.group(1).split(","), "the routed callback needs the extension"
    for extra in extras.group(1).split(","):
        assert extra in PYPROJECT["project"]["optional-dependencies"], extra
    assert "nbauth\\.serverext" in post  # the build fails if the extension is not enabled
    assert "npm ci --prefix provider" in post
    assert (ROOT / "provider" / "package-lock.json").exists()


def test_binder_start_points_nbauth_at_the_provider_it_starts():
    start = (ROOT / "binder" / "start").read_text()
    port = re.search(r"server\.mjs --port (\d+) --api-port (\d+)", start)
    assert port
    assert f'AUTH0_DOMAIN="http://127.0.0.1:{port.group(1)}/"' in start
    assert f"127.0.0.1:{port.group(2)}/api/private" in start
    assert "hub/user-redirect/nbauth/callback" in start
    assert 'exec "$@"' in start
    for name in ("postBuild", "start"):
        assert (ROOT / "binder" / name).stat().st_mode & 0o111, f"binder/{name} is executable"


def test_the_server_extension_is_enabled_by_the_installed_drop_in():
    listing = subprocess.run([sys.executable, "-m", "jupyter_server", "extension", "list"],
                             capture_output=True, text=True, timeout=120, check=False)
    text = listing.stdout + listing.stderr
    assert re.search(r"nbauth\.serverext\S*\s+\S*enabled", text), text


def test_wheel_contains_the_package_and_py_typed(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path), str(ROOT)], check=True)
    (wheel,) = tmp_path.glob("nbauth-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "nbauth/py.typed" in names and "nbauth/flow.py" in names
    assert "nbauth/serverext/handlers.py" in names
    assert ("nbauth-0.1.0.data/data/etc/jupyter/jupyter_server_config.d/nbauth.json"
            in names), "the drop-in that enables the server extension on install"
    assert not any(n.startswith(("tests/", "provider/")) for n in names)


def test_committed_notebooks_have_no_outputs():
    for path in (ROOT / "notebooks").glob("*.ipynb"):
        nb = json.loads(path.read_text())
        for cell in nb["cells"]:
            assert not cell.get("outputs"), f"{path.name} is committed with outputs"
            assert cell.get("execution_count") is None
