"""A private repository, for real on loopback: the rendered fetch-app reads the deploy key (or
token) from SSM (moto, with the IMDSv2 role's credentials) and fetches from an `sshd` of the
test's own on 127.0.0.1 (its own config, host key and authorized_keys; no system config read)
that serves a bare git repository, or from git-http-backend behind HTTPS with a token. The
right key and pinned host key fetch; a wrong key, an unpinned host key or a wrong token fail
with ssh's or git's own line where the release script's message takes it from; the key file is
gone afterwards and no secret is ever in a command line."""

from __future__ import annotations

import base64
import getpass
import json
import os
import shutil
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread

import boto3
import pytest

from components.bootstrap import Endpoints, render
from components.naming import Paths
from devtools.local_aws import imds_handler
from devtools.localrun import install, local_target
from devtools.motoserver import free_port
from tests.bootstrap.test_bootstrap_scripts import origin, rev  # noqa: F401  (a fixture)
from tests.http_site import serving
from tests.variants import make_cfg

pytestmark = [pytest.mark.realtools, pytest.mark.aws]
SSHD = "/usr/sbin/sshd"
TOKEN = "ghp_l00pbackT0kenThatMustNeverShow"


def keygen(path: Path) -> str:
    """An ed25519 key pair without a passphrase at `path`: the public line."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name, "-f",
                    str(path)], check=True, timeout=30)
    return path.with_suffix(".pub").read_text().strip()


@dataclass(frozen=True)
class Sshd:
    url: str  # ssh://user@127.0.0.1:port/path of the bare repository
    port: int
    host_key: str  # the host's public key: "ssh-ed25519 AAAA..."
    client_key: Path  # the private key authorized_keys admits


@pytest.fixture
def sshd(tmp_path: Path, origin: Path) -> Iterator[Sshd]:  # noqa: F811
    if not Path(SSHD).exists() or shutil.which("ssh") is None:
        pytest.skip("openssh-server is not installed: scripts/setup-system.sh installs it")
    home = tmp_path / "sshd"
    home.mkdir()
    host_key = keygen(home / "host_key")
    (home / "authorized_keys").write_text(keygen(home / "client_key") + "\n")
    bare = tmp_path / "repo.git"
    subprocess.run(["git", "clone", "--quiet", "--bare", str(origin), str(bare)], check=True,
                   timeout=30)
    port = free_port()
    (home / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {home}/host_key\n"
        f"PidFile {home}/sshd.pid\nAuthorizedKeysFile {home}/authorized_keys\n"
        f"AllowUsers {getpass.getuser()}\nPermitRootLogin prohibit-password\nStrictModes no\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
        "PubkeyAuthentication yes\nLogLevel VERBOSE\n")
    if os.geteuid() == 0:  # sshd as root insists on its (empty) privilege separation directory
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    log = (home / "sshd.log").open("wb")
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(home / "sshd_config")],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 15
        while subprocess.run(["ssh-keyscan", "-p", str(port), "127.0.0.1"], capture_output=True,
                             timeout=10, check=False).returncode != 0 or not (
                                 home / "sshd.pid").exists():
            assert proc.poll() is None, (home / "sshd.log").read_text()
            assert time.monotonic() < deadline, "sshd did not start"
            time.sleep(0.1)
        yield Sshd(f"ssh://{getpass.getuser()}@127.0.0.1:{port}{bare}", port,
                   " ".join(host_key.split()[:2]), home / "client_key")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


@pytest.fixture
def imds() -> Iterator[str]:
    with serving(imds_handler("us-east-1", "i-0test")) as url:
        yield url


@dataclass(frozen=True)
class Server:
    paths: Paths
    env: dict[str, str]
    argv_log: Path  # every git and ssh command line fetch-app ran, NUL-separated
    runtime: Path  # the TMPDIR the key's private directory goes in


def server(tmp_path: Path, imds: str, moto_url: str, settings: dict[str, str],
           credential: str) -> Server:
    """The rendered files of a stack with `settings` under a root, `credential` in moto's SSM
    where the program stores it, and an environment whose git and ssh record their argv."""
    cfg = make_cfg(settings)
    root = tmp_path / "root"
    target = replace(local_target(root, 8080, 8443, root / "venv"),
                     endpoints=Endpoints(imds=imds, ssm=moto_url))
    rendered = render(cfg, target)
    install(rendered, target)
    assert credential not in rendered.user_data and credential.encode() not in rendered.artefact
    assert cfg.app.repo_credential is not None
    boto3.client("ssm", endpoint_url=moto_url, region_name="us-east-1",
                 aws_access_key_id="testing", aws_secret_access_key="testing").put_parameter(
        Name=cfg.app.repo_credential.parameter, Value=credential, Type="SecureString",
        Overwrite=True)
    paths = Paths(target.root, cfg.app.name)
    Path(paths.home).mkdir(parents=True)
    spy = tmp_path / "spy"
    spy.mkdir()
    argv_log = tmp_path / "argv.log"
    for tool in ("git", "ssh"):
        real = shutil.which(tool)
        # the key file's mode and owner while ssh runs, from its -i argument
        check = ('a=("$@"); for i in "${!a[@]}"; do [ "${a[$i]}" != -i ] || stat -c '
                 '"key %a %U" "${a[$((i + 1))]}" >>"$ARGV_LOG"; done\n') * (tool == "ssh")
        (spy / tool).write_text(f'#!/bin/bash\nprintf "%s\\0" "$0" "$@" >>"$ARGV_LOG"\n{check}'
                                f'exec {real} "$@"\n')
        (spy / tool).chmod(0o755)
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    env = {"PATH": f"{spy}:/usr/bin:/bin", "HOME": str(tmp_path), "GIT_CONFIG_NOSYSTEM": "1",
           "TMPDIR": str(runtime), "ARGV_LOG": str(argv_log)}
    return Server(paths, env, argv_log, runtime)


def fetch_app(srv: Server, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([f"{srv.paths.lib}/fetch-app", *args], capture_output=True, text=True,
                          timeout=120, check=False, env=srv.env)


def release_reason(proc: subprocess.CompletedProcess[str]) -> str:
    """What the release script's FAILED paragraph quotes of a failed resolve: its last lines."""
    return " ".join((proc.stdout + proc.stderr).splitlines()[-3:])


