"""Secret → environment, for real: the SSM parameters and secrets in moto (as the program and
RDS leave them), the rendered secrets unit's own command (ssm-get, IMDSv2 role credentials)
writing secrets.env, and real clients connecting with exactly what it wrote: psql and mysql
(MariaDB's) with DB_*, psycopg with DATABASE_URL, PyMySQL with the mysql URL, Redis 7 with AUTH
over TLS from CACHE_URL, memcached."""

from __future__ import annotations

import json
import os
import shlex
import socket
import ssl
import subprocess
import sys
import urllib.parse
from dataclasses import replace
from pathlib import Path

import psycopg
import pymysql
import pytest
import redis as redis_client
from pymemcache.client.base import Client as Memcache

from components import naming
from components.bootstrap import Endpoints, render
from components.config import ConfigError, StackConfig
from components.naming import Paths
from devtools.localrun import install, local_target, read_env_file, unit_value
from tests.services import servers
from tests.services.conftest import NAME, PASSWORD, USER, Aws, stack_cfg

pytestmark = [pytest.mark.realtools, pytest.mark.aws]
TOKEN = "auth/token+with:odd=chars"


def secrets_run(cfg: StackConfig, root: Path, imds: str,
                moto_url: str) -> tuple[subprocess.CompletedProcess[str], Path, Paths]:
    """The rendered secrets unit's ExecStart, as systemd runs it (root, a bare environment)."""
    target = replace(local_target(root, 8080, 8443, Path(sys.prefix)),
                     endpoints=Endpoints(imds=imds, ssm=moto_url, secretsmanager=moto_url))
    rendered = render(cfg, target)
    install(rendered, target)
    paths = Paths(target.root, cfg.app.name)
    unit = rendered.files[f"{paths.units}/webstack-{cfg.app.name}-secrets.service"]
    proc = subprocess.run(shlex.split(unit_value(unit, "ExecStart")), capture_output=True,
                          text=True, timeout=60, check=False, env={"PATH": "/usr/bin:/bin"})
    return proc, Path(paths.secrets_dir) / "secrets.env", paths


def written(proc: subprocess.CompletedProcess[str], out: Path) -> dict[str, str]:
    assert proc.returncode == 0, proc.stderr
    assert out.stat().st_mode & 0o777 == 0o600
    return read_env_file(str(out))


def client_sees(env: dict[str, str]) -> str:
    """`SELECT current_user` through the OS's client, given DB_* the way a shell script would
    use them (the password in the client's environment)."""
    if env["DB_ENGINE"] == "postgres":
        argv = ["psql", "-X", "-A", "-t", "-c", "SELECT current_user"]
        extra = {"PGHOST": env["DB_HOST"], "PGPORT": env["DB_PORT"], "PGUSER": env["DB_USER"],
                 "PGDATABASE": env["DB_NAME"], "PGPASSWORD": env["DB_PASSWORD"],
                 "PGSSLMODE": "require"}
    else:
        argv = ["mysql", "--no-defaults", "--batch", "--skip-column-names", "-h", env["DB_HOST"],
                "-P", env["DB_PORT"], "-u", env["DB_USER"], env["DB_NAME"], "-e",
                "SELECT SUBSTRING_INDEX(CURRENT_USER(), '@', 1)"]
        extra = {"MYSQL_PWD": env["DB_PASSWORD"]}
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False,
                          env={"PATH": os.environ["PATH"], **extra})
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def driver_sees(url: str) -> tuple[str, bool]:
    """(current user, over TLS) through a driver given DATABASE_URL alone."""
    if url.startswith("postgresql://"):
        with psycopg.connect(url, connect_timeout=10) as conn:
            row = conn.execute("SELECT current_user, ssl FROM pg_stat_ssl "
                               "WHERE pid = pg_backend_pid()").fetchone()
            assert row is not None
            return str(row[0]), bool(row[1])
    parts = urllib.parse.urlsplit(url)
    conn = pymysql.connect(host=parts.hostname, port=parts.port or 3306,
                           user=urllib.parse.unquote(parts.username or ""),
                           password=urllib.parse.unquote(parts.password or ""),
                           database=urllib.parse.unquote(parts.path[1:]), connect_timeout=10)
    with conn, conn.cursor() as cur:
        cur.execute("SELECT SUBSTRING_INDEX(CURRENT_USER(), '@', 1)")
        row = cur.fetchone()
        assert row is not None
        return str(row[0]), False


