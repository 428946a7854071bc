"""Client credentials (machine to machine) against the real provider's confidential client
(S-65, S-66): the secret from the environment, config or a prompt, never from the magic line;
tokens cached until near expiry, counted from the provider's log."""

from __future__ import annotations

import queue
import time

import pytest
import requests
from devprovider import running_provider
from IPython.utils.capture import capture_output
from provider_log import settled, token_requests

import nbauth
from nbauth.errors import ConfigurationError, InvalidClientError
from nbauth.tokens import TokenState

pytestmark = pytest.mark.provider


def api(info, token):
    return requests.get(info.api_url, headers={"Authorization": f"Bearer {token}"}, timeout=10)


def test_the_secret_from_the_environment_gives_a_token_and_a_second_call_makes_no_request(
        provider, monkeypatch):
    monkeypatch.setenv("AUTH0_CLIENT_SECRET", provider.m2m_client_secret)
    before = settled(lambda: token_requests(provider))
    creds = nbauth.client_credentials(provider.issuer, provider.m2m_client_id,
                                      audience=provider.audience)
    assert api(provider, creds.token()).json()["sub"] == provider.m2m_client_id
    again = nbauth.client_credentials(provider.issuer, provider.m2m_client_id,
                                      audience=provider.audience)
    assert again is creds
    assert creds.session().get(provider.api_url, timeout=10).status_code == 200
    assert settled(lambda: token_requests(provider)) - before == 1
    text = repr(creds) + str(creds.describe()) + creds.summary()
    assert provider.m2m_client_secret not in text and str(creds.token()) not in text
    with pytest.raises(TypeError):
        __import__("pickle").dumps(creds)


def test_a_token_near_expiry_is_replaced_by_a_new_request(monkeypatch):
    monkeypatch.setenv("AUTH0_CLIENT_SECRET", "nbauth-m2m-demo-secret-not-for-production")
    with running_provider(access_token_ttl=3) as info:
        creds = nbauth.client_credentials(info.issuer, info.m2m_client_id, audience=info.audience)
        first = str(creds.token())
        deadline = time.monotonic() + 5
        while creds.state is TokenState.FRESH and time.monotonic() < deadline:
            time.sleep(0.1)
        before = settled(lambda: token_requests(info))
        second = nbauth.client_credentials(info.issuer, info.m2m_client_id,
                                           audience=info.audience)
        assert second is creds and str(creds.current_token) != first
        assert settled(lambda: token_requests(info)) - before == 1
        assert creds.refresh_count == 1 and api(info, creds.token()).status_code == 200


def test_a_wrong_secret_is_refused_without_showing_it(provider, monkeypatch):
    monkeypatch.setenv("AUTH0_CLIENT_SECRET", "wrong-secret-value")
    with pytest.raises(InvalidClientError) as info:
        nbauth.client_credentials(provider.issuer, provider.m2m_client_id,
                                  audience="https://api.nbauth.test/", scope="read:messages")
    assert "wrong-secret-value" not in str(info.value)


def test_without_a_secret_or_a_terminal_the_error_says_how_to_set_it(provider):
    # pytest's stdin is not a terminal, as in CI
    with pytest.raises(ConfigurationError, match="AUTH0_CLIENT_SECRET") as info:
        nbauth.client_credentials(provider.issuer, provider.m2m_client_id, audience="urn:none")
    assert "c.NbauthConfig.client_secret" in str(info.value)


@pytest.fixture
def magics(ip):
    m = ip.magics_manager.registry["AuthMagics"]
    yield m
    m.config_defaults.client_secret = ""
    for var in list(m.logins):
        with capture_output():
            ip.run_line_magic("auth0_logout", f"--var {var}")


def test_the_magic_puts_the_token_in_the_namespace_and_reuses_the_cache(ip, magics, provider,
                                                                         monkeypatch):
    monkeypatch.setenv("AUTH0_CLIENT_SECRET", provider.m2m_client_secret)
    line = (f"--client-credentials --domain {provider.issuer} --client-id "
            f"{provider.m2m_client_id} --audience {provider.audience} --scope read:messages "
            "--var m2m_token --session-var m2m")
    before = settled(lambda: token_requests(provider))
    with capture_output() as out:
        ip.run_cell(f"%auth0_login {line}")
    assert "(client credentials)" in out.stdout and "m2m_token and m2m are ready" in out.stdout
    assert out.stdout.count("(client credentials)") == 1, out.stdout
    assert api(provider, ip.user_ns["m2m_token"]).status_code == 200
    assert ip.user_ns["m2m"].get(provider.api_url, timeout=10).status_code == 200
    widget = magics.logins["m2m_token"].widget
    assert "Logged in as" in widget.status_text
    states = repr(widget.get_state())  # (a terminal shows no widget: the replaced one is freed)
    with capture_output():
        ip.run_cell(f"%auth0_login {line}")
    states += repr(magics.logins["m2m_token"].widget.get_state())
    assert settled(lambda: token_requests(provider)) - before == 1  # the second used the cache
    with capture_output() as out:
        ip.run_line_magic("auth0_token", "--var m2m_token")
    assert provider.m2m_client_id in out.stdout and "a new token is requested" in out.stdout
    history = "\n".join(ip.user_ns["In"])
    assert provider.m2m_client_secret not in history + out.stdout + states
    with capture_output() as out:
        ip.run_line_magic("auth0_logout", "--var m2m_token")
    assert "m2m_token" not in ip.user_ns and "forgotten" in out.stdout


