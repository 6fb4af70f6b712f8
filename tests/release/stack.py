"""A server's release machinery on loopback, for real: the rendered files under a temporary
root, nginx with the rendered site on 127.0.0.1, `fakesystemd` holding the socket unit's socket
and running the service unit, and the rendered release script run as the root user would run
it, with stubs only for what needs a real system user (runuser, setpriv, chown, install -o).

Apps come from a local git repository (git's url rewriting answers the rendered https URL), and
uv installs from a local wheelhouse (gunicorn, rebuilt from this venv's copy, and a small
dependency only some releases need), so nothing leaves the machine.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import boto3
import pytest

from components.bootstrap import Endpoints, render
from components.bundle import Bundle, pack
from components.config import PROJECT_DIR, StackConfig
from components.naming import Paths
from devtools.local_aws import imds_handler
from devtools.localrun import connects, install, local_target, nginx_main_conf, stop, wait_for
from devtools.motoserver import free_port
from tests.http_site import serving
from tests.stubs import INSTALL_WITHOUT_OWNER, write_stubs
from tests.variants import make_cfg

REPO_URL = "https://git.example.com/acme/shop.git"
SECRET = "s3cr3t-db-passw0rd"  # in secrets.env; must never reach a release message
DEP = "webstack_release_dep"

STUBS = {
    "runuser": 'shift 3; exec "$@"',  # runuser -u USER -- CMD...
    "setpriv": 'shift 5; exec "$@"',  # setpriv --reuid U --regid G --init-groups CMD...
    "chown": "exit 0",
    "install": INSTALL_WITHOUT_OWNER,
}

SYSTEMCTL = """#!{python}
import socket, sys
with socket.socket(socket.AF_UNIX) as s:
    s.connect({control!r})
    s.sendall(("\\0".join(sys.argv[1:]) + "\\n").encode())
    answer = b""
    while chunk := s.recv(4096):
        answer += chunk
rc, _, message = answer.decode().partition("\\n")
if message and "--quiet" not in sys.argv:
    print(message, file=sys.stderr if rc != "0" else sys.stdout)