def expected_db(db: servers.Database, url: str) -> dict[str, str]:
    return {"DATABASE_URL": url, "DB_ENGINE": db.engine, "DB_HOST": db.host,
            "DB_PORT": str(db.port), "DB_NAME": NAME, "DB_USER": USER, "DB_PASSWORD": PASSWORD}


ENCODED = urllib.parse.quote(PASSWORD, safe="")


def test_a_database_the_stack_created_is_the_apps_environment(
        database: servers.Database, aws: Aws, imds: str, moto_url: str, tmp_path: Path) -> None:
    cfg = stack_cfg({"webstack:database": database.engine,
                     "webstack:appSecrets": json.dumps(["API_KEY=/shop/api-key"])})
    aws.ssm.put_parameter(Name="/shop/api-key", Value="k3y-value", Type="SecureString",
                          Overwrite=True)
    aws.created_database(cfg, database)
    proc, out, _ = secrets_run(cfg, tmp_path / "root", imds, moto_url)
    env = written(proc, out)
    if database.engine == "postgres":  # RDS's parameter group forces TLS: the URL asks for it
        url = f"postgresql://{USER}:{ENCODED}@127.0.0.1:{database.port}/{NAME}?sslmode=require"
    else:
        url = f"mysql://{USER}:{ENCODED}@127.0.0.1:{database.port}/{NAME}"
    assert env == {"API_KEY": "k3y-value", **expected_db(database, url)}
    assert PASSWORD not in proc.stdout + proc.stderr
    assert client_sees(env) == USER
    user, tls = driver_sees(env["DATABASE_URL"])
    assert user == USER and tls == (database.engine == "postgres")


@pytest.mark.parametrize("scheme", ["postgres", "postgresql", "mysql"])
def test_a_database_the_user_brings_by_url(scheme: str, postgres: servers.Database,
                                           mysql: servers.Database, aws: Aws, imds: str,
                                           moto_url: str, tmp_path: Path) -> None:
    db = mysql if scheme == "mysql" else postgres
    query = "" if scheme == "mysql" else "?sslmode=require&application_name=shop"
    given = f"{scheme}://{USER}:{ENCODED}@127.0.0.1:{db.port}/{NAME}{query}"
    name = f"shop/{scheme}/database-url"
    aws.secrets.create_secret(Name=name, SecretString=given)
    cfg = stack_cfg({"webstack:databaseUrlSecret": name})
    aws.parameter(naming.database_parameter(cfg), {"url_secret": name})
    proc, out, _ = secrets_run(cfg, tmp_path / "root", imds, moto_url)
    env = written(proc, out)
    # parsed into its parts (engine from the scheme), the URL in the canonical scheme, the
    # query as the user wrote it
    canonical = given.replace("postgres://", "postgresql://")
    assert env == expected_db(db, canonical)
    assert client_sees(env) == USER
    assert driver_sees(env["DATABASE_URL"])[0] == USER


@pytest.mark.parametrize("engine", ["postgres", "mariadb"])
def test_a_database_the_user_brings_as_rds_json(engine: str, postgres: servers.Database,
                                                mysql: servers.Database, aws: Aws, imds: str,
                                                moto_url: str, tmp_path: Path) -> None:
    db = postgres if engine == "postgres" else mysql
    arn = aws.secret(json.dumps({"engine": engine, "host": db.host, "port": db.port,
                                 "username": USER, "password": PASSWORD, "dbname": NAME}))
    cfg = stack_cfg({"webstack:databaseUrlSecret": arn})
    aws.parameter(naming.database_parameter(cfg), {"url_secret": arn})
    proc, out, _ = secrets_run(cfg, tmp_path / "root", imds, moto_url)
    env = written(proc, out)
    scheme, query = ("postgresql", "?sslmode=require") if db.engine == "postgres" else ("mysql", "")
    assert env == expected_db(db, f"{scheme}://{USER}:{ENCODED}@127.0.0.1:{db.port}/{NAME}{query}")
    assert client_sees(env) == USER


