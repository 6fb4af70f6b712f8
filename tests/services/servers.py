"""Real database and cache servers from Debian's packages, on 127.0.0.1 for one test module:
PostgreSQL 15 and MariaDB 10.11 (what RDS runs for postgres and mysql), memcached, and Redis 7
for valkey (Debian 12 packages no valkey; Redis 7 speaks the same protocol, AUTH and TLS
included). Each gets a data directory of its own under /tmp, a free port, a bounded wait for
it to answer and a teardown that stops it and removes the directory.

PostgreSQL refuses to run as root, and the tests run as root: initdb and postgres run as
`nobody` (setpriv), in a directory /tmp/wspg-* that nobody owns (pytest's tmp_path is under
root's 0700 directory). MariaDB runs as root with --user=root, which it allows when told. Both
speak TLS with a self-signed certificate, as RDS does (the created database's URL asks for
sslmode=require); the admin's statements go over the unix socket.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from devtools.localrun import stop
from devtools.motoserver import free_port

PG_BIN = Path("/usr/lib/postgresql/15/bin")
NOBODY = ("--reuid=nobody", "--regid=nogroup", "--clear-groups")
STARTUP_SECONDS = 60.0


def require(*tools: str) -> None:
    for tool in tools:
        if shutil.which(tool) is None and not (PG_BIN / tool).exists():
            pytest.skip(f"{tool} is not installed: scripts/setup-system.sh (make system) "
                        "installs it")


def run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=True,
                          **kwargs)  # type: ignore[call-overload]


def wait_port(port: int, proc: subprocess.Popen[bytes], what: str, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}: "
                               f"{log.read_text(errors='replace')[-2000:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"{what} did not listen on 127.0.0.1:{port} within {STARTUP_SECONDS} s")


def certificate(where: Path) -> tuple[Path, Path]:
    """A self-signed P-256 certificate for 127.0.0.1 (and its key), as a server presents it;
    also for 10.0.2.2, the host's loopback as a local VM's guest reaches it (tests/vm)."""
    cert, key = where / "server.crt", where / "server.key"
    run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1", "-addext",
         "subjectAltName=IP:127.0.0.1,IP:10.0.2.2", "-keyout", str(key), "-out", str(cert)])
    return cert, key


@dataclass(frozen=True)
class Database:
    engine: str  # postgres | mysql
    port: int
    admin_socket: str  # where the admin's statements go (no password)
    host: str = "127.0.0.1"

    def sql(self, statement: str, database: str = "") -> str:
        """One statement as the superuser over the unix socket; its rows, tab-separated."""
        if self.engine == "postgres":
            argv = ["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h",
                    self.admin_socket, "-p", str(self.port), "-U", "postgres",
                    "-d", database or "postgres", "-c", statement]
        else:
            argv = ["mariadb", "--no-defaults", "--batch", "--skip-column-names",
                    f"--socket={self.admin_socket}", "-u", "root", *[database] * bool(database),
                    "-e", statement]
        return run(argv, env={"PATH": os.environ["PATH"]}).stdout.strip()

    def create(self, user: str, password: str, name: str) -> None:
        """A user with a password and a database it owns, as RDS creates the master user's."""
        quoted = password.replace("'", "''")
        if self.engine == "postgres":
            self.sql(f"CREATE ROLE \"{user}\" LOGIN PASSWORD '{quoted}'")
            self.sql(f'CREATE DATABASE "{name}" OWNER "{user}"')
        else:
            quoted = quoted.replace("\\", "\\\\")
            self.sql(f"CREATE USER '{user}'@'%' IDENTIFIED BY '{quoted}'")
            self.sql(f"CREATE DATABASE `{name}`")
            self.sql(f"GRANT ALL ON `{name}`.* TO '{user}'@'%'")

    def set_password(self, user: str, password: str) -> None:
        """What RDS's rotation does to the master user."""
        quoted = password.replace("'", "''")
        if self.engine == "postgres":
            self.sql(f"ALTER ROLE \"{user}\" PASSWORD '{quoted}'")
        else:
            quoted = quoted.replace("\\", "\\\\")
            self.sql(f"ALTER USER '{user}'@'%' IDENTIFIED BY '{quoted}'")


