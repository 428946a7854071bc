"""Token lifecycle against the real provider with short-lived access tokens (S-50…S-53).

The provider issues 4-second access tokens; nbauth refreshes them before they expire, honours
rotation, refreshes once for 20 threads, and turns the provider's reuse detection into
"log in again". Token-endpoint requests are counted from the provider's own log.
"""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
import requests
from provider_log import refresh_grants, settled, token_requests
from waiting import wait_for

import nbauth
from nbauth.errors import LoginRequiredError
from nbauth.tokens import TokenState

#: Access-token lifetime in seconds of this module's short_provider (tests/conftest.py).
TTL = 4

pytestmark = pytest.mark.provider



def log_in(info, browser):
    person = browser()
    creds = nbauth.login(domain=info.issuer, client_id=info.client_id, audience=info.audience,
                         port=0, timeout=60, open_browser=person)
    person.join()
    assert not person.errors
    assert creds.can_refresh and creds.expires_at - time.time() <= TTL + 1
    return creds


def test_the_session_keeps_working_across_several_token_lifetimes(short_provider, browser):
    creds = log_in(short_provider, browser)
    session = creds.session()
    before = settled(lambda: refresh_grants(short_provider))
    statuses, tokens = [], set()
    started = time.monotonic()
    for _ in range(60):  # about three access-token lifetimes, and never more than 20 s
        if time.monotonic() - started > 3 * TTL:
            break
        statuses.append(session.get(short_provider.api_url, timeout=10).status_code)
        tokens.add(str(creds.current_token))
        time.sleep(0.25)
    assert time.monotonic() - started < 20
    assert set(statuses) == {200}, statuses  # never an expired token at the API
    assert creds.refresh_count >= 2 and len(tokens) == creds.refresh_count + 1
    assert settled(lambda: refresh_grants(short_provider)) - before == creds.refresh_count


def test_rotation_then_reuse_of_the_old_refresh_token_ends_the_login(short_provider, browser):
    creds = log_in(short_provider, browser)
    first = creds._refresh_token
    creds.refresh()
    second = creds._refresh_token
    assert second and second != first  # rotated, and the new one is kept
    # Someone replays the rotated-out token: the provider refuses it and revokes the family.
    replay = requests.post(short_provider.issuer + "oauth/token", data={
        "grant_type": "refresh_token", "refresh_token": first,
        "client_id": short_provider.client_id}, timeout=10)
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    # nbauth finds out at its next refresh: one request, then "log in again", nothing kept.
    before = settled(lambda: token_requests(short_provider))
    with pytest.raises(LoginRequiredError, match="Log in again") as info:
        creds.refresh()
    assert first not in str(info.value) and second not in str(info.value)
    assert not creds.valid and creds._refresh_token is None and creds.end_reason == "refused"
    with pytest.raises(LoginRequiredError):
        creds.token()
    assert settled(lambda: token_requests(short_provider)) - before == 1


def test_twenty_threads_at_expiry_cause_exactly_one_refresh(short_provider, browser):
    creds = log_in(short_provider, browser)
    assert wait_for(lambda: creds.state is TokenState.EXPIRED, TTL + 2)
    before = settled(lambda: token_requests(short_provider))
    barrier = threading.Barrier(20)
    results, errors = [], []

    def ask():
        try:
            barrier.wait(timeout=10)
            results.append(str(creds.token()))
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=ask) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors and len(results) == 20 and len(set(results)) == 1
    assert settled(lambda: token_requests(short_provider)) - before == 1
    assert creds.refresh_count == 1
    answer = requests.get(short_provider.api_url, timeout=10,
                          headers={"Authorization": f"Bearer {results[0]}"})
    assert answer.status_code == 200


def test_httpx_adapter_sends_a_fresh_token_sync_and_async(short_provider, browser):
    import httpx  # optional for users; the test extra installs it (no skip: it must run)

    creds = log_in(short_provider, browser)
    auth = creds.httpx_auth()
    assert isinstance(auth, httpx.Auth)
    assert str(creds.current_token) not in repr(auth) + str(vars(auth))
    with httpx.Client(auth=auth, timeout=10) as client:
        assert client.get(short_provider.api_url).status_code == 200
        assert wait_for(lambda: creds.state is TokenState.EXPIRED, TTL + 2)
        assert client.get(short_provider.api_url).status_code == 200
    assert creds.refresh_count == 1

    async def use_async():
        async with httpx.AsyncClient(auth=auth, timeout=10) as client:
            first = await client.get(short_provider.api_url)
            await asyncio.sleep(0)
            while creds.state is not TokenState.EXPIRED:
                await asyncio.sleep(0.1)
            second = await asyncio.wait_for(client.get(short_provider.api_url), 15)
            return first.status_code, second.status_code

    # On a thread of its own: in the full suite the browser tests' Playwright keeps an event
    # loop running on the main thread, where asyncio.run() refuses to start.
    outcome: list[object] = []
    runner = threading.Thread(
        target=lambda: outcome.append(asyncio.run(asyncio.wait_for(use_async(), 30))))
    runner.start()
    runner.join(40)
    assert outcome == [(200, 200)]
    assert creds.refresh_count == 2
    with pytest.raises(TypeError):
        __import__("pickle").dumps(auth)
