#!/usr/bin/env python3
"""$BROWSER for the kernel leakage test: a person who logs in, and a wiretap on what they see.

It opens nbauth's /start link, records the authorization URL (state, nonce) and the redirect
back to the listener (code, state) in the file named by NBAUTH_TEST_BROWSER_LOG — outside the
notebook, so the test knows every secret value to look for — then delivers the redirect.
On the real provider it signs in with provider/scripted_user.py (NBAUTH_TEST_DECISION: allow
or deny); the scripted stand-in redirects back at once. Silent on stdout/stderr.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "provider"))

import requests
from scripted_user import complete_login


def record(**entry: str) -> None:
    with open(os.environ["NBAUTH_TEST_BROWSER_LOG"], "a") as log:
        log.write(json.dumps(entry) + "\n")


def main(url: str) -> None:
    authorize = requests.get(url, allow_redirects=False, timeout=10).headers["Location"]
    record(authorize=authorize)
    if urlsplit(authorize).netloc == os.environ["NBAUTH_TEST_REAL_PROVIDER"]:
        redirect = complete_login(authorize, follow_callback=False,
                                  decision=os.environ.get("NBAUTH_TEST_DECISION", "allow"))
    else:
        redirect = requests.get(authorize, allow_redirects=False, timeout=10).headers["Location"]
    record(redirect=redirect)
    requests.get(redirect, timeout=30)


if __name__ == "__main__":
    sys.stdout = sys.stderr = open(os.devnull, "w")  # silent for the kernel
    try:
        main(sys.argv[1])
    except Exception as exc:  # the test reads the log
        record(error=f"{type(exc).__name__}: {exc}")
        sys.exit(1)
