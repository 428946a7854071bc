"""J. Nothing that holds a secret can be pickled, copied into a pickle, or shown (S-82, S-63).

%store, dill, cloudpickle, multiprocessing and joblib all go through pickle's reduce protocol.
"""

from __future__ import annotations

import copy
import pickle
import threading

import pytest
import requests
from scripted_provider import ScriptedProvider

import nbauth
from nbauth.device import parse_device_authorization, start_device_login


@pytest.fixture(scope="module")
def objects():
    with ScriptedProvider(token_answers=[ScriptedProvider.good_tokens()], device_flow=True) as p:
        creds = nbauth.login(domain=p.issuer, client_id=p.client_id, port=0, timeout=20,
                             open_browser=lambda url: threading.Thread(
                                 target=requests.get, args=(url,), kwargs={"timeout": 10},
                                 daemon=True).start())
        pending = nbauth.start_login(p.issuer, p.client_id, port=0, timeout=20)
        device = start_device_login(p.issuer, p.client_id)
        authorization = parse_device_authorization({
            "device_code": "dc-" + "s" * 40, "user_code": "ABCD-EFGH", "expires_in": 600,
            "verification_uri": "https://idp.example/activate"}, now=0.0)
        secrets = [str(creds.token()), creds._refresh_token, pending._request.state,
                   pending._request.pkce.verifier, device._device_code]
        yield {
            "credentials": creds, "access token": creds.token(), "session": creds.session(),
            "auth": creds.auth, "pending login": pending, "request": pending._request,
            "pkce": pending._request.pkce, "device login": device,
            "device authorization": authorization,
        }, secrets + [authorization.device_code]
        pending.cancel()
        device.cancel()


NAMES = ["credentials", "access token", "session", "auth", "pending login", "request", "pkce",
         "device login", "device authorization"]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_S82_pickling_is_refused(objects, name, protocol):
    with pytest.raises(TypeError, match="not picklable"):
        pickle.dumps(objects[0][name], protocol=protocol)


@pytest.mark.parametrize("name", NAMES)
def test_S82_S63_reprs_show_no_secret(objects, name):
    items, secrets = objects
    obj = items[name]
    shown = repr(obj) + (obj._repr_html_() if hasattr(obj, "_repr_html_") else "")
    for secret in secrets:
        assert secret not in shown


def test_S82_deepcopy_of_a_structure_holding_credentials_cannot_be_pickled_either(objects):
    items, _ = objects
    nested = {"cfg": [items["session"]]}
    with pytest.raises(TypeError):
        pickle.dumps(copy.deepcopy({"token": items["access token"]}) | nested)


def test_vars_of_the_credentials_show_no_refresh_token_or_client_secret(provider, browser,
                                                                        monkeypatch):
    """`vars(auth0_session.credentials)` as a cell's last line is saved in the notebook."""
    import nbauth

    person = browser()
    creds = nbauth.login(domain=provider.issuer, client_id=provider.client_id,
                         audience=provider.audience, port=0, timeout=60, open_browser=person)
    person.join()
    refresh_token = str(creds._refresh_token)
    assert len(refresh_token) > 20
    from IPython.lib.pretty import pretty  # how IPython shows a cell's last line

    shown = repr(vars(creds)) + repr(vars(creds.session())) + pretty(vars(creds))
    assert refresh_token not in shown and "<secret>" in shown
    creds.refresh()  # the rotated successor is kept the same way
    assert str(creds._refresh_token) not in repr(vars(creds))
    creds.logout()
    monkeypatch.setenv("AUTH0_CLIENT_SECRET", provider.m2m_client_secret)
    machine = nbauth.client_credentials(provider.issuer, provider.m2m_client_id,
                                        audience=provider.audience)
    assert provider.m2m_client_secret not in repr(vars(machine))
    machine.logout()


def test_the_authorization_header_of_a_sent_request_shows_redacted(provider, browser):
    """`r.request.headers` as a cell's last line (a common way to debug a 401)."""
    import nbauth

    person = browser()
    creds = nbauth.login(domain=provider.issuer, client_id=provider.client_id,
                         audience=provider.audience, port=0, timeout=60, open_browser=person)
    person.join()
    answer = creds.session().get(provider.api_url, timeout=10)
    assert answer.status_code == 200  # the header went out whole
    token = str(creds.token())
    from IPython.lib.pretty import pretty  # how IPython shows a cell's last line

    shown = (repr(answer.request.headers) + repr(vars(answer.request))
             + pretty(answer.request.headers) + pretty(dict(answer.request.headers)))
    assert token not in shown and "Bearer <access token>" in shown
    assert answer.request.headers["Authorization"] == f"Bearer {token}"  # the value itself
    creds.logout()