def ssh_settings(sshd: Sshd, key: str, host_key: str) -> dict[str, str]:
    return {"webstack:appRepo": sshd.url, "webstack:appRepoSshKey": key,
            "webstack:appRepoHostKeys": json.dumps([f"[127.0.0.1]:{sshd.port} {host_key}"])}


def assert_no_secret_in_argv(srv: Server, secret: str) -> None:
    recorded = srv.argv_log.read_text()
    assert recorded, "the spies recorded nothing"
    for line in (s for s in secret.splitlines() if len(s) > 20 and "PRIVATE KEY" not in s):
        assert line not in recorded
    assert secret.strip() not in recorded


def test_the_right_key_and_the_pinned_host_key_fetch(
        sshd: Sshd, origin: Path, tmp_path: Path, imds: str, moto_url: str) -> None:  # noqa: F811
    key = sshd.client_key.read_text()
    srv = server(tmp_path, imds, moto_url, ssh_settings(sshd, key, sshd.host_key), key)
    proc = fetch_app(srv, "resolve", "v1")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == rev(origin, "v1") + "\n"
    dest = tmp_path / "release" / "src"
    export = fetch_app(srv, "export", proc.stdout.strip(), str(dest))
    assert export.returncode == 0, export.stderr
    assert (dest / "app.py").exists() and not (dest / "NEWS").exists()
    recorded = srv.argv_log.read_text().split("\0")
    assert "StrictHostKeyChecking=yes" in recorded and "BatchMode=yes" in recorded
    assert f"UserKnownHostsFile={srv.paths.etc}/known_hosts" in recorded
    assert f"key 600 {getpass.getuser()}" in srv.argv_log.read_text()  # while ssh ran
    assert_no_secret_in_argv(srv, key)
    assert list(srv.runtime.iterdir()) == []  # the key's directory is gone


def test_a_wrong_key_fails_with_permission_denied(
        sshd: Sshd, tmp_path: Path, imds: str, moto_url: str) -> None:
    keygen(tmp_path / "wrong_key")
    wrong = (tmp_path / "wrong_key").read_text()
    srv = server(tmp_path, imds, moto_url, ssh_settings(sshd, wrong, sshd.host_key), wrong)
    proc = fetch_app(srv, "resolve", "main")
    assert proc.returncode != 0 and proc.stdout == ""
    assert "Permission denied (publickey)" in release_reason(proc), proc.stderr
    assert list(srv.runtime.iterdir()) == []
    assert_no_secret_in_argv(srv, wrong)


