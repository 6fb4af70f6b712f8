"""Local runs of a rendered stack on this machine: the loopback tests, the benchmark and
`make demo-local`. Not part of the Pulumi program (which never starts processes): it renders
with `components.bootstrap` and then plays systemd's and nginx's parts under one directory.

gunicorn runs from the service's ExecStart on the socket unit's path, handed over by systemd's
own socket-activation tool; nginx runs the rendered site inside the distro's nginx.conf.
"""

from __future__ import annotations

import io
import os
import re
import shlex
import shutil
import socket
import subprocess
import tarfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from components.bootstrap import (
    BootstrapError,
    RenderedBootstrap,
    Target,
    bundle_release,
    render,
    unit_name,
)
from components.bundle import Bundle, pack
from components.config import StackConfig
from components.naming import Paths
from devtools.motoserver import free_port


def local_target(root: Path, http_port: int, https_port: int,
                 venv: Path | None = None, pointer: str = "") -> Target:
    """Everything under `root`, nginx on 127.0.0.1, the developer's uv, and the given (already
    built) venv; None: a server's layout, a venv per release. `pointer`: the bundle's sha256
    the release script releases by default (see `stage_bundle`)."""
    return Target(root=str(root), http_port=http_port, https_port=https_port,
                  listen_hosts=("127.0.0.1",), venv=str(venv) if venv else "", uv=local_uv(),
                  trusted_proxies=("127.0.0.1/32",), ec2=False, pointer=pointer)


def local_uv() -> str:
    """The uv of requirements-dev.txt (a development dependency: servers fetch their own)."""
    from uv import find_uv_bin

    return find_uv_bin()


# own socket-activation tool; nginx runs the rendered site inside the distro's nginx.conf.

def install(rendered: RenderedBootstrap, target: Target) -> None:
    """Write every file as write_files would, under the target's root (owners aside)."""
    for path, text in rendered.files.items():
        if not path.startswith(target.root + "/"):
            raise BootstrapError(f"{path} is outside the target root {target.root}")
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
        out.chmod(rendered.modes[path])


def unit_value(unit_text: str, key: str) -> str:
    """The last `key=` value of a unit file (systemd's rule for repeated single values)."""
    values = [line.split("=", 1)[1].strip() for line in unit_text.splitlines()
              if line.startswith(f"{key}=")]
    if not values:
        raise BootstrapError(f"unit has no {key}=")
    return values[-1]


def read_env_file(path: str) -> dict[str, str]:
    """The variables of an EnvironmentFile as POSIX sh reads it (= systemd, for our quoting)."""
    text = Path(path).read_text(encoding="utf-8")
    keys = re.findall(r"^([A-Z_][A-Z0-9_]*)=", text, flags=re.MULTILINE)
    out = subprocess.run(["bash", "-c", 'set -a; . "$1"; env -0', "bash", path],
                         capture_output=True, check=True, timeout=10, env={}).stdout.decode()
    env = dict(item.split("=", 1) for item in out.split("\0") if item)
    return {k: env[k] for k in keys}


