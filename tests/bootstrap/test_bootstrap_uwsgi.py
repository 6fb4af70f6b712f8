"""appServer uwsgi, rendered and checked by the real tools: what replaces gunicorn's files,
uWSGI's own check of the rendered uwsgi.ini (strict mode: a misspelt option fails), and the
hostile ends of the settings it reads (appTimeoutSeconds 1 and 3600, appWorkers 64) rendered,
verified by systemd-analyze and served for real: the unit's ExecStart on the socket unit's path
(systemd-socket-activate) behind the rendered nginx, where harakiri ends a request that outlives
appTimeoutSeconds and the server goes on answering."""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from components.bootstrap import UWSGI_VERSION, render
from components.config import PROJECT_DIR, StackConfig
from devtools.localrun import LocalRun, run_local, unit_value
from tests import variants
from tests.bootstrap.test_bootstrap_tools import (
    _systemd_analyze_usable,
    local_install,
    require,
    run,
)

pytestmark = pytest.mark.realtools

UWSGI = str(Path(sys.prefix) / "bin/uwsgi")  # requirements-dev.txt's pyuwsgi: the servers' pin
HOSTILE = {"timeout-1": {"webstack:appTimeoutSeconds": "1"},
           "timeout-3600": {"webstack:appTimeoutSeconds": "3600"},
           "workers-64": {"webstack:appWorkers": "64"}}
# A request that outlives a one-second appTimeoutSeconds.
SLOW_APP = '''import time

def application(environ, start_response):
    if environ["PATH_INFO"] == "/slow":
        time.sleep(5)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok\\n"]
'''


def uwsgi_cfg(overrides: dict[str, str] | None = None) -> StackConfig:
    return variants.make_cfg({**variants.raw("uwsgi"), **(overrides or {})})


def rendered_files(cfg: StackConfig) -> dict[str, str]:
    """The server's files by their name (the artefact holds one of each)."""
    return {Path(p).name: text for p, text in render(cfg).files.items()}


def test_uwsgi_replaces_gunicorn_in_the_rendered_files() -> None:
    files = rendered_files(variants.cfg("uwsgi"))
    assert "uwsgi.ini" in files and "gunicorn.conf.py" not in files
    settings = files["settings.env"]
    for line in ('APP_SERVER="uwsgi"', 'SERVER_CONFIG="/etc/webstack/hello/uwsgi.ini"',
                 f'UWSGI_VERSION="{UWSGI_VERSION}"', 'GUNICORN_VERSION=""'):
        assert line in settings.splitlines(), settings
    unit = files["webstack-hello.service"]
    assert unit_value(unit, "ExecStart") == (
        "/srv/hello/current/venv/bin/uwsgi --ini /etc/webstack/hello/uwsgi.ini")
    assert unit_value(unit, "KillSignal") == "SIGHUP"  # its graceful stop (see uwsgi.ini.j2)
    assert "ExecReload=" not in unit and unit_value(unit, "Type") == "notify"
    site = files["hello.conf"]
    assert site.count("uwsgi_pass webstack-hello;") == 2 and "proxy_pass" not in site
    assert "include /etc/nginx/uwsgi_params;" in site
    ini = files["uwsgi.ini"]
    assert "module = app:application\n" in ini and "chdir = /srv/hello/current/src\n" in ini
    assert "logto = /var/log/webstack/hello/error.log\n" in ini
    # the file the CloudWatch agent ships to the app's log group
    shipped_logs = json.loads(files["cloudwatch-agent.json"])["logs"]["logs_collected"]
    assert {"file_path": "/var/log/webstack/hello/error.log",
            "log_group_name": "/webstack/dev/hello/app", "log_stream_name": "{instance_id}"} in (
        shipped_logs["files"]["collect_list"])
    # no socket of its own: systemd's, through LISTEN_FDS
    assert not [line for line in ini.splitlines() if re.match(r"[\w-]*socket *=", line)], ini
    # gunicorn's stack has none of it
    gunicorn = rendered_files(variants.cfg("dev"))
    assert "uwsgi.ini" not in gunicorn and "uwsgi" not in gunicorn["hello.conf"]
    assert 'UWSGI_VERSION=""' in gunicorn["settings.env"].splitlines()
    assert "KillSignal=" not in gunicorn["webstack-hello.service"]


def test_pyuwsgi_is_pinned_like_requirements_dev() -> None:
    pins = (PROJECT_DIR / "requirements-dev.txt").read_text().splitlines()
    assert f"pyuwsgi=={UWSGI_VERSION}" in pins
    proc = run([UWSGI, "--version"])
    assert proc.stdout.strip() == UWSGI_VERSION.split(".post")[0], proc.stdout + proc.stderr


@pytest.mark.parametrize("name", ["default", *HOSTILE])
def test_the_hostile_ends_reach_uwsgi_nginx_and_systemd(name: str) -> None:
    cfg = uwsgi_cfg(HOSTILE.get(name))
    files = rendered_files(cfg)
    timeout = cfg.app.timeout_seconds
    ini = files["uwsgi.ini"]
    for line in (f"harakiri = {timeout}", f"worker-reload-mercy = {timeout}",
                 "processes = 64" if cfg.app.workers else "processes = %(%k * 2 + 1)"):
        assert line in ini.splitlines(), ini
    site = files["hello.conf"]
    assert f"uwsgi_read_timeout {timeout}s;" in site and f"uwsgi_send_timeout {timeout}s;" in site
    # systemd waits for the requests a stop lets finish, then kills what is left
    assert unit_value(files["webstack-hello.service"], "TimeoutStopSec") == str(timeout + 5)


