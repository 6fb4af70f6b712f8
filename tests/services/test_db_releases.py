"""Releases against a real database (PostgreSQL 15, MariaDB 10.11), through the loopback harness
of tests/release (the rendered release script, fakesystemd holding the socket, nginx): the
secrets unit is the real one (ssm-get against moto), the app keeps one database connection per
worker, opened with the password it started with, as a driver's pool does.

- two servers (two roots, one database, one repository) releasing together migrate once: one
  migrates under the database's lock, the other waits, then skips;
- a failing migration abandons the release with its output (password masked) while the old
  release keeps serving under load;
- a rotated password (ALTER ROLE / ALTER USER, then the secret) reaches the app through the
  refresh: no failed request across the restart, and an unchanged secret restarts nothing.
Numbers are printed (-s): the migrate phase, requests under load."""

from __future__ import annotations

import json
import os
import subprocess
import sysconfig
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from components.bootstrap import Endpoints
from components.config import StackConfig
from devtools.localrun import wait_until
from tests.release.stack import (
    REPO_URL,
    Poll,
    Release,
    Releases,
    Stack,
    dump,
    loopback_stack,
    origin_repo,
    require_tools,
    rev,
)
from tests.services import servers
from tests.services.conftest import Aws, stack_cfg

pytestmark = [pytest.mark.realtools, pytest.mark.aws]

DB_MODULE = '''import os, site, urllib.parse
site.addsitedir({site!r})  # the test venv's drivers: psycopg 3, PyMySQL


def connect():
    """One connection from DATABASE_URL: a function running a statement for its one value."""
    url = os.environ["DATABASE_URL"]
    if url.startswith("postgresql://"):
        import psycopg
        conn = psycopg.connect(url, autocommit=True, connect_timeout=10)

        def value(sql):
            cur = conn.execute(sql)
            return cur.fetchone()[0] if cur.description else None
        return value
    import pymysql
    parts = urllib.parse.urlsplit(url)
    conn = pymysql.connect(host=parts.hostname, port=parts.port,
                           user=urllib.parse.unquote(parts.username),
                           password=urllib.parse.unquote(parts.password),
                           database=urllib.parse.unquote(parts.path[1:]), autocommit=True,
                           connect_timeout=10)

    def one(sql):
        with conn.cursor() as cur:
            cur.execute(sql)
            row = cur.fetchone()
            return row[0] if row else None
    return one


USER = ("SELECT current_user" if os.environ["DB_ENGINE"] == "postgres"
        else "SELECT SUBSTRING_INDEX(CURRENT_USER(), '@', 1)")
'''

APP = '''import os, threading
import db

RELEASE = {tag!r}
QUERY = db.connect()  # at import: each worker's one connection, kept for its life
LOCK = threading.Lock()


def application(environ, start_response):
    with LOCK:
        user = QUERY(db.USER)
    if environ["PATH_INFO"] == "/healthz":
        body = f"ok {{RELEASE}}"
    else:
        body = f"release {{RELEASE}} as {{user}} pid {{os.getppid()}}"
    data = (body + "\\n").encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(data)))])
    return [data]
'''

# The migration: one row per run, naming the server (its data directory is its own); then it
# waits (bounded) for MIGRATION_GATE, so a test can hold it while the other server shows it
# waits.
MIGRATION = '''import os, time
import db

query = db.connect()
query("CREATE TABLE IF NOT EXISTS migration_runs (server VARCHAR(300), release_tag VARCHAR(8))")
query("INSERT INTO migration_runs VALUES ('" + os.environ["APP_DATA_DIR"] + "', '"
      + open("tag").read().strip() + "')")
query("SELECT count(*) FROM migration_runs")
gate = os.environ["MIGRATION_GATE"]
for _ in range(600):
    if os.path.exists(gate):
        break
    time.sleep(0.1)
print("migration ran on", os.environ["APP_DATA_DIR"])
'''

MIGRATE = ['if [ -f fail-migration ]; then echo "cannot migrate as $DB_PASSWORD"; exit 4; fi',
           "python migration.py"]


def db_releases() -> Releases:
    site = sysconfig.get_paths()["purelib"]
    common = {"db.py": DB_MODULE.format(site=site), "migration.py": MIGRATION,
              "requirements.txt": ""}
    releases = {tag: {**common, "app.py": APP.format(tag=tag), "tag": tag + "\n"}
                for tag in ("A", "B")}
    releases["M"] = {**releases["A"], "app.py": APP.format(tag="M"), "tag": "M\n",
                     "fail-migration": ""}
    return releases


def report(what: str, **numbers: object) -> None:
    print(f"\n[db releases] {what}: " + ", ".join(f"{k}={v}" for k, v in numbers.items()))


def phase_seconds(result: Release, name: str) -> float:
    line = next(line for _, line in result.lines if line.startswith("release: phases: "))
    words = line.removeprefix("release: phases: ").split()
    return float(words[words.index(name) + 1].rstrip("s"))


