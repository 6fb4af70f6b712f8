#!/usr/bin/python3
"""A release's migrations (appMigrate), once across the fleet:

    migrate-once --log FILE RELEASE_ID COMMAND...

With a database (settings.env's DATABASE_PARAMETER), COMMAND runs under the database's advisory
lock, which a client session of the OS's own client (psql, or mysql for MySQL/MariaDB) takes
and holds for the whole run: postgres `pg_try_advisory_lock(<key of the app's name>)`, mysql
`GET_LOCK('webstack-migrate-<app>', 0)`, polled until WAIT seconds pass. The marker table
webstack_migrations(release_id, migrated_at) says which releases are migrated: a release
another server migrated is skipped, so N servers releasing together migrate once and the rest
wait, then skip. A failing COMMAND leaves no marker (the next release of it runs it again), and
should this process die, the session ends and the server drops the lock. Without a database
COMMAND runs on this server: there is nothing shared to lock.

The connection is the app's (DB_ENGINE, DB_HOST, DB_PORT, DB_NAME, DB_USER, DB_PASSWORD and
DATABASE_URL's sslmode, from the environment the release script gives it); the password goes
to the client in its environment (PGPASSWORD / MYSQL_PWD), never in a command line. COMMAND's
output goes to FILE, with this program's own lines, which it also prints ("migrate: ...").
Exit 0 when migrated or skipped, 1 when not (the last line of FILE says why).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import select
import subprocess
import sys
import time
import urllib.parse
from typing import TextIO

from awsclient import settings

WAIT = 900.0  # seconds another server's migration may hold the lock (the release lock's wait)
POLL = 1.0
ANSWER = 60.0  # seconds a statement may take to answer (the lock is only ever tried)
MARKER = "webstack_migrations"
RELEASE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class MigrateError(Exception):
    pass


def lock_key(app: str) -> int:
    """pg_advisory_lock's bigint: the same for every server of the app, unlike any other's."""
    digest = hashlib.sha256(f"webstack-migrate-{app}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class Session:
    """One client session, a coprocess fed statements on stdin; each answers one line."""

    def __init__(self, env: dict[str, str]):
        self.engine = env.get("DB_ENGINE", "")
        where = (f"{self.engine} database {env.get('DB_NAME', '')} at {env.get('DB_HOST', '')}:"
                 f"{env.get('DB_PORT', '')} as {env.get('DB_USER', '')}")
        self.where = where
        base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"}
        if self.engine == "postgres":
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(
                env.get("DATABASE_URL", "")).query)
            argv = ["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"]
            base.update(PGHOST=env["DB_HOST"], PGPORT=env["DB_PORT"], PGUSER=env["DB_USER"],
                        PGDATABASE=env["DB_NAME"], PGPASSWORD=env["DB_PASSWORD"],
                        PGCONNECT_TIMEOUT="10", PGAPPNAME="webstack-migrate",
                        PGSSLMODE=query.get("sslmode", ["prefer"])[-1])
        elif self.engine == "mysql":  # TLS whenever the server offers it (RDS does)
            argv = ["mysql", "--no-defaults", "--batch", "--skip-column-names", "--unbuffered",
                    "--connect-timeout=10", "-h", env["DB_HOST"], "-P", env["DB_PORT"],
                    "-u", env["DB_USER"], env["DB_NAME"]]
            base["MYSQL_PWD"] = env["DB_PASSWORD"]
        else:
            raise MigrateError(f"DB_ENGINE is {self.engine!r}: expected postgres or mysql")
        self.client = argv[0]
        try:
            self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, env=base)
        except OSError as err:
            raise MigrateError(f"cannot run {argv[0]} (the {self.engine} client): {err}") from None
        self._buffer = b""
        if self.engine == "postgres":
            self.execute("SET client_min_messages = warning")

    def _line(self) -> str:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + ANSWER
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise MigrateError(f"the {self.where} did not answer within {ANSWER:.0f} s")
            chunk = os.read(fd, 4096)
            if not chunk:
                raise MigrateError(f"the session with the {self.where} ended: {self.error()}")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode(errors="replace")

    def error(self) -> str:
        assert self.proc.stderr is not None
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        text = " ".join(self.proc.stderr.read().decode(errors="replace").split())
        return text[-500:] or f"{self.client} exited with {self.proc.returncode}"

    def query(self, sql: str) -> str:
        """The first column of the single row `sql` returns."""
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(f"{sql};\n".encode())
            self.proc.stdin.flush()
        except BrokenPipeError:
            raise MigrateError(f"the session with the {self.where} ended: {self.error()}") from None
        return self._line()

    def execute(self, sql: str) -> None:
        """A statement without rows, then one that answers: so its end is known."""
        self.query(f"{sql};\nSELECT 'done'")

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


class Lock:
    """The database's advisory lock and the marker table, in one session."""

    def __init__(self, session: Session, app: str):
        self.s = session
        if session.engine == "postgres":
            self.try_sql = f"SELECT pg_try_advisory_lock({lock_key(app)})"
            self.unlock_sql = f"SELECT pg_advisory_unlock({lock_key(app)})"
            self.name = f"pg_advisory_lock({lock_key(app)})"
            created = "migrated_at timestamptz NOT NULL DEFAULT now()"
            kind = "text"
        else:
            self.try_sql = f"SELECT GET_LOCK('webstack-migrate-{app}', 0)"
            self.unlock_sql = f"SELECT RELEASE_LOCK('webstack-migrate-{app}')"
            self.name = f"GET_LOCK('webstack-migrate-{app}')"
            created = "migrated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP"
            kind = "VARCHAR(64)"
        self.table_sql = (f"CREATE TABLE IF NOT EXISTS {MARKER} "
                          f"(release_id {kind} PRIMARY KEY, {created})")

    def take(self, wait: float, say: Say) -> None:
        deadline = time.monotonic() + wait
        waited = False
        while self.s.query(self.try_sql) not in ("t", "1"):
            if not waited:
                say(f"another server is migrating (it holds {self.name}): waiting, at most "
                    f"{wait:.0f} s")
                waited = True
            if time.monotonic() > deadline:
                raise MigrateError(f"another server still held {self.name} after {wait:.0f} s")
            time.sleep(POLL)
        self.s.execute(self.table_sql)

    def migrated_at(self, release: str) -> str:
        """When `release` was migrated ("" = not yet)."""
        count = self.s.query(f"SELECT count(*) FROM {MARKER} WHERE release_id = '{release}'")
        if count == "0":
            return ""
        return self.s.query(f"SELECT migrated_at FROM {MARKER} WHERE release_id = '{release}'")

    def mark(self, release: str) -> None:
        self.s.execute(f"INSERT INTO {MARKER} (release_id) VALUES ('{release}')")

    def release(self) -> None:
        self.s.query(self.unlock_sql)