def redis_auth_ping(host: str, port: int, password: str, ca: str) -> list[bytes]:
    """AUTH, PING and a SET/GET over a raw (TLS) socket: what any Redis client sends."""
    raw = socket.create_connection((host, port), timeout=10)
    conn: socket.socket = raw
    if ca:
        context = ssl.create_default_context(cafile=ca)
        conn = context.wrap_socket(raw, server_hostname=host)
    with conn:
        answers = []
        for command in (["AUTH", password], ["PING"], ["SET", "k", "v"], ["GET", "k"]):
            conn.sendall(f"*{len(command)}\r\n".encode() + b"".join(
                f"${len(part.encode())}\r\n{part}\r\n".encode() for part in command))
            answers.append(conn.recv(1024))
        return answers


@pytest.mark.parametrize("tls", [True, False], ids=["tls", "plain"])
def test_valkey_with_auth_is_the_apps_cache_url(tls: bool, aws: Aws, imds: str, moto_url: str,
                                                tmp_path: Path) -> None:
    with servers.redis(TOKEN, tls=tls) as cache:
        cfg = stack_cfg({"webstack:cache": "valkey"})
        aws.cache(cfg, cache)
        proc, out, _ = secrets_run(cfg, tmp_path / "root", imds, moto_url)
        env = written(proc, out)
        scheme = "rediss" if tls else "redis"
        token = urllib.parse.quote(TOKEN, safe="")
        assert env == {"CACHE_URL": f"{scheme}://:{token}@127.0.0.1:{cache.port}/0",
                       "CACHE_ENGINE": "valkey", "CACHE_HOST": "127.0.0.1",
                       "CACHE_PORT": str(cache.port), "CACHE_TLS": str(tls).lower(),
                       "CACHE_PASSWORD": TOKEN}
        assert TOKEN not in proc.stdout + proc.stderr
        assert redis_auth_ping(env["CACHE_HOST"], int(env["CACHE_PORT"]),
                               env["CACHE_PASSWORD"], cache.ca) == [
            b"+OK\r\n", b"+PONG\r\n", b"+OK\r\n", b"$1\r\nv\r\n"]
        # a client given CACHE_URL alone (the AUTH token decoded from it)
        tls_options = {"ssl_ca_certs": cache.ca} if tls else {}
        client = redis_client.Redis.from_url(env["CACHE_URL"], socket_timeout=10, **tls_options)
        with client:
            assert client.get("k") == b"v"
        # without the token the server refuses
        assert redis_auth_ping("127.0.0.1", cache.port, "wrong", cache.ca)[1].startswith(
            b"-NOAUTH")


def test_memcached_is_the_apps_cache_url(aws: Aws, imds: str, moto_url: str,
                                         tmp_path: Path) -> None:
    with servers.memcached() as cache:
        cfg = stack_cfg({"webstack:cache": "memcached"})
        aws.cache(cfg, cache)
        proc, out, _ = secrets_run(cfg, tmp_path / "root", imds, moto_url)
        env = written(proc, out)
        assert env == {"CACHE_URL": f"memcache://127.0.0.1:{cache.port}",
                       "CACHE_ENGINE": "memcached", "CACHE_HOST": "127.0.0.1",
                       "CACHE_PORT": str(cache.port), "CACHE_TLS": "false"}
        client = Memcache((env["CACHE_HOST"], int(env["CACHE_PORT"])), timeout=10)
        client.set("k", b"v")
        assert client.get("k") == b"v"
        client.close()


def test_a_memcached_cluster_s_url_names_every_node(aws: Aws, imds: str, moto_url: str,
                                                   tmp_path: Path) -> None:
    with servers.memcached() as one, servers.memcached() as two:
        cfg = stack_cfg({"webstack:cache": "memcached", "webstack:cacheNodes": "2"})
        aws.cache(cfg, one, two)
        proc, out, _ = secrets_run(cfg, tmp_path / "root", imds, moto_url)
        env = written(proc, out)
        nodes = env["CACHE_URL"].removeprefix("memcache://").split(",")
        assert nodes == [f"127.0.0.1:{one.port}", f"127.0.0.1:{two.port}"]
        for node in nodes:  # each is a memcached the app's client can use
            host, port = node.split(":")
            client = Memcache((host, int(port)), timeout=10)
            client.set("k", node.encode())
            assert client.get("k") == node.encode()
            client.close()