def db_cfg(engine: str, gate: Path) -> StackConfig:
    return stack_cfg({"webstack:database": engine, "webstack:appRepo": REPO_URL,
                      "webstack:appRef": "A", "webstack:appWorkers": "2",
                      "webstack:appMigrate": json.dumps(MIGRATE),
                      "webstack:appEnv": json.dumps([f"MIGRATION_GATE={gate}"])})


@contextmanager
def servers_of(cfg: StackConfig, work: Path, imds: str, moto_url: str,
               count: int) -> Iterator[list[Stack]]:
    """`count` servers of one fleet: their own roots, one repository, moto's SSM and secrets."""
    require_tools("nginx", "wrk", "git", "flock")
    origin = origin_repo(work / "origin", db_releases())
    endpoints = Endpoints(imds=imds, ssm=moto_url, secretsmanager=moto_url)
    with ExitStack() as stack:
        yield [stack.enter_context(loopback_stack(cfg, work / f"server-{i}", endpoints,
                                                  origin=origin)) for i in range(count)]


@contextmanager
def serving_a(db: servers.Database, aws: Aws, imds: str, moto_url: str,
              work: Path) -> Iterator[tuple[Stack, str, str, str, str]]:
    """One server of a database of its own, serving release A: (the stack, the database's
    user, password, name and secret ARN)."""
    gate = work / "gate"
    gate.touch()
    cfg = db_cfg(db.engine, gate)
    user, password, name, arn = created(aws, cfg, db)
    with servers_of(cfg, work, imds, moto_url, 1) as (stack,):
        first, _ = stack.release("A")
        assert first.returncode == 0, first.stdout + first.stderr + dump(stack)
        yield stack, user, password, name, arn


def fresh_database(db: servers.Database) -> tuple[str, str, str]:
    """A user and database of a test's own (user, password, name)."""
    tag = uuid.uuid4().hex[:8]
    user, password, name = f"u{tag}", f"pw-{tag}:/@%", f"d{tag}"
    db.create(user, password, name)
    return user, password, name


def created(aws: Aws, cfg: StackConfig, db: servers.Database) -> tuple[str, str, str, str]:
    """The database as the stack leaves it for servers: (user, password, name, secret ARN)."""
    user, password, name = fresh_database(db)
    arn = aws.created_database(cfg, db, password=password, user=user, name=name)
    return user, password, name, arn


def runs(db: servers.Database, name: str) -> list[str]:
    return sorted(db.sql("SELECT server FROM migration_runs", name).splitlines())


def markers(db: servers.Database, name: str) -> list[str]:
    return sorted(db.sql("SELECT release_id FROM webstack_migrations", name).splitlines())


