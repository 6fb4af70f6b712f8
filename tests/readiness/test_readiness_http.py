"""The health-URL check against real HTTP(S) servers on 127.0.0.1."""

from __future__ import annotations

import shutil
import ssl
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devtools.motoserver import free_port
from tests.http_site import ANY_PATH, Answer, Site
from tests.readiness.harness import check

FAST = ("--region", "us-east-1", "--interval", "0.2")


Serve = Callable[..., Site]


@pytest.fixture
def serve() -> Iterator[Serve]:
    """Site(...) for the test, closed after it."""
    sites: list[Site] = []

    def start(answers: list[Answer], port: int = 0, tls: ssl.SSLContext | None = None) -> Site:
        sites.append(Site({ANY_PATH: answers}, "/healthz", port, tls))
        return sites[-1]

    yield start
    for site in sites:
        site.close()


def test_503_then_200_is_ready(serve: Serve) -> None:
    site = serve([(503, b"starting", {}), (503, b"starting", {}), (200, b"ok", {})])
    run = check(*FAST, "--url", site.url, "--name", "web", "--timeout", "10")
    assert run.code == 0, run.err
    assert f"[web] {site.url}: HTTP 503 Service Unavailable" in run.out
    assert f"[web] {site.url}: HTTP 200 OK" in run.out
    assert run.out.splitlines()[-1].startswith(f"ready: web: {site.url} in ")
    assert site.paths == ["/healthz"] * 3


def test_always_500_fails_with_the_status_and_a_printable_body_excerpt(serve: Serve) -> None:
    body = (b"<h1>Internal Server Error</h1>\n\x00\x1b[31mKeyError: 'DATABASE_URL'\x1b[0m\n"
            + b"x" * 2000)
    site = serve([(500, body, {"Content-Type": "text/html"})])
    run = check(*FAST, "--url", site.url, "--timeout", "2")
    assert run.code == 1 and run.seconds < 6
    lines = run.err.splitlines()
    assert lines[0].startswith("not ready: url (us-east-1) after ")
    assert f"    {site.url}: HTTP 500 Internal Server Error" in lines
    [excerpt] = [line.removeprefix("    body: ") for line in lines if "body: " in line]
    assert excerpt.startswith("<h1>Internal Server Error</h1> KeyError: 'DATABASE_URL' xxx")
    assert len(excerpt) == 500 and excerpt.isprintable()


def test_refused_until_the_server_listens(serve: Serve) -> None:
    port = free_port()
    timer = threading.Timer(1.0, lambda: serve([(200, b"ok", {})], port=port))
    timer.start()
    try:
        run = check(*FAST, "--url", f"http://127.0.0.1:{port}/healthz", "--timeout", "10")
    finally:
        timer.join()
    assert run.code == 0, run.err
    assert "no answer ([Errno 111] Connection refused)" in run.out


def test_redirect_to_another_host_is_reported_not_followed(serve: Serve) -> None:
    site = serve([(302, b"", {"Location": "http://login.example.invalid/"})])
    run = check(*FAST, "--url", site.url, "--timeout", "1")
    assert run.code == 1
    assert ("HTTP 302 Found, redirect to http://login.example.invalid/ (not followed: another "
            "host)") in run.err


def test_redirect_on_the_same_host_is_followed(serve: Serve) -> None:
    site = serve([(301, b"", {"Location": "/healthz/"}), (200, b"ok", {})])
    run = check(*FAST, "--url", site.url, "--timeout", "10")
    assert run.code == 0, run.err
    assert site.paths == ["/healthz", "/healthz/"]


def test_redirect_loop_is_reported(serve: Serve) -> None:
    site = serve([(302, b"", {"Location": "/healthz"})])
    run = check(*FAST, "--url", site.url, "--timeout", "1")
    assert run.code == 1
    assert "HTTP 302 Found, redirect to /healthz (not followed: redirect loop)" in run.err


def test_a_proxy_in_the_environment_is_not_used_for_loopback(
        serve: Serve, monkeypatch: pytest.MonkeyPatch) -> None:
    dead_proxy = f"http://127.0.0.1:{free_port()}"
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.setenv(name, dead_proxy)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    site = serve([(200, b"ok", {})])
    assert check(*FAST, "--url", site.url, "--timeout", "5").code == 0


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed: scripts/setup-system.sh (make system) does it")
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", "/CN=web",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key),
                    "-out", str(cert)], check=True, capture_output=True, timeout=30)
    return cert, key


@pytest.fixture
def tls_site(serve: Serve, self_signed: tuple[Path, Path]) -> Site:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*self_signed)
    return serve([(503, b"", {}), (200, b"ok", {})], tls=context)


def test_tls_with_the_self_signed_certificate_trusted(tls_site: Site,
                                                      self_signed: tuple[Path, Path]) -> None:
    run = check(*FAST, "--url", tls_site.url, "--ca-file", str(self_signed[0]),
                "--timeout", "10")
    assert run.code == 0, run.err
    assert tls_site.url.startswith("https://") and "HTTP 200 OK" in run.out


def test_tls_certificate_not_trusted_by_default(tls_site: Site) -> None:
    run = check(*FAST, "--url", tls_site.url, "--timeout", "1.5")
    assert run.code == 1
    assert "CERTIFICATE_VERIFY_FAILED" in run.err
    assert tls_site.paths == []  # no request was ever sent over the unverified connection
