"""Transport: HTTPS enforced off loopback, certificates always verified, the environment's
proxy and CA bundle honoured for provider calls and never applied to loopback.

No internet here, so a "remote" provider is a TLS server on 127.0.0.1 whose certificate (from a
test CA) names provider.test; a recording stdlib proxy on 127.0.0.1 tunnels CONNECT
provider.test:443 to it. requests then resolves nothing itself: only the proxy knows the way.
"""

from __future__ import annotations

import datetime
import http.server
import ipaddress
import json
import re
import select
import socket
import socketserver
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

import nbauth
from nbauth.discovery import discover
from nbauth.errors import InsecureTransportError, ProviderUnreachableError
from nbauth.http import ProviderClient

ROOT = Path(__file__).resolve().parents[2]
REMOTE = "provider.test"
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
                   "all_proxy")


# -- a test CA and a TLS "remote" provider ---------------------------------------------------
def _name(text: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])


def make_certificates(directory: Path) -> tuple[Path, Path, Path]:
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name("nbauth test CA"))
          .issuer_name(_name("nbauth test CA")).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                       False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                         critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(_name(REMOTE)).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName(REMOTE), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


class _Discovery(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        base = f"https://{REMOTE}/"
        doc = {"issuer": base, "authorization_endpoint": base + "authorize",
               "token_endpoint": base + "oauth/token", "jwks_uri": base + ".well-known/jwks.json",
               "code_challenge_methods_supported": ["S256"]}
        body = json.dumps(doc).encode() if self.path.endswith("openid-configuration") else b"{}"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _Proxy(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, tunnels: dict[str, tuple[str, int]]) -> None:
        self.tunnels = tunnels
        self.seen: list[tuple[str, str]] = []
        super().__init__(("127.0.0.1", 0), _ProxyHandler)


class _ProxyHandler(socketserver.StreamRequestHandler):
    server: _Proxy
    timeout = 10

    def handle(self) -> None:
        line = self.rfile.readline(65537).decode("latin-1")
        for _ in range(100):  # the request's headers
            if self.rfile.readline(65537) in (b"\r\n", b"\n", b""):
                break
        parts = line.split()
        if len(parts) < 2:
            return
        method, target = parts[0], parts[1]
        self.server.seen.append((method, target))
        upstream_address = self.server.tunnels.get(target)
        if method != "CONNECT" or upstream_address is None:
            self.wfile.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n"
                             b"Connection: close\r\n\r\n")
            return
        upstream = socket.create_connection(upstream_address, timeout=10)
        self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        self.wfile.flush()
        deadline = time.monotonic() + 20
        sockets = [self.connection, upstream]
        try:
            while time.monotonic() < deadline:
                readable, _, _ = select.select(sockets, [], [], 0.5)
                for source in readable:
                    data = source.recv(65536)
                    if not data:
                        return
                    (upstream if source is self.connection else self.connection).sendall(data)
        finally:
            upstream.close()


@pytest.fixture
def remote(tmp_path) -> Iterator[dict]:
    ca, cert, key = make_certificates(tmp_path)
    tls = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Discovery)
    tls.daemon_threads = True
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    tls.socket = context.wrap_socket(tls.socket, server_side=True)
    proxy = _Proxy({f"{REMOTE}:443": tls.server_address[:2]})
    servers = [tls, proxy]
    for server in servers:
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()
    try:
        yield {"ca": str(ca), "proxy": f"http://127.0.0.1:{proxy.server_address[1]}",
               "seen": proxy.seen}
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


@pytest.fixture
def proxied(monkeypatch, remote):
    """Every proxy variable points at the recording proxy; NO_PROXY is unset."""
    for name in ("NO_PROXY", "no_proxy", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    for name in PROXY_VARIABLES:
        monkeypatch.setenv(name, remote["proxy"])
    return remote


def test_transport_proxy_and_ca_bundle_are_honoured_for_a_remote_provider(proxied, monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", proxied["ca"])
    metadata = discover(f"https://{REMOTE}/", ProviderClient())
    assert metadata.issuer == f"https://{REMOTE}/"
    assert proxied["seen"] == [("CONNECT", f"{REMOTE}:443")]


def test_transport_certificate_verification_is_never_silently_off(proxied, monkeypatch):
    """Without the CA bundle the same provider is refused, and the error says what to set."""
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    with pytest.raises(ProviderUnreachableError, match="certificate.*REQUESTS_CA_BUNDLE"):
        discover(f"https://{REMOTE}/", ProviderClient())
    assert proxied["seen"] == [("CONNECT", f"{REMOTE}:443")]


def test_transport_loopback_provider_bypasses_every_proxy_variable(proxied, provider):
    """A full login against the loopback provider with HTTP(S)_PROXY and ALL_PROXY set and
    NO_PROXY unset: the proxy (which cannot reach this machine's 127.0.0.1 in real life) sees
    nothing. The scripted person is a separate process, as a browser is (browsers bypass
    loopback on their own)."""
    import os

    browser_env = {k: v for k, v in os.environ.items() if k not in PROXY_VARIABLES}
    person = ROOT / "provider" / "scripted_user.py"

    def open_browser(url):
        threading.Thread(target=subprocess.run, args=([sys.executable, str(person), url],),
                         kwargs={"env": browser_env, "timeout": 60}, daemon=True).start()

    credentials = nbauth.login(domain=provider.issuer, client_id=provider.client_id,
                               audience=provider.audience, port=0, timeout=60,
                               open_browser=open_browser)
    credentials.refresh()  # the token endpoint again, through the same client
    assert credentials.refresh_count == 1
    assert "revoked" in credentials.logout()
    assert proxied["seen"] == []


def test_transport_plain_http_is_refused_off_loopback_before_any_request(proxied):
    for url in (f"http://{REMOTE}/", "http://10.0.0.8/", "http://127.0.0.1.evil.example/"):
        with pytest.raises(InsecureTransportError):
            nbauth.login(domain=url, client_id="c", port=0, timeout=5, open_browser=False)
    assert proxied["seen"] == []


def test_transport_package_never_disables_verification_or_the_environment():
    """Static: no verify=False, no unverified SSL context, no trust_env=False anywhere in the
    package (trust_env is what honours HTTPS_PROXY and REQUESTS_CA_BUNDLE)."""
    forbidden = re.compile(
        r"verify\s*=\s*False|CERT_NONE|check_hostname\s*=\s*False|_create_unverified_context"
        r"|disable_warnings|trust_env\s*=\s*False|PYTHONHTTPSVERIFY")
    offenders = [f"{path.name}:{n}" for path in (ROOT / "nbauth").rglob("*.py")
                 for n, line in enumerate(path.read_text().splitlines(), 1)
                 if forbidden.search(line)]
    assert offenders == []
    client = ProviderClient()
    assert client._session.verify is True and client._session.trust_env is True