def test_the_magic_takes_the_secret_from_config(ip, magics, provider):
    magics.config_defaults.client_secret = provider.m2m_client_secret
    with capture_output() as out:
        ip.run_cell(f"%auth0_login --client-credentials --domain {provider.issuer} --client-id "
                    f"{provider.m2m_client_id} --audience {provider.second_audience} "
                    "--var rep_token --session-var rep")
    assert "(client credentials)" in out.stdout, out.stdout + out.stderr
    assert ip.user_ns["rep"].get(provider.reports_url, timeout=10).status_code == 200
    with capture_output() as out:
        ip.run_line_magic("config", "NbauthConfig")  # prints every setting's current value
    assert "client_secret" in out.stdout and "<hidden>" in out.stdout
    assert provider.m2m_client_secret not in out.stdout


def test_client_credentials_cannot_be_combined_with_remember(ip):
    result = ip.run_cell("%auth0_login --domain https://x.example --client-id c "
                         "--client-credentials --remember")
    assert "cannot be combined" in str(result.error_in_exec)


@pytest.mark.kernel
def test_in_a_kernel_the_secret_is_asked_with_getpass_or_the_error_says_how(provider):
    """A real kernel: with stdin the notebook's password box asks; without, a clear error."""
    from jupyter_client.manager import start_new_kernel

    env = {**__import__("os").environ, "BROWSER": "true"}
    env.pop("AUTH0_CLIENT_SECRET", None)
    km, kc = start_new_kernel(kernel_name="python3", env=env)
    line = (f"%auth0_login --client-credentials --domain {provider.issuer} --client-id "
            f"{provider.m2m_client_id} --audience {provider.audience} --var t --session-var s")

    def run(code, *, allow_stdin, answer=None):
        msg_id = kc.execute(code, allow_stdin=allow_stdin)
        texts, deadline = [], time.monotonic() + 60
        while time.monotonic() < deadline:
            if answer is not None:
                try:
                    request = kc.get_stdin_msg(timeout=0.2)
                    assert request["content"]["password"] is True  # typed, never echoed
                    kc.input(answer)
                    answer = None
                except queue.Empty:
                    pass
            try:
                msg = kc.get_iopub_msg(timeout=0.2)
            except queue.Empty:
                continue
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            content = msg["content"]
            if msg["msg_type"] == "stream":
                texts.append(content["text"])
            elif msg["msg_type"] == "error":
                texts.append(f"{content['ename']}: {content['evalue']}")
            elif msg["msg_type"] == "status" and content["execution_state"] == "idle":
                return "".join(texts)
        raise AssertionError("the cell did not finish in time")

    try:
        run("%load_ext nbauth", allow_stdin=False)
        text = run(line, allow_stdin=False)
        assert "cannot ask for one" in text and "AUTH0_CLIENT_SECRET" in text, text
        text = run(line, allow_stdin=True, answer=provider.m2m_client_secret)
        assert "(client credentials)" in text, text
        assert provider.m2m_client_secret not in text
        text = run(f"import requests\nprint(requests.get({provider.api_url!r}, timeout=10, "
                   "headers={'Authorization': f'Bearer {t}'}).status_code)", allow_stdin=False)
        assert text.strip() == "200"
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def _m2m_answer(form, p):
    import json

    body = {"access_token": "m2m-at", "token_type": "Bearer", "expires_in": 3600}
    return 200, {"Content-Type": "application/json"}, json.dumps(body).encode()


@pytest.mark.parametrize("methods,in_body", [
    (None, False),                                        # RFC 8414 §2: basic by default
    (["client_secret_basic", "client_secret_post"], False),
    (["client_secret_post"], True),                       # e.g. Authelia clients set so
    (["private_key_jwt", "client_secret_post"], True),
])
def test_the_secret_is_sent_the_way_the_provider_accepts_it(monkeypatch, methods, in_body):
    from scripted_provider import ScriptedProvider

    monkeypatch.setenv("AUTH0_CLIENT_SECRET", "s3cr:et%+")
    extra = {} if methods is None else {"token_endpoint_auth_methods_supported": methods}
    with ScriptedProvider(token_answers=[_m2m_answer, _m2m_answer],
                          extra_metadata=extra) as p:
        creds = nbauth.client_credentials(p.issuer, "m2m-client", audience="https://api/")
        assert creds.token() == "m2m-at"
        creds.refresh()  # a renewal sends it the same way
        calls = p.calls("/oauth/token")
        assert len(calls) == 2  # the first token and the renewal
        for call in calls:
            assert ("client_secret" in call.form) is in_body
            assert ("Authorization" in call.headers) is not in_body
            if in_body:
                assert call.form["client_secret"] == "s3cr:et%+"
                assert call.form["client_id"] == "m2m-client"
        creds.logout()


def test_a_refused_machine_client_is_told_to_check_its_secret(monkeypatch):
    from scripted_provider import ScriptedProvider

    monkeypatch.setenv("AUTH0_CLIENT_SECRET", "wrong-secret-value")
    with ScriptedProvider(token_answers=[ScriptedProvider.oauth_error("invalid_client", 401)]) as p:
        with pytest.raises(InvalidClientError) as info:
            nbauth.client_credentials(p.issuer, "m2m-client", audience="https://api/")
    message = str(info.value)
    assert "AUTH0_CLIENT_SECRET" in message and "Machine to Machine" in message
    assert "Native (public)" not in message and "wrong-secret-value" not in message