def test_two_servers_releasing_together_migrate_once(
        database: servers.Database, aws: Aws, imds: str, moto_url: str, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    cfg = db_cfg(database.engine, gate)
    user, _, name, _ = created(aws, cfg, database)
    with servers_of(cfg, tmp_path, imds, moto_url, 2) as fleet:

        def watch(line: str) -> None:  # the server that waits said so: let the migration end
            if "another server is migrating" in line:
                gate.touch()

        results: dict[int, Release] = {}
        threads = [threading.Thread(target=lambda i=i: results.__setitem__(
            i, fleet[i].release("A", on_line=watch)[0])) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=400)
        for i, stack in enumerate(fleet):
            assert results[i].returncode == 0, results[i].stdout + results[i].stderr + dump(stack)
        migrated = [i for i in range(2)
                    if "release: migrate: migrating release" in results[i].stdout]
        assert len(migrated) == 1, [r.stdout for r in results.values()]
        other = results[1 - migrated[0]].stdout
        sha = rev(fleet[0].origin, "A")[:12]
        assert "release: migrate: another server is migrating (it holds " in other
        assert f"release: migrate: release {sha} was migrated at " in other
        assert "(another server): skipped" in other
        # exactly one run, by the server that held the lock; the release marked once
        assert runs(database, name) == [fleet[migrated[0]].paths.data]
        assert markers(database, name) == [sha]
        for stack in fleet:
            status, body = stack.get("/")
            assert status == "200" and body.startswith(f"release A as {user} pid "), body
        waited = phase_seconds(results[1 - migrated[0]], "migrate")
        report(f"{database.engine}: two servers, one migration",
               migrate_phase_s=phase_seconds(results[migrated[0]], "migrate"),
               waiting_server_migrate_phase_s=waited)


def test_a_failing_migration_leaves_the_old_release_serving(
        database: servers.Database, aws: Aws, imds: str, moto_url: str, tmp_path: Path) -> None:
    with serving_a(database, aws, imds, moto_url, tmp_path) as (stack, user, password, name, _):
        a = stack.current().name
        with Poll(stack.port, "/") as poll:
            result, wrk = stack.release("M", wrk_at="release: migrations", wrk_seconds=6)
        assert result.returncode == 1, result.stdout
        message = result.stderr.strip()
        assert message.startswith("release: FAILED: release M (") and "\n" not in message
        assert "a migration failed: migrate: migrating release " in message, message
        assert ("cannot migrate as *** migrate: a migration command failed (exit 4); release "
                in message), message
        assert f"Rolled back to {a}, which kept serving throughout" in message
        assert password not in message + result.stdout
        assert wrk is not None and wrk.requests > 0
        assert (wrk.non_2xx, wrk.socket_errors) == (0, {}), wrk.output
        assert {body.split(" pid ")[0] for _, body in poll.results} == {f"release A as {user}"}
        assert stack.current().name == a
        m = rev(stack.origin, "M")[:12]
        assert m not in markers(database, name)  # not marked: its next release runs it again
        # the next good release migrates (its phase measured: what a migration adds)
        good, _ = stack.release("B")
        assert good.returncode == 0, good.stdout + good.stderr + dump(stack)
        assert markers(database, name) == sorted([a, rev(stack.origin, "B")[:12]])
        report(f"{database.engine}: failed migration under load", wrk_requests=wrk.requests,
               wrk_failed=wrk.failed, migrate_phase_s=phase_seconds(good, "migrate"))


def test_a_rotated_password_reaches_the_app_with_no_failed_request(
        database: servers.Database, aws: Aws, imds: str, moto_url: str, tmp_path: Path) -> None:
    with serving_a(database, aws, imds, moto_url, tmp_path) as (stack, user, password, name,
                                                                 arn):
        status, body = stack.get("/")
        assert status == "200" and body.startswith(f"release A as {user} pid "), body
        before = body.split(" pid ")[1]
        # every worker holds its connection (systemd has gunicorn's READY before its workers
        # load the app: one answering is not all connected)
        assert wait_until(lambda: sessions(database, user) == 2, 60), sessions(database, user)
        # RDS's rotation: the server's password first, then the secret
        rotated = password + "-rotated"
        database.set_password(user, rotated)
        assert not connects(database, user, password, name)  # the old one is refused now
        # the connections the workers hold survive it
        held = [stack.get("/") for _ in range(10)]
        assert {status for status, _ in held} == {"200"}, (held, dump(stack))
        aws.secrets.put_secret_value(SecretId=arn, SecretString=json.dumps(
            {"username": user, "password": rotated}))
        with Poll(stack.port, "/") as poll:
            result, wrk = stack.release("--refresh-secrets", wrk_at="secrets changed",
                                        wrk_seconds=6)
        assert result.returncode == 0, result.stdout + result.stderr + dump(stack)
        assert "release: secrets changed: restarting webstack-hello with them" in result.stdout, (
            result.stdout + dump(stack))
        assert result.stdout.strip().endswith("webstack-hello restarted with them and answers "
                                              "/healthz")
        assert wrk is not None and wrk.requests > 0
        assert (wrk.non_2xx, wrk.socket_errors) == (0, {}), wrk.output
        assert {status for status, _ in poll.results} == {"200"}, poll.results[-5:]
        status, body = stack.get("/")
        after = body.split(" pid ")[1]
        assert status == "200" and after != before  # new workers, connected with the new one
        secrets_env = Path(stack.paths.secrets_dir) / "secrets.env"
        assert secrets_env.stat().st_mode & 0o777 == 0o600
        assert rotated in secrets_env.read_text()
        # under the release lock: while a release holds it, the refresh waits
        lock = Path(stack.root) / "var/lib/webstack/hello/release.lock"
        holder = subprocess.Popen(["flock", str(lock), "sleep", "2"])
        try:
            time.sleep(0.3)
            started = time.monotonic()
            again, _ = stack.release("--refresh-secrets")
            waited = time.monotonic() - started
        finally:
            holder.wait(timeout=30)
        assert again.returncode == 0, again.stderr
        assert waited >= 1.5, waited
        assert again.stdout.strip() == "release: secrets unchanged: nothing restarted"
        assert stack.get("/")[1].split(" pid ")[1] == after
        report(f"{database.engine}: rotation", wrk_requests=wrk.requests,
               poll_requests=len(poll.results))


def sessions(db: servers.Database, user: str) -> int:
    """How many sessions `user` has open."""
    if db.engine == "postgres":
        return int(db.sql(f"SELECT count(*) FROM pg_stat_activity WHERE usename = '{user}'"))
    return int(db.sql("SELECT count(*) FROM information_schema.processlist "
                      f"WHERE user = '{user}'"))


def connects(db: servers.Database, user: str, password: str, name: str) -> bool:
    """A new connection with these credentials is accepted."""
    if db.engine == "postgres":
        argv = ["psql", "-X", "-h", db.host, "-p", str(db.port), "-U", user, "-d", name,
                "-c", "SELECT 1"]
        env = {"PGPASSWORD": password, "PGCONNECT_TIMEOUT": "10"}
    else:
        argv = ["mysql", "--no-defaults", "-h", db.host, "-P", str(db.port), "-u", user, name,
                "-e", "SELECT 1"]
        env = {"MYSQL_PWD": password}
    return subprocess.run(argv, capture_output=True, timeout=60, check=False,
                          env={"PATH": os.environ["PATH"], **env}).returncode == 0
