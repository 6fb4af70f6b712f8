"""migrate-once (server/migrate.py) as the release script runs it, against real PostgreSQL 15 and
MariaDB 10.11: the lock's bounded wait, a dead holder's lock freed by the server, what the lock
costs (printed with -s), a wrong password named without it, and a stack without a database
migrating on its own."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from components.bootstrap import render
from components.naming import Paths
from devtools.localrun import install, local_target
from tests.services import servers
from tests.services.conftest import NAME, PASSWORD, USER, stack_cfg

pytestmark = pytest.mark.realtools
RELEASE = "0123456789ab"


def installed(tmp_path: Path, settings: dict[str, str]) -> Paths:
    cfg = stack_cfg({"webstack:appMigrate": '["true"]', **settings})
    target = local_target(tmp_path / "root", 8080, 8443)
    install(render(cfg, target), target)
    return Paths(target.root, cfg.app.name)


def db_env(db: servers.Database, password: str = PASSWORD) -> dict[str, str]:
    """The app's environment as secrets.env gives it (the parts migrate-once reads)."""
    scheme, query = ("postgresql", "?sslmode=require") if db.engine == "postgres" else ("mysql", "")
    return {"PATH": os.environ["PATH"], "DB_ENGINE": db.engine, "DB_HOST": db.host,
            "DB_PORT": str(db.port), "DB_NAME": NAME, "DB_USER": USER, "DB_PASSWORD": password,
            "DATABASE_URL": f"{scheme}://{USER}:x@{db.host}:{db.port}/{NAME}{query}"}


def start(paths: Paths, log: Path, env: dict[str, str], *command: str,
          wait: float = 900) -> subprocess.Popen[str]:
    return subprocess.Popen(["/usr/bin/python3", f"{paths.lib}/migrate-once", "--log", str(log),
                             "--wait", str(wait), RELEASE, *command], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def until(log: Path, text: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and text in log.read_text():
            return
        time.sleep(0.05)
    raise TimeoutError(f"{text!r} not in {log} within {timeout} s")


def finish(proc: subprocess.Popen[str]) -> tuple[int, str]:
    out, _ = proc.communicate(timeout=120)
    return proc.returncode, out


def test_a_held_lock_is_waited_for_then_given_up(database: servers.Database,
                                                 tmp_path: Path) -> None:
    paths = installed(tmp_path, {"webstack:database": database.engine})
    gate, ran = tmp_path / "gate", tmp_path / "second-ran"
    first = start(paths, tmp_path / "first.log", db_env(database), "/bin/sh", "-c",
                  f"while [ ! -e {gate} ]; do sleep 0.1; done")
    try:
        until(tmp_path / "first.log", "migrate: migrating release")
        started = time.monotonic()
        code, out = finish(start(paths, tmp_path / "second.log", db_env(database), "touch",
                                 str(ran), wait=2))
        took = time.monotonic() - started
    finally:
        gate.touch()
    assert code == 1, out
    lines = out.splitlines()
    assert lines[0].startswith("migrate: another server is migrating (it holds "), out
    assert lines[0].endswith("): waiting, at most 2 s")
    assert lines[-1].startswith("migrate: FAILED: another server still held ")
    assert lines[-1].endswith(" after 2 s")
    assert 2 <= took < 30 and not ran.exists()
    assert (tmp_path / "second.log").read_text() == out  # the FAILED paragraph's excerpt
    code, out = finish(first)
    assert code == 0 and out.strip().splitlines()[-1].startswith(
        f"migrate: migrated release {RELEASE} in "), out
    # marked: the next one skips without running anything
    code, out = finish(start(paths, tmp_path / "third.log", db_env(database), "touch", str(ran)))
    assert code == 0 and f"release {RELEASE} was migrated at " in out and not ran.exists()
    database.sql(f"DELETE FROM webstack_migrations WHERE release_id = '{RELEASE}'", NAME)


def test_a_dead_holders_lock_is_freed_and_its_release_migrated_again(
        database: servers.Database, tmp_path: Path) -> None:
    paths = installed(tmp_path, {"webstack:database": database.engine})
    ran = tmp_path / "ran"
    first = start(paths, tmp_path / "first.log", db_env(database), "sleep", "30")
    until(tmp_path / "first.log", "migrate: migrating release")
    first.send_signal(signal.SIGKILL)  # the server died mid-migration; its client sees EOF
    assert finish(first)[0] == -signal.SIGKILL
    code, out = finish(start(paths, tmp_path / "second.log", db_env(database), "touch",
                             str(ran), wait=60))
    assert code == 0, out
    assert ran.exists() and f"migrate: migrated release {RELEASE} in " in out
    database.sql(f"DELETE FROM webstack_migrations WHERE release_id = '{RELEASE}'", NAME)


def test_what_the_lock_and_the_marker_add_to_a_release(database: servers.Database,
                                                       tmp_path: Path) -> None:
    """A migration that does nothing, then the same release again (skipped): the overhead."""
    paths = installed(tmp_path, {"webstack:database": database.engine})
    times = []
    for log in ("migrated.log", "skipped.log"):
        started = time.monotonic()
        code, out = finish(start(paths, tmp_path / log, db_env(database), "true"))
        times.append(time.monotonic() - started)
        assert code == 0, out
    assert "skipped" in out and max(times) < 10
    print(f"\n[migrate-once] {database.engine}: migrated {times[0]:.2f} s, skipped "
          f"{times[1]:.2f} s")
    database.sql(f"DELETE FROM webstack_migrations WHERE release_id = '{RELEASE}'", NAME)


def test_a_wrong_password_is_named_without_it(database: servers.Database,
                                              tmp_path: Path) -> None:
    paths = installed(tmp_path, {"webstack:database": database.engine})
    wrong = "not-the-password-42"
    code, out = finish(start(paths, tmp_path / "m.log", db_env(database, wrong), "true"))
    assert code == 1
    assert out.startswith(f"migrate: FAILED: the session with the {database.engine} database "
                          f"{NAME} at 127.0.0.1:{database.port} as {USER} ended: "), out
    assert ("password authentication failed" if database.engine == "postgres"
            else "Access denied") in out
    assert wrong not in out


def test_without_a_database_the_migrations_run_on_each_server(tmp_path: Path) -> None:
    paths = installed(tmp_path, {})
    ran = tmp_path / "ran"
    code, out = finish(start(paths, tmp_path / "m.log", {"PATH": os.environ["PATH"]}, "/bin/sh",
                             "-c", f"echo migrating; touch {ran}"))
    assert code == 0 and ran.exists()
    assert out.startswith("migrate: no database to lock: running the migrations on this server")
    assert "migrating\n" in (tmp_path / "m.log").read_text()
