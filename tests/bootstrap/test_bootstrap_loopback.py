"""A real run on loopback: the rendered gunicorn command (the service's ExecStart, on the socket
unit's path, handed over by systemd-socket-activate) behind the rendered nginx site, serving the
sample app from examples/hello-app, as installed by the rendered files."""

from __future__ import annotations

import gzip
import http.client
import json
import shutil
import ssl
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from components.config import StackConfig
from devtools.localrun import LocalRun, run_local
from tests import variants

pytestmark = pytest.mark.realtools

CLIENT_IP = "203.0.113.9"  # what a client (or, behind the ALB, the ALB) claims


@dataclass(frozen=True)
class Served:
    name: str
    cfg: StackConfig
    run: LocalRun

    def connection(self, url: str | None = None) -> http.client.HTTPConnection:
        parts = urlsplit(url or self.run.base_url)
        host, port = parts.hostname or "127.0.0.1", parts.port
        if parts.scheme == "https":
            ca = f"{self.run.paths.etc}/tls/fullchain.pem"  # trust exactly the server's cert
            return http.client.HTTPSConnection(host, port, timeout=10,
                                               context=ssl.create_default_context(cafile=ca))
        return http.client.HTTPConnection(host, port, timeout=10)

    def get(self, path: str, headers: dict[str, str] | None = None,
            url: str | None = None) -> tuple[http.client.HTTPResponse, bytes]:
        conn = self.connection(url)
        try:
            conn.request("GET", path, headers=headers or {})
            resp = conn.getresponse()
            return resp, resp.read()
        finally:
            conn.close()


@pytest.fixture(scope="module", params=["plain", "selfsigned", "alb-acm"])
def served(request: pytest.FixtureRequest) -> Iterator[Served]:
    for tool in ("nginx", "systemd-socket-activate", "openssl"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed: scripts/setup-system.sh (make system) does it")
    cfg = variants.cfg(request.param)
    # A short root: the socket path must fit in a unix address (108 bytes).
    root = Path(tempfile.mkdtemp(prefix="wsloop-", dir="/tmp"))
    try:
        with run_local(cfg, root, venv=Path(sys.prefix)) as run:
            yield Served(request.param, cfg, run)
    finally:
        shutil.rmtree(root)


def test_root_is_the_apps_answer_through_nginx(served: Served) -> None:
    resp, body = served.get("/")
    assert resp.status == 200
    assert resp.getheader("X-Served-By") == "hello-app"
    greeting = served.cfg.app.env.get("APP_GREETING", "Hello from webstack")
    assert body.decode() == greeting + "\n"  # the EnvironmentFile reached the app
    assert resp.getheader("Server") == "nginx"  # server_tokens off: no version


def test_static_file_comes_from_nginx_not_the_app(served: Served) -> None:
    resp, body = served.get("/static/hello.css")
    assert resp.status == 200
    assert body == (Path(__file__).parents[2] / "examples/hello-app/static/hello.css").read_bytes()
    assert resp.getheader("X-Served-By") is None
    assert resp.getheader("Content-Type") == "text/css"
    assert resp.getheader("Cache-Control") == "max-age=604800"
    assert resp.getheader("ETag")


def test_static_text_is_gzipped(served: Served) -> None:
    big = Path(served.run.paths.src) / "static/big.css"
    text = "".join(f".rule-{i} {{ margin: {i}px; }}\n" for i in range(300)).encode()
    big.write_bytes(text)
    resp, body = served.get("/static/big.css", {"Accept-Encoding": "gzip"})
    assert resp.getheader("Content-Encoding") == "gzip"
    assert resp.getheader("Vary") == "Accept-Encoding"
    assert gzip.decompress(body) == text


def test_health_path_answers(served: Served) -> None:
    resp, body = served.get(served.cfg.app.health_path)
    assert (resp.status, body) == (200, b"ok\n")


def test_security_headers_on_every_response(served: Served) -> None:
    for path in ("/", "/static/hello.css", "/missing"):
        resp, _ = served.get(path)
        assert resp.getheader("X-Content-Type-Options") == "nosniff"
        assert resp.getheader("X-Frame-Options") == "SAMEORIGIN"
        assert resp.getheader("Referrer-Policy") == "strict-origin-when-cross-origin"
    resp, _ = served.get("/", {"X-Forwarded-Proto": "https"})
    hsts = resp.getheader("Strict-Transport-Security")
    # Behind the ALB only when the client came over https; never for a self-signed cert.
    assert hsts == ("max-age=63072000" if served.name == "alb-acm" else None)


def test_request_headers_reach_the_app_as_configured(served: Served) -> None:
    _, body = served.get("/headers", {"Host": "app.example.com",
                                      "X-Forwarded-For": CLIENT_IP,
                                      "X-Forwarded-Proto": "https"})
    seen = json.loads(body)
    behind_alb = served.name == "alb-acm"
    # Direct: a client's forwarding headers are replaced by what nginx saw. Behind the ALB
    # (a trusted proxy range), the client address and scheme it forwards are kept.
    client = CLIENT_IP if behind_alb else "127.0.0.1"
    scheme = "https" if behind_alb or served.name == "selfsigned" else "http"
    assert seen["HTTP_X_FORWARDED_FOR"] == client
    assert seen["HTTP_X_REAL_IP"] == client
    assert seen["HTTP_X_FORWARDED_PROTO"] == scheme
    assert seen["wsgi.url_scheme"] == scheme
    assert seen["HTTP_HOST"] == "app.example.com"
    assert seen["HTTP_X_FORWARDED_HOST"] == "app.example.com"


def test_forwarded_scheme_is_only_http_or_https(served: Served) -> None:
    _, body = served.get("/headers", {"X-Forwarded-Proto": "javascript"})
    expected = "https" if served.name == "selfsigned" else "http"
    assert json.loads(body)["HTTP_X_FORWARDED_PROTO"] == expected


def test_body_larger_than_the_limit_is_refused_by_nginx(served: Served) -> None:
    conn = served.connection()
    try:
        conn.putrequest("POST", "/")
        conn.putheader("Content-Length", str((served.cfg.app.max_body_mib + 1) * 1024 * 1024))
        conn.endheaders()
        resp = conn.getresponse()
        assert resp.status == 413
    finally:
        conn.close()


def test_plain_http_redirects_to_https_when_tls_is_on(served: Served) -> None:
    if served.name != "selfsigned":
        resp, _ = served.get("/", url=served.run.http_url)
        assert resp.status == 200
        return
    resp, _ = served.get("/some/page?x=1", url=served.run.http_url)
    assert resp.status == 301
    port = served.run.target.https_port
    assert resp.getheader("Location") == f"https://127.0.0.1:{port}/some/page?x=1"
    conn = served.connection()
    assert isinstance(conn, http.client.HTTPSConnection)
    conn.connect()
    try:
        assert conn.sock.version() in ("TLSv1.2", "TLSv1.3")  # type: ignore[union-attr]
    finally:
        conn.close()