def test_a_host_key_not_pinned_fails_host_key_verification(
        sshd: Sshd, tmp_path: Path, imds: str, moto_url: str) -> None:
    other = " ".join(keygen(tmp_path / "other_host_key").split()[:2])
    key = sshd.client_key.read_text()
    srv = server(tmp_path, imds, moto_url, ssh_settings(sshd, key, other), key)
    proc = fetch_app(srv, "resolve", "main")
    assert proc.returncode != 0 and proc.stdout == ""
    assert "Host key verification failed." in release_reason(proc), proc.stderr
    assert list(srv.runtime.iterdir()) == []


# --- https with a token ------------------------------------------------------------------------

@dataclass(frozen=True)
class GitHttps:
    url: str
    ca: Path
    authorizations: list[str]  # every Authorization header the server was sent


@pytest.fixture
def git_https(tmp_path: Path, origin: Path) -> Iterator[GitHttps]:  # noqa: F811
    """git-http-backend (smart HTTP) behind a TLS server whose certificate a CA of the test's
    signs; it answers 401 unless Basic auth carries oauth2:TOKEN."""
    backend = "/usr/lib/git-core/git-http-backend"
    if not Path(backend).exists() or shutil.which("openssl") is None:
        pytest.skip("git's http backend or openssl is missing")
    projects = tmp_path / "https"
    projects.mkdir()
    subprocess.run(["git", "clone", "--quiet", "--bare", str(origin),
                    str(projects / "shop.git")], check=True, timeout=30)
    cert, key = projects / "cert.pem", projects / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout",
                    str(key), "-out", str(cert)], check=True, capture_output=True, timeout=30)
    seen: list[str] = []
    expected = "Basic " + base64.b64encode(f"oauth2:{TOKEN}".encode()).decode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.cgi()

        def do_POST(self) -> None:
            self.cgi()

        def cgi(self) -> None:
            auth = self.headers.get("Authorization", "")
            seen.append(auth)
            if auth != expected:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="git"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            path, _, query = self.path.partition("?")
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            out = subprocess.run([backend], input=body, capture_output=True, check=True,
                                 timeout=60, env={
                "GIT_PROJECT_ROOT": str(projects), "GIT_HTTP_EXPORT_ALL": "1",
                "PATH_INFO": path, "QUERY_STRING": query, "REQUEST_METHOD": self.command,
                "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                "CONTENT_LENGTH": str(len(body)), "REMOTE_USER": "oauth2",
                "GIT_PROTOCOL": self.headers.get("Git-Protocol", "")}).stdout
            head, _, payload = out.partition(b"\r\n\r\n")
            status = 200
            headers = []
            for line in head.decode().split("\r\n"):
                name, _, value = line.partition(": ")
                if name.lower() == "status":
                    status = int(value.split()[0])
                else:
                    headers.append((name, value))
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    httpd.socket = tls.wrap_socket(httpd.socket, server_side=True)
    thread = Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield GitHttps(f"https://127.0.0.1:{httpd.server_address[1]}/shop.git", cert, seen)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


@pytest.mark.parametrize("token", [TOKEN, "ghp_notTheRightOne"])
def test_a_token_reaches_git_through_the_credential_helper_only(
        token: str, git_https: GitHttps, origin: Path, tmp_path: Path,  # noqa: F811
        imds: str, moto_url: str) -> None:
    settings = {"webstack:appRepo": git_https.url, "webstack:appRepoToken": token,
                "webstack:appRepoTokenUser": "oauth2"}
    srv = server(tmp_path, imds, moto_url, settings, token)
    srv.env["GIT_SSL_CAINFO"] = str(git_https.ca)
    proc = fetch_app(srv, "resolve", "v1")
    if token == TOKEN:
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == rev(origin, "v1") + "\n"
    else:
        assert proc.returncode != 0 and proc.stdout == ""
        assert "Authentication failed" in release_reason(proc), proc.stderr
    assert token not in proc.stdout + proc.stderr
    assert_no_secret_in_argv(srv, token)
    cache = Path(srv.env["HOME"]).glob("**/config")
    assert not any(token in p.read_text(errors="replace") for p in cache if p.is_file())
    assert "" in git_https.authorizations  # asked first without, as git does