def nginx_main_conf(site: str, prefix: Path, distro_conf: str) -> str:
    """The distro's nginx.conf with its includes pointed at one site and its paths under prefix.

    Keeps the distro's http-level settings (gzip, mime types, ssl defaults), so `nginx -t` and
    the loopback run see the site in the context it has on a server. Workers run as the caller
    (as root: root, since the temp tree is not readable by www-data).
    """
    out = [f"pid {prefix}/nginx.pid;", f"error_log {prefix}/error.log;"]
    if os.geteuid() == 0:
        out.insert(0, "user root;")
    for line in distro_conf.splitlines():
        stripped = line.strip()
        if stripped.startswith(("user ", "pid ", "access_log ", "error_log ",
                                "include /etc/nginx/sites-enabled/")):
            continue
        if stripped.startswith("include /etc/nginx/conf.d/"):
            out += [f"\taccess_log {prefix}/access.log;", f"\tinclude {site};"]
            out += [f"\t{t}_temp_path {prefix}/{t};"
                    for t in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")]
            continue
        out.append(line)
    return "\n".join(out) + "\n"


def wait_until(check: Callable[[], bool], timeout: float, interval: float = 0.5) -> bool:
    """Poll `check` until true (True) or `timeout` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return False


def wait_for(check: Callable[[], bool], what: str, timeout: float = 30) -> None:
    """Poll `check` until true, or TimeoutError: every wait in local runs is bounded."""
    if not wait_until(check, timeout, interval=0.05):
        raise TimeoutError(f"{what} not ready within {timeout} s")


def connects(family: socket.AddressFamily, address: str | tuple[str, int]) -> Callable[[], bool]:
    def check() -> bool:
        with socket.socket(family) as s:
            try:
                s.connect(address)
            except OSError:
                return False
            return True
    return check


def stage_bundle(paths: Paths, bundle: Bundle, serving: bool = True) -> str:
    """The app's bundle as the release script leaves a fetched one (with the target's shared
    venv, so without building one): releases/<id>, and (`serving`) `current` -> it."""
    rid = bundle_release(bundle.sha256)
    release = Path(paths.releases) / rid
    if not (release / ".complete").exists():
        shutil.rmtree(release, ignore_errors=True)
        with tarfile.open(fileobj=io.BytesIO(bundle.data), mode="r:") as tar:
            tar.extractall(release / "src", filter="data")
        (release / ".complete").write_text(bundle.sha256 + "\n", encoding="ascii")
    if not serving:
        return rid
    (release / ".released").touch()
    link = Path(paths.home) / ".current.new"
    link.unlink(missing_ok=True)
    link.symlink_to(f"releases/{rid}")
    link.replace(paths.current)
    return rid


@dataclass(frozen=True)
class LocalRun:
    target: Target
    rendered: RenderedBootstrap
    paths: Paths
    base_url: str  # where the app answers: https when the stack has TLS
    http_url: str


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Terminate, then kill after 10 s: a stuck process never outlives its caller."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@contextmanager
def run_local(cfg: StackConfig, root: Path, venv: Path,
              distro_nginx_conf: Path = Path("/etc/nginx/nginx.conf"),
              timeout: float = 30.0) -> Iterator[LocalRun]:
    """Render for `root`, install there, and serve through nginx on free 127.0.0.1 ports."""
    code = None if cfg.app.from_git else pack(Path(cfg.app.source))
    target = local_target(root, free_port(), free_port(), venv, code.sha256 if code else "")
    rendered = render(cfg, target)
    install(rendered, target)
    paths = Paths(target.root, cfg.app.name)
    if code is not None:
        stage_bundle(paths, code)
    Path(paths.data).mkdir(parents=True, exist_ok=True)  # the release script makes it
    Path(paths.runtime).mkdir(parents=True, exist_ok=True)  # systemd's RuntimeDirectory=
    Path(paths.logs).mkdir(parents=True, exist_ok=True)  # systemd's LogsDirectory=
    Path(paths.nginx_logs).mkdir(parents=True, exist_ok=True)
    if cfg.tls.mode in ("selfsigned", "letsencrypt"):
        subprocess.run([f"{paths.lib}/tls"], check=True, timeout=60, capture_output=True)
    unit = f"{paths.units}/{unit_name(cfg)}"
    argv = shlex.split(unit_value(rendered.files[f"{unit}.service"], "ExecStart"))
    sock = unit_value(rendered.files[f"{unit}.socket"], "ListenStream")
    Path(sock).parent.mkdir(parents=True, exist_ok=True)
    env = read_env_file(f"{paths.etc}/app.env")
    nginx_prefix = root / "nginx-run"
    nginx_prefix.mkdir(exist_ok=True)
    main_conf = nginx_prefix / "nginx.conf"
    main_conf.write_text(nginx_main_conf(f"{paths.nginx}/conf.d/{cfg.app.name}.conf",
                                         nginx_prefix,
                                         distro_nginx_conf.read_text(encoding="utf-8")),
                         encoding="utf-8")
    procs: list[subprocess.Popen[bytes]] = []
    with open(root / "gunicorn.log", "wb") as glog, open(root / "nginx.log", "wb") as nlog:
        try:
            procs.append(subprocess.Popen(
                ["systemd-socket-activate", "--listen", sock,
                 *[f"--setenv={k}={v}" for k, v in env.items()], *argv],
                stdout=glog, stderr=subprocess.STDOUT, cwd=root))
            wait_for(lambda: Path(sock).exists(), "gunicorn socket", timeout)
            connects(socket.AF_UNIX, sock)()  # the first connection starts gunicorn
            procs.append(subprocess.Popen(
                ["nginx", "-c", str(main_conf), "-p", str(nginx_prefix), "-g", "daemon off;"],
                stdout=nlog, stderr=subprocess.STDOUT))
            http = f"http://127.0.0.1:{target.http_port}"
            https = cfg.tls.mode in ("selfsigned", "letsencrypt")
            wait_for(connects(socket.AF_INET, ("127.0.0.1", target.http_port)), "nginx",
                      timeout)
            yield LocalRun(target=target, rendered=rendered, paths=paths, http_url=http,
                           base_url=f"https://127.0.0.1:{target.https_port}" if https else http)
        finally:
            for proc in reversed(procs):
                stop(proc)