def test_release_messages_mask_the_credentials_but_not_where_they_are(
        postgres: servers.Database, aws: Aws, imds: str, moto_url: str, tmp_path: Path) -> None:
    cfg = stack_cfg({"webstack:database": "postgres"})
    aws.created_database(cfg, postgres)
    proc, out, paths = secrets_run(cfg, tmp_path / "root", imds, moto_url)
    env = written(proc, out)
    text = (f"connecting to {env['DATABASE_URL']} as {USER} with {PASSWORD} to {NAME} on "
            f"port {postgres.port} ({ENCODED})")
    masked = subprocess.run(["/usr/bin/python3", f"{paths.lib}/probe", "redact", "--redact",
                             str(out)], input=text, capture_output=True, text=True, timeout=30,
                            check=True).stdout
    assert masked == f"connecting to *** as {USER} with *** to {NAME} on port {postgres.port} (***)"


# --- errors: named, never a value, nothing written --------------------------------------------

def test_a_missing_secret_is_named_and_nothing_is_written(
        aws: Aws, imds: str, moto_url: str, tmp_path: Path) -> None:
    cfg = stack_cfg({"webstack:database": "postgres"})
    gone = aws.secret("{}")
    aws.secrets.delete_secret(SecretId=gone, ForceDeleteWithoutRecovery=True)
    aws.parameter(naming.database_parameter(cfg), {
        "engine": "postgres", "host": "db.internal", "port": 5432, "name": NAME, "secret": gone})
    proc, out, _ = secrets_run(cfg, tmp_path / "root", imds, moto_url)
    assert proc.returncode == 1
    assert f"ssm-get: the database's secret {gone}: secretsmanager" in proc.stderr
    assert "ResourceNotFoundException" in proc.stderr
    assert not out.exists()


@pytest.mark.parametrize(("value", "message"), [
    (f"https://{USER}:{ENCODED}@db.internal/app", "is for a 'https' database: expected "
                                                   "postgres or mysql"),
    (f"postgres://{USER}:{ENCODED}@db.internal", "is not a database URL with a user, password, "
                                                  "host and database name: expected postgres://"),
    (f"mysql://{USER}:{ENCODED}@db.internal:port/app", "is not a database URL: expected"),
    (json.dumps({"engine": "postgres", "host": "db", "port": 5432, "username": USER,
                 "password": PASSWORD}), "has no 'dbname'"),
    ('{"password": "' + PASSWORD, "is not the JSON expected: postgres://USER:PASSWORD@"),
])
def test_a_bad_url_secret_is_named_without_its_value(
        value: str, message: str, aws: Aws, imds: str, moto_url: str, tmp_path: Path) -> None:
    arn = aws.secret(value)
    cfg = stack_cfg({"webstack:databaseUrlSecret": arn})
    aws.parameter(naming.database_parameter(cfg), {"url_secret": arn})
    proc, out, _ = secrets_run(cfg, tmp_path / "root", imds, moto_url)
    assert proc.returncode == 1
    assert f"ssm-get: the database's secret {arn} {message}" in proc.stderr
    assert PASSWORD not in proc.stderr and ENCODED not in proc.stderr
    assert not out.exists()


def test_a_bad_parameter_and_a_clashing_app_secret_are_named(
        postgres: servers.Database, aws: Aws, imds: str, moto_url: str, tmp_path: Path) -> None:
    cfg = stack_cfg({"webstack:database": "postgres"})
    parameter = naming.database_parameter(cfg)
    aws.ssm.put_parameter(Name=parameter, Value="postgres://x", Type="String")
    proc, _, _ = secrets_run(cfg, tmp_path / "a", imds, moto_url)
    assert proc.returncode == 1
    assert (f"ssm-get: the database parameter {parameter} is not the JSON expected: "
            '{"engine", "host", "port", "name", "secret"} or {"url_secret"}') in proc.stderr
    # config refuses the clash before any resource (ssm-get's own check is the last guard)
    with pytest.raises(ConfigError, match="appSecrets set DB_PASSWORD: expected another name"):
        stack_cfg({"webstack:database": "postgres",
                   "webstack:appSecrets": json.dumps(["DB_PASSWORD=/shop/db-password"])})