@contextmanager
def postgres() -> Iterator[Database]:
    """PostgreSQL 15 as nobody: scram-sha-256 over TCP (TLS offered), trust on its socket."""
    require("initdb", "postgres", "psql", "openssl")
    base = Path(tempfile.mkdtemp(prefix="wspg-", dir="/tmp"))
    data, port = base / "data", free_port()
    log = base / "postgres.log"
    proc = None
    try:
        cert, key = certificate(base)
        os.chown(base, 65534, 65534)
        for path in (cert, key):
            os.chown(path, 65534, 65534)
            path.chmod(0o600)
        subprocess.run(["setpriv", *NOBODY, str(PG_BIN / "initdb"), "-D", str(data), "-U",
                        "postgres", "--auth-local=trust", "--auth-host=scram-sha-256",
                        "--no-sync", "--encoding=UTF8", "--locale=C"],
                       capture_output=True, check=True, timeout=120, env={"PATH": "/usr/bin:/bin"})
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                ["setpriv", *NOBODY, str(PG_BIN / "postgres"), "-D", str(data), "-p", str(port),
                 "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={base}",
                 "-c", "ssl=on", "-c", f"ssl_cert_file={cert}", "-c", f"ssl_key_file={key}",
                 "-c", "fsync=off", "-c", "max_connections=60"],
                stdout=out, stderr=subprocess.STDOUT, env={"PATH": "/usr/bin:/bin"})
        wait_port(port, proc, "postgres", log)
        yield Database("postgres", port, str(base))
    finally:
        if proc is not None:
            stop(proc)
        shutil.rmtree(base, ignore_errors=True)


@contextmanager
def mariadb() -> Iterator[Database]:
    """MariaDB 10.11 (the mysql engine's server here) with TLS, root over its socket."""
    require("mariadbd", "mariadb-install-db", "mariadb", "openssl")
    base = Path(tempfile.mkdtemp(prefix="wsmy-", dir="/tmp"))
    data, port, sock = base / "data", free_port(), str(base / "mysqld.sock")
    log = base / "mariadb.log"
    proc = None
    try:
        cert, key = certificate(base)
        run(["mariadb-install-db", "--no-defaults", f"--datadir={data}", "--user=root",
             "--auth-root-authentication-method=socket", "--skip-test-db"])
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                ["mariadbd", "--no-defaults", f"--datadir={data}", "--user=root",
                 f"--port={port}", "--bind-address=127.0.0.1", f"--socket={sock}",
                 f"--pid-file={base}/mysqld.pid", f"--ssl-cert={cert}", f"--ssl-key={key}",
                 "--skip-name-resolve", "--innodb-flush-log-at-trx-commit=0",
                 "--innodb-buffer-pool-size=32M", "--max-connections=60"],
                stdout=out, stderr=subprocess.STDOUT)
        wait_port(port, proc, "mariadbd", log)
        yield Database("mysql", port, sock)
    finally:
        if proc is not None:
            stop(proc)
        shutil.rmtree(base, ignore_errors=True)


@dataclass(frozen=True)
class Cache:
    engine: str  # memcached | valkey
    port: int
    password: str = ""
    ca: str = ""  # the certificate a TLS client may check the server against ("": no TLS)
    host: str = "127.0.0.1"


@contextmanager
def memcached(tls: bool = False) -> Iterator[Cache]:
    """memcached; with `tls`, TLS only (as ElastiCache's, transit encryption on)."""
    require("memcached")
    base = Path(tempfile.mkdtemp(prefix="wsmc-", dir="/tmp"))
    port, log = free_port(), base / "memcached.log"
    cert = None
    argv = ["memcached", "-l", "127.0.0.1", "-p", str(port), "-U", "0", "-u", "nobody",
            "-m", "16"]
    if tls:
        cert, key = certificate(base)
        argv += ["-Z", "-o", f"ssl_chain_cert={cert},ssl_key={key}"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_port(port, proc, "memcached", log)
        yield Cache("memcached", port, ca=str(cert) if cert else "")
    finally:
        stop(proc)
        shutil.rmtree(base, ignore_errors=True)


@contextmanager
def redis(password: str, tls: bool) -> Iterator[Cache]:
    """Redis 7 with AUTH (requirepass, from a 0600 config file) and, with `tls`, only a TLS
    port (as ElastiCache with in-transit encryption)."""
    require("redis-server", "openssl")
    base = Path(tempfile.mkdtemp(prefix="wsrd-", dir="/tmp"))
    port, log, conf = free_port(), base / "redis.log", base / "redis.conf"
    lines = ["bind 127.0.0.1", f"dir {base}", 'save ""', "appendonly no",
             f'requirepass "{password}"']
    cert = key = None
    if tls:
        cert, key = certificate(base)
        lines += ["port 0", f"tls-port {port}", f"tls-cert-file {cert}", f"tls-key-file {key}",
                  f"tls-ca-cert-file {cert}", "tls-auth-clients no"]
    else:
        lines.append(f"port {port}")
    conf.write_text("\n".join(lines) + "\n")
    conf.chmod(0o600)
    with open(log, "wb") as out:
        proc = subprocess.Popen(["redis-server", str(conf)], stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        wait_port(port, proc, "redis-server", log)
        yield Cache("valkey", port, password, str(cert) if cert else "")
    finally:
        stop(proc)
        shutil.rmtree(base, ignore_errors=True)