class Say:
    """This program's lines, on stdout and in the log (after the commands' output so far)."""

    def __init__(self, log: TextIO):
        self.log = log

    def __call__(self, text: str) -> None:
        line = f"migrate: {text}\n"
        for out in (sys.stdout, self.log):
            out.write(line)
            out.flush()


def run_commands(command: list[str], log: TextIO) -> int:
    log.flush()
    return subprocess.run(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                          check=False).returncode


def migrate(release: str, command: list[str], log: TextIO, wait: float) -> int:
    say = Say(log)
    conf = settings()
    started = time.monotonic()
    if not conf.get("DATABASE_PARAMETER"):
        say("no database to lock: running the migrations on this server")
        code = run_commands(command, log)
        if code:
            say(f"a migration command failed (exit {code})")
            return 1
        say(f"migrated release {release} on this server in {time.monotonic() - started:.1f} s")
        return 0
    session = Session(dict(os.environ))
    try:
        lock = Lock(session, conf["APP"])
        lock.take(wait, say)
        when = lock.migrated_at(release)
        if when:
            say(f"release {release} was migrated at {when} (another server): skipped")
            lock.release()
            return 0
        say(f"migrating release {release} (this server holds {lock.name})")
        code = run_commands(command, log)
        if code:
            say(f"a migration command failed (exit {code}); release {release} is not marked "
                "migrated and the lock is released")
            return 1
        lock.mark(release)
        lock.release()
        say(f"migrated release {release} in {time.monotonic() - started:.1f} s")
        return 0
    finally:
        session.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--log", required=True)
    parser.add_argument("--wait", type=float, default=WAIT)
    parser.add_argument("release")
    parser.add_argument("command", nargs=argparse.REMAINDER)  # its own options are its own
    args = parser.parse_args(argv)
    if not args.command:
        parser.error("the migration COMMAND is missing")
    if not RELEASE_ID.match(args.release):
        parser.error(f"release id {args.release!r}: expected letters, digits, '.', '_', '-'")
    with open(args.log, "w", encoding="utf-8") as log:
        try:
            return migrate(args.release, args.command, log, args.wait)
        except (MigrateError, KeyError) as err:
            what = f"{err} is not in the environment" if isinstance(err, KeyError) else err
            Say(log)(f"FAILED: {what}")
            return 1


if __name__ == "__main__":
    sys.exit(main())
