"""IPython startup file for the leakage test's kernel (not part of the notebook or its history).

A wiretap on nbauth's one I/O layer: every form nbauth posts (code, verifier, refresh token,
device code) and every JSON answer it gets (tokens, device code) is appended to the file named
by NBAUTH_TEST_CAPTURE, outside the notebook, so the test knows each secret value. The
environment at start is kept too (S-86 compares it with the one at the end).
"""

import json as _json
import os as _os

import nbauth.http as _http

with open(_os.environ["NBAUTH_TEST_ENV_START"], "w") as _f:
    _json.dump(dict(_os.environ), _f)

_post_form = _http.ProviderClient.post_form


def _tapped_post_form(self, url, data, **kwargs):
    with open(_os.environ["NBAUTH_TEST_CAPTURE"], "a") as log:
        log.write(_json.dumps({"sent": data}) + "\n")
    body = _post_form(self, url, data, **kwargs)
    with open(_os.environ["NBAUTH_TEST_CAPTURE"], "a") as log:
        log.write(_json.dumps({"received": body}) + "\n")
    return body


_http.ProviderClient.post_form = _tapped_post_form
del _f
