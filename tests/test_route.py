"""Choosing the callback route, the pending-login registry and the post-login link (pure logic)."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from nbauth.errors import ConfigurationError, InsecureTransportError
from nbauth.route import choose_route
from nbauth.serverext import MARKER_PREFIX
from nbauth.serverext.nexturl import safe_next
from nbauth.serverext.registry import Registry

HUB = {"JUPYTERHUB_SERVICE_PREFIX": "/user/alice/", "JUPYTERHUB_BASE_URL": "/",
       "JUPYTERHUB_USER": "alice"}


def running_extension(directory: Path, base_url: str) -> Path:
    """What the server extension leaves when it runs (a marker naming this live process)."""
    from nbauth.serverext import _write_marker

    directory.mkdir(mode=0o700, exist_ok=True)
    directory.chmod(0o700)
    _write_marker(directory, base_url)
    return directory


def test_local_sessions_use_loopback(tmp_path: Path) -> None:
    assert choose_route("auto", environ={}, registry_dir=tmp_path).mode == "loopback"


def test_hub_uses_the_hub_wide_callback(tmp_path: Path) -> None:
    directory = running_extension(tmp_path / "r", "/user/alice/")
    route = choose_route("auto", public_url="https://hub.example.org", environ=HUB,
                         registry_dir=directory)
    assert route.mode == "jupyter"
    assert route.redirect_uri == "https://hub.example.org/hub/user-redirect/nbauth/callback"
    assert route.start_link("abc") == "https://hub.example.org/user/alice/nbauth/start?key=abc"
    assert route.redirect_uri in route.reason


def test_hub_base_url_and_the_hubs_own_public_url(tmp_path: Path) -> None:
    directory = running_extension(tmp_path / "r", "/jhub/user/alice/")
    env = {**HUB, "JUPYTERHUB_SERVICE_PREFIX": "/jhub/user/alice/",
           "JUPYTERHUB_BASE_URL": "/jhub/"}
    route = choose_route("auto", public_url="https://example.org/", environ=env,
                         registry_dir=directory)
    assert route.redirect_uri == "https://example.org/jhub/hub/user-redirect/nbauth/callback"
    env["JUPYTERHUB_PUBLIC_URL"] = "https://example.org/jhub/user/alice/"
    route = choose_route("auto", environ=env, registry_dir=directory)
    assert route.redirect_uri == "https://example.org/jhub/hub/user-redirect/nbauth/callback"
    env["JUPYTERHUB_PUBLIC_HUB_URL"] = "https://example.org/jhub/hub/"
    route = choose_route("auto", environ=env, registry_dir=directory)
    assert route.redirect_uri == "https://example.org/jhub/hub/user-redirect/nbauth/callback"


def test_named_server_uses_its_own_callback(tmp_path: Path) -> None:
    directory = running_extension(tmp_path / "r", "/user/alice/gpu/")
    env = {**HUB, "JUPYTERHUB_SERVICE_PREFIX": "/user/alice/gpu/",
           "JUPYTERHUB_SERVER_NAME": "gpu"}
    route = choose_route("auto", public_url="https://hub.example.org", environ=env,
                         registry_dir=directory)
    assert route.redirect_uri == "https://hub.example.org/user/alice/gpu/nbauth/callback"


def test_hub_without_public_url_falls_back_to_the_device_flow(tmp_path: Path) -> None:
    directory = running_extension(tmp_path / "r", "/user/alice/")
    route = choose_route("auto", environ=HUB, registry_dir=directory)
    assert route.mode == "device"
    assert "NBAUTH_PUBLIC_URL" in route.reason and "device flow" in route.reason
    with pytest.raises(ConfigurationError, match="NBAUTH_PUBLIC_URL"):
        choose_route("jupyter", environ=HUB, registry_dir=directory)


def test_hub_without_the_extension_falls_back_to_the_device_flow(tmp_path: Path) -> None:
    route = choose_route("auto", public_url="https://hub.example.org", environ=HUB,
                         registry_dir=tmp_path)
    assert route.mode == "device" and "extension is not running" in route.reason


def test_a_stale_marker_does_not_count(tmp_path: Path) -> None:
    directory = tmp_path / "r"
    directory.mkdir(mode=0o700)
    (directory / f"{MARKER_PREFIX}999999999.json").write_text(
        json.dumps({"pid": 999999999, "base_url": "/user/alice/"}))
    route = choose_route("auto", public_url="https://hub.example.org", environ=HUB,
                         registry_dir=directory)
    assert route.mode == "device"


@pytest.mark.parametrize("url", ["http://hub.example.org", "ftp://hub.example.org",
                                 "hub.example.org", "https://hub.example.org/?next=x",
                                 "https://user:pw@hub.example.org/"])
def test_public_url_must_be_a_plain_https_url(tmp_path: Path, url: str) -> None:
    directory = running_extension(tmp_path / "r", "/user/alice/")
    with pytest.raises(ConfigurationError) as info:
        choose_route("jupyter", public_url=url, environ=HUB, registry_dir=directory)
    assert "NBAUTH_PUBLIC_URL" in str(info.value)
    if url.startswith("http://"):
        assert isinstance(info.value, InsecureTransportError)


@pytest.mark.parametrize("url", [
    "https://alice:hunter2@hub.example.org/", "https://alice:hunter2@hub.example.org/?next=x",
    "http://alice:hunter2@hub.example.org/", "ftp://alice:hunter2@hub.example.org/",
    "https://alice:hunter2@hub.example.org:99999/", "https://:hunter2@hub.example.org/",
    "https://alice:hunter2@hub.example.org/user/alice/lab/",
])
def test_a_public_url_with_user_info_is_refused_without_repeating_it(tmp_path: Path,
                                                                     url: str) -> None:
    directory = running_extension(tmp_path / "r", "/user/alice/")
    with pytest.raises(ConfigurationError) as info:
        choose_route("jupyter", public_url=url, environ=HUB, registry_dir=directory)
    message = str(info.value)
    assert "hunter2" not in message and "***@hub.example.org" in message
    assert "NBAUTH_PUBLIC_URL" in message
    fallback = choose_route("auto", public_url=url, environ=HUB, registry_dir=directory)
    assert fallback.mode == "device"
    assert "hunter2" not in fallback.reason + (fallback.fallback_reason or "")


def test_an_empty_user_info_is_refused_too(tmp_path: Path) -> None:
    directory = running_extension(tmp_path / "r", "/user/alice/")
    with pytest.raises(ConfigurationError, match="credentials"):
        choose_route("jupyter", public_url="https://@hub.example.org/", environ=HUB,
                     registry_dir=directory)


@pytest.mark.parametrize("variable", ["JUPYTERHUB_PUBLIC_HUB_URL", "JUPYTERHUB_PUBLIC_URL"])
def test_the_hubs_own_url_with_user_info_is_not_repeated(tmp_path: Path, variable: str) -> None:
    directory = running_extension(tmp_path / "r", "/user/alice/")
    env = {**HUB, variable: "https://alice:hunter2@hub.example.org/hub/"}
    with pytest.raises(ConfigurationError) as info:
        choose_route("jupyter", environ=env, registry_dir=directory)
    assert "hunter2" not in str(info.value) and variable in str(info.value)


def test_an_invalid_port_in_the_public_url_is_named(tmp_path: Path) -> None:
    directory = running_extension(tmp_path / "r", "/user/alice/")
    with pytest.raises(ConfigurationError, match="invalid port"):
        choose_route("jupyter", public_url="https://hub.example.org:8x/", environ=HUB,
                     registry_dir=directory)


def test_unknown_mode_is_named() -> None:
    with pytest.raises(ConfigurationError, match="'carrier-pigeon' is unknown"):
        choose_route("carrier-pigeon", environ={})


def test_explicit_modes(tmp_path: Path) -> None:
    assert choose_route("device", environ=HUB).mode == "device"
    assert choose_route("loopback", environ=HUB).mode == "loopback"


# -- the registry -----------------------------------------------------------------------------

def test_registration_is_claimed_once_even_concurrently(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "r")
    registry.register(state="s" * 43, start_token="t", port=1234, relay_key="k",
                      server="/user/alice/", ttl=60)
    wins: list[object] = []
    barrier = threading.Barrier(8, timeout=5)

    def claim() -> None:
        barrier.wait()
        result = registry.claim("s" * 43)
        if result is not None:
            wins.append(result)

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert len(wins) == 1
    assert registry.claim("s" * 43) is None


def test_files_hold_no_state_and_are_private(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "r")
    state, start = "the-state-value-xyz", "the-start-token-xyz"
    registry.register(state=state, start_token=start, port=1234, relay_key="k", server="/",
                      ttl=60)
    assert (tmp_path / "r").stat().st_mode & 0o777 == 0o700
    (path,) = (tmp_path / "r").glob("*.json")
    assert path.stat().st_mode & 0o777 == 0o600
    assert state not in path.read_text() and start not in path.read_text()
    assert registry.find_start(start) is not None and registry.find_start("other") is None


def test_loosened_or_foreign_files_are_ignored(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "r")
    registry.register(state="s1", start_token="t1", port=1234, relay_key="k", server="/",
                      ttl=60)
    (path,) = (tmp_path / "r").glob("*.json")
    path.chmod(0o644)
    assert registry.find_start("t1") is None and registry.claim("s1") is None
    registry.register(state="s2", start_token="t2", port=1234, relay_key="k", server="/",
                      ttl=60)
    (tmp_path / "r").chmod(0o755)
    assert registry.find_start("t2") is None and registry.claim("s2") is None


def test_ttl_is_capped_at_ten_minutes(tmp_path: Path) -> None:
    registration = Registry(tmp_path / "r").register(
        state="s", start_token="t", port=1, relay_key="k", server="/", ttl=86400)
    import time

    assert registration.expires - time.time() <= 600.5


def test_corrupt_files_are_skipped_and_swept(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "r")
    registry.register(state="s", start_token="t", port=1, relay_key="k", server="/", ttl=60)
    bad = tmp_path / "r" / ("0" * 64 + ".json")
    bad.write_text("{not json")
    bad.chmod(0o600)
    assert registry.find_start("t") is not None
    assert registry.sweep() == 1 and not bad.exists()


# -- the link back to Jupyter -----------------------------------------------------------------

@pytest.mark.parametrize("candidate", [
    "//evil.example", "///evil.example", "\\\\evil.example", "/\\evil.example",
    "https:evil.example", "https://evil.example", "%2F%2Fevil.example", "/%2F/evil.example",
    "%252F%252Fevil.example", "javascript:alert(1)", "/user/alice/../bob/", "/user/bob/",
    "/user/alice/%2e%2e/bob/", "/user/alice/\nSet-Cookie:x", "",
])
def test_safe_next_refuses_everything_off_this_server(candidate: str) -> None:
    assert safe_next(candidate, "/user/alice/") == "/user/alice/"


@pytest.mark.parametrize("candidate", ["/user/alice/", "/user/alice/lab/tree/a.ipynb",
                                       "/user/alice/tree?x=1"])
def test_safe_next_keeps_this_servers_pages(candidate: str) -> None:
    assert safe_next(candidate, "/user/alice/") == candidate


@pytest.mark.parametrize("url", ["https://hub.example.org/user/alice/lab/tree/x.ipynb",
                                 "https://hub.example.org/hub/home",
                                 "https://hub.example.org/user/alice/"])
def test_a_page_inside_the_hub_is_not_taken_for_the_hubs_address(tmp_path: Path,
                                                                  url: str) -> None:
    directory = running_extension(tmp_path / "r", "/user/alice/")
    with pytest.raises(ConfigurationError, match="https://hub.example.org/"):
        choose_route("jupyter", public_url=url, environ=HUB, registry_dir=directory)


def test_the_hub_address_is_written_as_providers_compare_it(tmp_path: Path) -> None:
    directory = running_extension(tmp_path / "r", "/user/alice/")
    route = choose_route("jupyter", public_url="HTTPS://Hub.Example.ORG:443", environ=HUB,
                         registry_dir=directory)
    assert route.redirect_uri == "https://hub.example.org/hub/user-redirect/nbauth/callback"
    route = choose_route("jupyter", public_url="https://hub.example.org:8443/", environ=HUB,
                         registry_dir=directory)
    assert route.redirect_uri == "https://hub.example.org:8443/hub/user-redirect/nbauth/callback"


def test_without_jupyter_core_auto_falls_back_and_says_why(monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "jupyter_core.paths", None)  # import fails
    route = choose_route("auto", public_url="https://hub.example.org", environ=HUB)
    assert route.mode == "device" and "jupyter_core" in (route.fallback_reason or "")


def test_a_marker_whose_pid_was_reused_does_not_count(tmp_path: Path) -> None:
    directory = tmp_path / "r"
    directory.mkdir(mode=0o700)
    (directory / f"{MARKER_PREFIX}{os.getpid()}.json").write_text(json.dumps(
        {"pid": os.getpid(), "started": "1", "base_url": "/user/alice/"}))
    route = choose_route("auto", public_url="https://hub.example.org", environ=HUB,
                         registry_dir=directory)
    assert route.mode == "device"


def test_the_message_names_the_paths_when_a_proxy_strips_a_prefix(tmp_path: Path) -> None:
    directory = running_extension(tmp_path / "r", "/")
    with pytest.raises(ConfigurationError, match="it runs for /, not for /jupyter/"):
        choose_route("jupyter", public_url="https://x.example.org/jupyter/", environ={},
                     registry_dir=directory)


@pytest.mark.parametrize("ip,mode", [
    ("localhost", "loopback"), ("127.0.0.1", "loopback"), ("::1", "loopback"),
    ("0.0.0.0", "device"),  # noqa: S104 - an address written in a marker; nothing binds it
    ("", "device"), ("192.0.2.10", "device"), ("*", "device"),
])
def test_auto_avoids_loopback_when_the_kernels_server_listens_beyond_this_machine(
        tmp_path: Path, ip: str, mode: str) -> None:
    from nbauth.serverext import _write_marker

    directory = tmp_path / "r"
    directory.mkdir(mode=0o700)
    _write_marker(directory, "/", ip)  # this process plays the server that started the kernel
    route = choose_route("auto", environ={"JPY_PARENT_PID": str(os.getpid())},
                         registry_dir=directory)
    assert route.mode == mode
    if mode == "device":
        assert "listens on" in route.reason and "--callback loopback" in route.reason
        assert "NBAUTH_PUBLIC_URL" in (route.fallback_reason or "")


def test_another_servers_address_does_not_decide_this_kernels_route(tmp_path: Path) -> None:
    from nbauth.serverext import _write_marker

    directory = tmp_path / "r"
    directory.mkdir(mode=0o700)
    # a server, but not this kernel's parent (the address is only written; nothing binds it)
    _write_marker(directory, "/", "0.0.0.0")  # noqa: S104 - see the line above
    route = choose_route("auto", environ={"JPY_PARENT_PID": "1"}, registry_dir=directory)
    assert route.mode == "loopback"
    assert choose_route("loopback", environ={"JPY_PARENT_PID": str(os.getpid())},
                        registry_dir=directory).mode == "loopback"  # forced: as asked