def uwsgi_check(ini: Path, *values: str) -> subprocess.CompletedProcess[str]:
    """uWSGI's own reading of `ini`: every option parsed (strict: an unknown one exits 1) and
    applied, the placeholders resolved; `values` printed as uWSGI reads them; then it exits 0
    before it binds or loads anything."""
    prints = [f"--hook-asap=print:{v}=%({v})" for v in values]
    return run([UWSGI, "--ini", str(ini), *prints, "--hook-asap=exit:0"])


@pytest.mark.parametrize("name", ["default", *HOSTILE])
def test_uwsgi_accepts_the_rendered_ini(name: str, tmp_path: Path) -> None:
    cfg = uwsgi_cfg(HOSTILE.get(name))
    target, _ = local_install(cfg, tmp_path / "root")
    ini = Path(f"{target.root}/etc/webstack/hello/uwsgi.ini")
    proc = uwsgi_check(ini, "processes", "threads", "harakiri", "buffer-size", "strict")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    cpus = os.sysconf("SC_NPROCESSORS_ONLN")
    processes = cfg.app.workers or 2 * cpus + 1
    printed = re.findall(r"^[\w-]+=\S+$", proc.stdout + proc.stderr, re.M)  # uWSGI logs to stderr
    assert printed == [f"processes={processes}", "threads=4",
                       f"harakiri={cfg.app.timeout_seconds}", "buffer-size=65535",
                       "strict=true"], proc.stderr


def test_a_misspelt_option_fails_uwsgis_check(tmp_path: Path) -> None:
    target, _ = local_install(uwsgi_cfg(), tmp_path / "root")
    ini = Path(f"{target.root}/etc/webstack/hello/uwsgi.ini")
    good = uwsgi_check(ini)
    assert good.returncode == 0, good.stdout + good.stderr
    ini.write_text(ini.read_text().replace("harakiri = ", "harakri = "))
    bad = uwsgi_check(ini)
    assert bad.returncode == 1
    assert "[strict-mode] unknown config directive: harakri" in bad.stdout + bad.stderr


@pytest.mark.parametrize("name", ["default", *HOSTILE])
def test_systemd_analyze_verifies_the_uwsgi_units(name: str, tmp_path: Path) -> None:
    tool = require("systemd-analyze")
    why_not = _systemd_analyze_usable(tool, tmp_path)
    if why_not:
        pytest.skip(f"systemd-analyze verify does not work on this machine ({why_not}); "
                    "a host or VM booted with systemd runs it")
    target, files = local_install(uwsgi_cfg(HOSTILE.get(name)), tmp_path / "root")
    units = sorted(p for p in files if p.startswith(f"{target.root}/etc/systemd/system/"))
    proc = run([tool, "verify", *units])
    assert proc.returncode == 0 and proc.stdout + proc.stderr == "", proc.stdout + proc.stderr


@contextmanager
def served(overrides: dict[str, str], source: Path | None = None) -> Iterator[LocalRun]:
    for tool in ("nginx", "systemd-socket-activate"):
        require(tool)
    if source is not None:
        overrides = {**overrides, "webstack:appSource": str(source)}
    root = Path(tempfile.mkdtemp(prefix="wsuw-", dir="/tmp"))  # short: a unix socket's path
    try:
        with run_local(uwsgi_cfg(overrides), root, venv=Path(sys.prefix)) as local:
            yield local
    finally:
        shutil.rmtree(root, ignore_errors=True)


def get(local: LocalRun, path: str, timeout: float = 30) -> tuple[int, float]:
    """The status of GET path through nginx, and how long it took."""
    started = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", local.target.http_port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        return resp.status, time.monotonic() - started
    finally:
        conn.close()


def log_of(local: LocalRun) -> str:
    path = Path(local.paths.logs) / "error.log"
    return path.read_text(errors="replace") if path.exists() else ""


def wait_for_line(local: LocalRun, text: str, seconds: float = 60) -> str:
    deadline = time.monotonic() + seconds
    while text not in (log := log_of(local)):
        if time.monotonic() > deadline:
            raise AssertionError(f"{text!r} not in uWSGI's log within {seconds} s:\n{log}")
        time.sleep(0.2)
    return log


def test_a_one_second_timeout_ends_a_slow_request_and_uwsgi_serves_on(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(SLOW_APP)
    (tmp_path / "requirements.txt").write_text("")
    with served(HOSTILE["timeout-1"], tmp_path) as local:
        assert get(local, "/healthz")[0] == 200
        status, took = get(local, "/slow")
        # nginx gives up after 1 s (504), or harakiri has killed the worker (502); never 5 s
        assert status in (502, 504) and took < 4, (status, took)
        log = wait_for_line(local, "HARAKIRI ON WORKER", 10)
        wait_for_line(local, "Respawned uWSGI worker", 10)
        assert get(local, "/healthz")[0] == 200, log


@pytest.mark.parametrize("name", ["timeout-3600", "workers-64"])
def test_the_hostile_settings_serve(name: str) -> None:
    with served(HOSTILE[name]) as local:
        assert get(local, "/healthz")[0] == 200
        workers = 64 if name == "workers-64" else 2 * os.sysconf("SC_NPROCESSORS_ONLN") + 1
        # lazy-apps: each worker imports the app itself
        log = wait_for_line(local, f"spawned uWSGI worker {workers} ")
        assert f"spawned uWSGI worker {workers + 1} " not in log
        assert f"harakiri = {HOSTILE[name].get('webstack:appTimeoutSeconds', '30')}" in Path(
            f"{local.paths.etc}/uwsgi.ini").read_text()
        assert get(local, "/")[0] == 200