sys.exit(int(rc))
"""


def app_source(name: str, *, dep: bool = False, health: str = "ok") -> str:
    """The app of release `name`. health: ok | 500 (always) | once (200 once, then 500)."""
    lines = ["import os", f"RELEASE = {name!r}"]
    if dep:  # importable only from a venv built with this release's requirements
        lines.append(f"import {DEP}")
    lines += [
        "SEEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), '.health-seen')",
        "",
        "def application(environ, start_response):",
        "    status = '200 OK'",
        "    if environ['PATH_INFO'] == '/healthz':",
        "        body = f'ok {RELEASE}'",
    ]
    if health == "500":
        lines += ["        status = '500 Internal Server Error'",
                  "        body = 'database unreachable with password ' "
                  "+ os.environ['DB_PASSWORD']"]
    elif health == "once":
        lines += ["        if os.path.exists(SEEN):",
                  "            status = '500 Internal Server Error'",
                  "            body = 'broke after one answer'",
                  "        open(SEEN, 'a').close()"]
    lines += [
        "    else:",
        "        body = f'release {RELEASE}'" + (f" + ' with ' + {DEP}.VALUE" if dep else ""),
        "    data = (body + '\\n').encode()",
        "    start_response(status, [('Content-Type', 'text/plain'),",
        "                            ('Content-Length', str(len(data)))])",
        "    return [data]",
    ]
    return "\n".join(lines) + "\n"


# The stack's pre-start hook: records where it ran and with which venv; in a release that has a
# file named fail-hook it prints the secret it was given and fails.
PRE_START = ('echo "$PWD $VIRTUAL_ENV ${DB_PASSWORD:+has-secret}" > hook-ran; '
             'if [ -f fail-hook ]; then echo "cannot migrate as $DB_PASSWORD"; exit 3; fi')

Releases = dict[str, dict[str, str]]  # tag -> the files of its commit

RELEASES: Releases = {
    "A": {"app.py": app_source("A"), "requirements.txt": ""},
    "B": {"app.py": app_source("B", dep=True), "requirements.txt": "webstack-release-dep==1.0\n"},
    "C": {"app.py": app_source("C", health="500"), "requirements.txt": ""},
    "D": {"app.py": app_source("D", health="once"), "requirements.txt": ""},
    "E": {"app.py": app_source("E"), "requirements.txt": ""},
    "F": {"app.py": app_source("F"), "requirements.txt": "", "fail-hook": ""},
}


def _wheel(out: Path, name: str, version: str, files: dict[str, bytes]) -> Path:
    """A pure-Python wheel with a correct RECORD."""
    dist_info = f"{name}-{version}.dist-info"
    files = {**files,
             f"{dist_info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\n"
                                      f"Version: {version}\n".encode(),
             f"{dist_info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: webstack-tests\n"
                                   b"Root-Is-Purelib: true\nTag: py3-none-any\n"}
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{dist_info}/RECORD,,")
    wheel = out / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        for path, data in files.items():
            z.writestr(path, data)
        z.writestr(f"{dist_info}/RECORD", "\n".join(record) + "\n")
    return wheel


# The servers' WSGI servers and examples/flask-app's requirements (the same pins as this venv's).
INSTALLED = ("gunicorn", "pyuwsgi",
             "flask", "werkzeug", "jinja2", "markupsafe", "itsdangerous", "click", "blinker")


def wheelhouse(out: Path) -> Path:
    """INSTALLED (this venv's copies, the same pinned versions) and the dependency of release
    B."""
    out.mkdir(parents=True, exist_ok=True)
    for name in INSTALLED:
        _installed_wheel(out, name)
    _wheel(out, DEP, "1.0", {f"{DEP}/__init__.py": b"VALUE = 'dep 1.0'\n"})
    return out


def _installed_wheel(out: Path, name: str) -> Path:
    """A wheel of this venv's copy of `name` (its code, compiled parts included, and its entry
    points: the installer writes its commands), tagged for any Python: uv installs it into a
    venv of this same interpreter version."""
    dist = importlib.metadata.distribution(name)
    files = {}
    for f in dist.files or []:
        if "__pycache__" in f.parts or f.parts[0] == ".." or f.name in (
                "RECORD", "INSTALLER", "REQUESTED", "direct_url.json"):
            continue
        path = Path(str(f.locate()))
        code = not f.parts[0].endswith(".dist-info") or f.name == "entry_points.txt"
        if path.is_file() and code:
            files[str(f)] = path.read_bytes()
    return _wheel(out, name, dist.version, files)


def origin_repo(path: Path, releases: Releases = RELEASES) -> Path:
    """One commit per release, tagged with its name (each commit holds its files alone)."""
    git = ["git", "-C", str(path), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    path.mkdir(parents=True)
    subprocess.run([*git, "init", "--quiet", "--initial-branch=main"], check=True, timeout=30)
    for tag, files in releases.items():
        for old in path.iterdir():
            if old.name != ".git":
                old.unlink()
        for name, text in files.items():
            (path / name).write_text(text)
        for args in (["add", "--all", "."], ["commit", "--quiet", "-m", f"release {tag}"],
                     ["tag", tag]):
            subprocess.run([*git, *args], check=True, timeout=30)
    return path


def rev(repo: Path, ref: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "rev-parse", f"{ref}^{{commit}}"],
                          capture_output=True, text=True, check=True, timeout=30).stdout.strip()


@dataclass
class Poll:
    """Sequential GETs on a fresh connection each, until stopped: (status or error, body)."""

    port: int
    path: str
    results: list[tuple[str, str]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _run(self) -> None:
        while not self._stop.is_set():
            self.results.append(get(self.port, self.path))
            time.sleep(0.01)

    def __enter__(self) -> Poll:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(timeout=30)


def get(port: int, path: str) -> tuple[str, str]:
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return str(resp.status), resp.read().decode().strip()
    except OSError as err:
        return f"error: {err}", ""
    finally:
        conn.close()


@dataclass(frozen=True)
class Wrk:
    requests: int
    non_2xx: int
    socket_errors: dict[str, int]
    started: float
    ended: float
    output: str

    @property
    def failed(self) -> int:
        return self.non_2xx + sum(self.socket_errors.values())


def parse_wrk(output: str, started: float, ended: float) -> Wrk:
    total = re.search(r"^\s*(\d+) requests in ", output, re.M)
    if total is None:
        raise AssertionError(f"wrk printed no request count:\n{output}")
    non = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                       output)
    socket_errors: dict[str, int] = {}
    if errors:
        for kind, count in zip(("connect", "read", "write", "timeout"), errors.groups(),
                               strict=True):
            socket_errors[kind] = int(count)
    return Wrk(int(total.group(1)), int(non.group(1)) if non else 0, socket_errors, started,
               ended, output)


@dataclass
class Release:
    returncode: int
    stdout: str
    stderr: str
    lines: list[tuple[float, str]]  # (monotonic time, stdout line)
    ended: float

    def when(self, text: str) -> float:
        return next(t for t, line in self.lines if text in line)


@dataclass
class Stack:
    cfg: StackConfig
    root: Path
    paths: Paths
    port: int
    env: dict[str, str]
    origin: Path

    @property
    def release_script(self) -> str:
        return f"{self.paths.lib}/release"

    def release(self, *args: str, wrk_at: str | None = None, wrk_seconds: int = 12,
                timeout: float = 300,
                on_line: Callable[[str], None] | None = None) -> tuple[Release, Wrk | None]:
        """Run the release script; with `wrk_at`, start a bounded wrk load on / when its output
        first contains that text, and wait for both. `on_line` sees each line as it comes."""
        proc = subprocess.Popen([self.release_script, *args], env=self.env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        lines: list[tuple[float, str]] = []
        wrk: subprocess.Popen[str] | None = None
        wrk_started = 0.0
        deadline = time.monotonic() + timeout
        assert proc.stdout is not None and proc.stderr is not None
        stderr_chunks: list[str] = []
        err_pipe = proc.stderr
        reader = threading.Thread(target=lambda: stderr_chunks.append(err_pipe.read()),
                                  daemon=True)
        reader.start()
        try:
            for line in proc.stdout:
                lines.append((time.monotonic(), line.rstrip("\n")))
                if on_line is not None:
                    on_line(line)
                if wrk_at and wrk is None and wrk_at in line:
                    wrk_started = time.monotonic()
                    wrk = subprocess.Popen(
                        ["wrk", "-t2", "-c20", f"-d{wrk_seconds}s", "--timeout", "10s",
                         f"http://127.0.0.1:{self.port}/"],
                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                if time.monotonic() > deadline:
                    raise TimeoutError("release took too long")
            proc.wait(timeout=max(1.0, deadline - time.monotonic()))
            ended = time.monotonic()
            reader.join(timeout=10)
            result = None
            if wrk is not None:
                out, _ = wrk.communicate(timeout=wrk_seconds + 30)
                result = parse_wrk(out, wrk_started, time.monotonic())
        finally:
            for p in (proc, wrk):
                if p is not None and p.poll() is None:
                    p.kill()
                    p.wait(timeout=10)
            reader.join(timeout=10)
            proc.stdout.close()
            proc.stderr.close()
            if wrk is not None and wrk.stdout is not None:
                wrk.stdout.close()
        return Release(proc.returncode, "\n".join(line for _, line in lines) + "\n",
                       "".join(stderr_chunks), lines, ended), result

    def get(self, path: str) -> tuple[str, str]:
        return get(self.port, path)

    def releases(self) -> list[str]:
        return sorted(p.name for p in Path(self.paths.releases).iterdir() if p.is_dir())

    def current(self) -> Path:
        return Path(self.paths.current).resolve()


@contextmanager
def loopback_stack(cfg: StackConfig, workdir: Path, endpoints: Endpoints | None = None,
                   bucket: str = "", origin: Path | None = None) -> Iterator[Stack]:
    """`endpoints`, `bucket`: where a bundle app's release fetches its bundle (local S3).
    With a Secrets Manager endpoint the secrets unit is the real one (ssm-get against it);
    else a stand-in writes one secret. `origin`: the app's repository (a new one of RELEASES
    by default): stacks given the same one are servers of one fleet."""
    root = Path(tempfile.mkdtemp(prefix="wsrel-", dir="/tmp"))  # short: unix socket paths
    procs: list[subprocess.Popen[bytes]] = []
    log = open(root / "fakesystemd.log", "wb")  # noqa: SIM115 (closed below)
    try:
        # a venv per release
        target = replace(local_target(root, free_port(), free_port()),
                         endpoints=endpoints or Endpoints())
        install(render(cfg, target, bucket), target)
        paths = Paths(target.root, cfg.app.name)
        if not (endpoints and endpoints.secretsmanager):
            # what SSM holds: fakesystemd's secrets oneshot writes it where ssm-get would
            (root / "ssm-secrets.env").write_text(f'DB_PASSWORD="{SECRET}"\n')
        Path(paths.nginx_logs).mkdir(parents=True)
        stubs = root / "stub"
        control = str(root / "systemd.sock")
        write_stubs(stubs, STUBS)
        (stubs / "systemctl").write_text(SYSTEMCTL.format(python=sys.executable,
                                                          control=control))
        (stubs / "systemctl").chmod(0o755)
        origin = origin or origin_repo(workdir / "origin")
        env = {"PATH": f"{stubs}:/usr/bin:/bin", "HOME": str(root), "LC_ALL": "C",
               "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_COUNT": "1",
               "GIT_CONFIG_KEY_0": f"url.file://{origin}.insteadOf",
               "GIT_CONFIG_VALUE_0": REPO_URL,
               "UV_NO_INDEX": "1", "UV_FIND_LINKS": str(wheelhouse(workdir / "wheels"))}
        if not cfg.app.static:  # a static site has no units: nginx alone serves it
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "tests.release.fakesystemd", "--root", str(root),
                 "--unit", f"webstack-{cfg.app.name}", "--control", control],
                cwd=PROJECT_DIR, stdout=log, stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONPATH": str(PROJECT_DIR)}))
            wait_for(lambda: Path(control).exists(), "fakesystemd")
        prefix = root / "nginx-run"
        prefix.mkdir()
        main_conf = prefix / "nginx.conf"
        main_conf.write_text(nginx_main_conf(f"{paths.nginx}/conf.d/{cfg.app.name}.conf", prefix,
                                             Path("/etc/nginx/nginx.conf").read_text()))
        procs.append(subprocess.Popen(
            ["nginx", "-c", str(main_conf), "-p", str(prefix), "-g", "daemon off;"],
            stdout=log, stderr=subprocess.STDOUT))
        wait_for(connects(socket.AF_INET, ("127.0.0.1", target.http_port)), "nginx")
        yield Stack(cfg, root, paths, target.http_port, env, origin)
    finally:
        control_path = root / "systemd.sock"
        if control_path.exists():  # stop gunicorn through fakesystemd, then it exits
            with socket.socket(socket.AF_UNIX) as s:
                try:
                    s.settimeout(40)
                    s.connect(str(control_path))
                    s.sendall(b"exit\n")
                    s.recv(100)
                except OSError:
                    pass
        for proc in reversed(procs):
            stop(proc)
        log.close()
        shutil.rmtree(root, ignore_errors=True)


def require_tools(*tools: str) -> None:
    for tool in tools:
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed: scripts/setup-system.sh (make system) does it")


@dataclass(frozen=True)
class BundleBucket:
    """The stack's bucket on a local S3 (moto), versioned: `pulumi up`'s uploads of a bundle."""

    s3: Any
    bucket: str
    key: str

    @classmethod
    def create(cls, moto_url: str, bucket: str, key: str) -> BundleBucket:
        s3 = boto3.client("s3", endpoint_url=moto_url, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
        s3.create_bucket(Bucket=bucket)
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        return cls(s3, bucket, key)

    def upload(self, src: Path) -> tuple[Bundle, str]:
        """`src` packed as a new version of the key: the bundle and its release pointer."""
        code = pack(src)
        version = self.s3.put_object(Bucket=self.bucket, Key=self.key,
                                     Body=code.data)["VersionId"]
        return code, f"{code.sha256}@{version}"


@contextmanager
def bundle_loopback(work: Path, moto_url: str, bucket: str, key: str,
                    overrides: dict[str, str],
                    requirements: bool = True) -> Iterator[tuple[Stack, BundleBucket, StackConfig]]:
    """A loopback stack whose app is an appSource bundle fetched from a local S3 (moto) with
    IMDSv2 credentials, as servers fetch it: the stack, its versioned bucket, its config."""
    require_tools("nginx", "wrk", "flock")
    store = BundleBucket.create(moto_url, bucket, key)
    source = work / "source"
    source.mkdir()
    if requirements:
        (source / "requirements.txt").write_text("")
    cfg = make_cfg({"webstack:appSource": str(source), **overrides})
    with serving(imds_handler("us-east-1", "i-0loopback")) as imds, loopback_stack(
            cfg, work, Endpoints(imds=imds, s3=moto_url), bucket) as stack:
        yield stack, store, cfg


def dump(stack: Stack) -> str:
    """The run's own logs, for an assertion message."""
    out = []
    for path in (stack.root / "fakesystemd.log", stack.root / "service.log",
                 Path(stack.paths.logs) / "error.log"):  # gunicorn's, with what the app prints
        if path.exists():
            out.append(f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}")
    return "\n".join(out) + json.dumps(stack.releases())
