"""The framework examples run as webstack runs them: a venv built by uv from the example's own
requirements.txt plus the servers' gunicorn, the build and pre-start commands of its stack file,
gunicorn on a loopback port and real HTTP, in a temporary copy (the examples stay clean).

A server's release differs only in what is webstack's own (nginx in front, systemd, the release
directory); the VM tier covers those. Here: the app's side of the contract (health on any Host,
data kept in APP_DATA_DIR across restarts, static files where nginx will look, a clear refusal
of a bad environment, the database and cache of DATABASE_URL and CACHE_URL on real PostgreSQL,
MariaDB, Redis and memcached servers from tests/services) and the stack files' validity.
"""

from __future__ import annotations

import http.client
import os
import re
import secrets
import shutil
import ssl
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlencode

import pymemcache
import pytest
import redis

from components import bundle
from components.bootstrap import GUNICORN_VERSION
from components.config import PROJECT_DIR, StackConfig, parse, stack_file_settings
from devtools.localrun import local_uv, stop, wait_until
from devtools.motoserver import HOST, free_port
from tests.services import servers

pytestmark = pytest.mark.realtools

EXAMPLES = PROJECT_DIR / "examples"
DJANGO, FLASK = EXAMPLES / "django-app", EXAMPLES / "flask-app"
STACK_FILES = {"django": DJANGO, "flask": FLASK}
SITE_HOST = "localhost"  # in the Django stack's DJANGO_ALLOWED_HOSTS
INSTALL_TIMEOUT = 300
COMMAND_TIMEOUT = 120
START_TIMEOUT = 60  # gunicorn up and answering its health path
HTTP_TIMEOUT = 10


# --- the examples' venvs and copies ---

def _stack(stack: str) -> StackConfig:
    """An example's stack file, validated as a copy at the project root would be."""
    raw = stack_file_settings(stack, STACK_FILES[stack])
    region = raw["aws:region"]
    return parse(raw, project="webstack", stack=stack, region=region,
                 supported_regions=(region,), base_dir=PROJECT_DIR)


def _build_venv(example: Path, venv: Path) -> Path:
    """What a release does: `uv venv` + `uv pip install -r requirements.txt gunicorn==<pin>`."""
    uv = local_uv()
    subprocess.run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)],
                   check=True, timeout=COMMAND_TIMEOUT)
    subprocess.run([uv, "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"),
                    "--requirement", str(example / "requirements.txt"),
                    f"gunicorn=={GUNICORN_VERSION}"], check=True, timeout=INSTALL_TIMEOUT)
    return venv


@pytest.fixture(scope="session")
def example_venv(tmp_path_factory: pytest.TempPathFactory) -> Callable[[Path], Path]:
    """The venv of an example, built once per session."""
    built: dict[Path, Path] = {}

    def venv(example: Path) -> Path:
        if example not in built:
            built[example] = _build_venv(example, tmp_path_factory.mktemp("venv") / example.name)
        return built[example]
    return venv


@dataclass(frozen=True)
class Site:
    """A temporary copy of an example (the files its bundle would carry), its venv, its data
    directory and the environment a server gives it: the stack's appEnv, APP_DATA_DIR, the
    venv first on PATH, nothing of the developer's (no stray DJANGO_* or FLASK_*)."""

    cfg: StackConfig
    app: Path
    venv: Path
    data: Path
    env: dict[str, str]

    def sh(self, command: str, env: Mapping[str, str] | None = None,
           ok: bool = True) -> subprocess.CompletedProcess[str]:
        """`command` as the servers run appBuild and appPreStart: in the app directory."""
        done = subprocess.run(["bash", "-c", command], cwd=self.app, env=dict(env or self.env),
                              capture_output=True, text=True, timeout=COMMAND_TIMEOUT)
        if ok:
            assert done.returncode == 0, f"{command} failed:\n{done.stdout}\n{done.stderr}"
        return done


@pytest.fixture
def site(tmp_path: Path, example_venv: Callable[[Path], Path]) -> Callable[..., Site]:
    def make(stack: str, **secrets_env: str) -> Site:
        cfg, example = _stack(stack), STACK_FILES[stack]
        app, data, venv = tmp_path / example.name, tmp_path / "data", example_venv(example)
        for rel in bundle.collect(example):
            (app / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(example / rel, app / rel)
        data.mkdir()
        env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": os.environ.get("HOME", "/tmp"),
               "LANG": "C.UTF-8", **cfg.app.env, "APP_DATA_DIR": str(data), **secrets_env}
        return Site(cfg, app, venv, data, env)
    return make


# --- gunicorn and HTTP ---

def _request(port: int, path: str, *, host: str = SITE_HOST, method: str = "GET",
             body: str = "", headers: Mapping[str, str] | None = None,
             ) -> tuple[int, http.client.HTTPMessage, str]:
    conn = http.client.HTTPConnection(HOST, port, timeout=HTTP_TIMEOUT)
    try:
        sent = {"Host": host, **(headers or {})}
        if body:
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        conn.request(method, path, body=body or None, headers=sent)
        answer = conn.getresponse()
        return answer.status, answer.headers, answer.read().decode("utf-8", "replace")
    finally:
        conn.close()


def _gunicorn(site: Site, port: int, log: Path) -> subprocess.Popen[bytes]:
    """The site's gunicorn as a server runs it (its own venv, --chdir the app, gthread)."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [str(site.venv / "bin" / "gunicorn"), "--chdir", str(site.app),
             "--bind", f"{HOST}:{port}", "--workers", "2", "--worker-class", "gthread",
             "--threads", "2", "--no-control-socket", "--error-logfile", "-", site.cfg.app.wsgi],
            cwd=site.app, env=site.env, stdin=subprocess.DEVNULL, stdout=out,
            stderr=subprocess.STDOUT)


@contextmanager
def serving(site: Site) -> Iterator[int]:
    """gunicorn serving the site on a free loopback port, once its health path (asked with
    Host: 127.0.0.1, as a load balancer would) answers 200; the port."""
    port, log, health = free_port(), site.app.parent / "gunicorn.log", site.cfg.app.health_path
    proc = _gunicorn(site, port, log)

    def healthy() -> bool:
        if proc.poll() is not None:
            pytest.fail(f"gunicorn exited ({proc.returncode}):\n{log.read_text()}")
        try:
            return _request(port, health, host=HOST)[0] == 200
        except OSError:
            return False
    try:
        if not wait_until(healthy, START_TIMEOUT, interval=0.2):
            pytest.fail(f"{health} did not answer 200 in {START_TIMEOUT} s:\n{log.read_text()}")
        yield port
    finally:
        stop(proc)


# --- Django ---

def _django(site: Callable[..., Site]) -> Site:
    """The Django example with production settings: appEnv and a strong SECRET_KEY."""
    return site("django", SECRET_KEY=secrets.token_urlsafe(50))


def test_django_check_deploy(site: Callable[..., Site]) -> None:
    """Clean with DJANGO_HTTPS=1; on plain HTTP only the three HTTPS-only settings it turns on
    are reported (HSTS is nginx's, silenced)."""
    django = _django(site)
    https = django.sh("python manage.py check --deploy --fail-level WARNING",
                      {**django.env, "DJANGO_HTTPS": "1"})
    assert "no issues (1 silenced)" in https.stdout
    plain = django.sh("python manage.py check --deploy")
    assert set(re.findall(r"\(security\.(W\d+)\)", plain.stdout + plain.stderr)) == {
        "W008", "W012", "W016"}


def test_django_build_and_bundle(site: Callable[..., Site]) -> None:
    """appBuild (collectstatic) writes the admin's CSS where appStaticDir points; neither it
    nor the data would go into the next bundle."""
    django = _django(site)
    for command in django.cfg.app.build:
        django.sh(command)
    static = django.app / django.cfg.app.static_dir
    assert "#header" in (static / "admin" / "css" / "base.css").read_text()
    (django.app / "data").mkdir()  # where DJANGO_DEBUG=1 keeps it
    (django.app / "data" / "db.sqlite3").write_bytes(b"")
    files = bundle.collect(django.app)
    assert "manage.py" in files and "notes/migrations/0001_initial.py" in files
    assert not [f for f in files if f.startswith(("staticfiles/", "data/"))]


def _csrf(port: int) -> tuple[str, str]:
    """The CSRF cookie and the form's token of the notes page."""
    status, headers, page = _request(port, "/")
    assert status == 200, page
    cookie = next(c for c in headers.get_all("Set-Cookie") or [] if c.startswith("csrftoken="))
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert token, page
    return cookie.split(";", 1)[0], token.group(1)


def _post_note(port: int, text: str) -> tuple[int, http.client.HTTPMessage, str]:
    """POST the notes form as a browser does: with the page's CSRF cookie and token."""
    cookie, token = _csrf(port)
    return _request(port, "/notes/", method="POST", headers={"Cookie": cookie},
                    body=urlencode({"csrfmiddlewaretoken": token, "text": text}))


def _services(port: int, tag: str) -> dict[str, str]:
    """/services/?tag=: what it wrote, read back and counted, line by line."""
    status, headers, body = _request(port, f"/services/?tag={tag}")
    assert (status, headers.get("Content-Type")) == (200, "text/plain"), body
    return dict(line.split(": ", 1) for line in body.splitlines())


def test_django_serves_and_keeps_its_data(site: Callable[..., Site]) -> None:
    django = _django(site)
    for command in (*django.cfg.app.migrate, *django.cfg.app.pre_start):
        django.sh(command)
    with serving(django) as port:
        for host in ("10.1.2.3", "localhost", "unknown.example"):  # the ALB, the release, any
            assert _request(port, "/health/", host=host)[::2] == (200, "ok")
        status, _, page = _request(port, "/admin/login/")
        assert status == 200 and 'name="username"' in page and 'name="password"' in page
        assert "/static/admin/css/base.css" in page
        assert _request(port, "/", host="unknown.example")[0] == 400
        status, headers, body = _post_note(port, "kept across restarts")
        assert (status, headers.get("Location")) == (302, "/"), body
        assert _post_note(port, " ")[0] == 400
        assert _request(port, "/notes/", method="POST", body="text=no-csrf")[0] == 403
        assert _request(port, "/visits/")[::2] == (200, "visits: 1\n")
        assert _services(port, "first") == {  # no DATABASE_URL, no CACHE_URL
            "database": "sqlite", "visit": "1 tag=first", "visits": "1",
            "cache": "LocMemCache", "counter": "1"}
        assert _request(port, "/services/?tag=a%0Ab")[0] == 400
    with serving(django) as port:  # as after a new release
        assert "kept across restarts" in _request(port, "/")[2]
        assert _request(port, "/visits/")[::2] == (200, "visits: 2\n")
        # the row is kept in APP_DATA_DIR's SQLite; each process's memory cache starts anew
        assert _services(port, "second") == {
            "database": "sqlite", "visit": "2 tag=second", "visits": "2",
            "cache": "LocMemCache", "counter": "1"}
    assert (django.data / "db.sqlite3").is_file()


# --- Django on the stack's database and cache ---

DB_USER, DB_NAME = "webstack", "app"  # the stack's databaseUser and databaseName defaults
DB_PASSWORD = "Pa:ss%w+rd#1?&='x"  # as RDS makes them, with what the URL must encode
COUNTER_KEY = ":1:services-visits"  # Django's key for views.COUNTER (KEY_PREFIX "", VERSION 1)


def _database_url(db: servers.Database, password: str) -> str:
    """DATABASE_URL as the servers' ssm-get writes it (RDS requires TLS of postgres)."""
    scheme, query = ("postgresql", "?sslmode=require") if db.engine == "postgres" else ("mysql", "")
    return f"{scheme}://{DB_USER}:{quote(password, safe='')}@{db.host}:{db.port}/{DB_NAME}{query}"


def _counts(port: int, engine: str, cache: str, requests: int = 4) -> None:
    """/services/ asked `requests` times (both gunicorn workers answer some): every visit
    written and read back, the counter shared by all of them."""
    pages = [_services(port, f"t{i}") for i in range(requests)]
    assert [p["counter"] for p in pages] == [str(i + 1) for i in range(requests)]
    assert [p["visit"] for p in pages] == [f"{i + 1} tag=t{i}" for i in range(requests)]
    assert {(p["database"], p["cache"]) for p in pages} == {(engine, cache)}


def test_django_on_postgres_and_valkey(site: Callable[..., Site]) -> None:
    """PostgreSQL 15 over TLS (sslmode=require) and Redis with AUTH over TLS only, as RDS and
    ElastiCache's valkey: migrations make the tables, rows land in PostgreSQL, the counter in
    Redis; a rotated password is harmless once the app restarts with it."""
    token = secrets.token_urlsafe(32)
    with servers.postgres() as db, servers.redis(token, tls=True) as cache:
        db.create(DB_USER, DB_PASSWORD, DB_NAME)
        django = site("django", SECRET_KEY=secrets.token_urlsafe(50),
                      DATABASE_URL=_database_url(db, DB_PASSWORD),
                      CACHE_URL=f"rediss://:{quote(token, safe='')}@{cache.host}:{cache.port}/0",
                      SSL_CERT_FILE=cache.ca)  # the servers trust ElastiCache's CA likewise
        for command in django.cfg.app.migrate:
            django.sh(command)
        assert db.sql("SELECT count(*) FROM django_migrations WHERE app = 'notes'",
                      DB_NAME) == "2"
        with serving(django) as port:
            _counts(port, "postgresql", "RedisCache")
            assert db.sql("SELECT string_agg(tag, ',' ORDER BY id) FROM notes_visit",
                          DB_NAME) == "t0,t1,t2,t3"
            # the app's connections, kept open (CONN_MAX_AGE), are encrypted
            assert db.sql("SELECT bool_and(ssl), count(*) > 0 FROM pg_stat_ssl JOIN "
                          f"pg_stat_activity USING (pid) WHERE usename = '{DB_USER}'") == "t|t"
        with redis.Redis(host=cache.host, port=cache.port, password=token, ssl=True,
                         ssl_ca_certs=cache.ca) as client:
            assert client.get(COUNTER_KEY) == b"4"
        rotated = secrets.token_urlsafe(24)
        db.set_password(DB_USER, rotated)
        django.env["DATABASE_URL"] = _database_url(db, rotated)  # what the refresh writes
        with serving(django) as port:
            assert _services(port, "after")["visit"] == "5 tag=after"


def test_django_on_mariadb_and_memcached(site: Callable[..., Site]) -> None:
    """The mysql engine through PyMySQL (no compiler on the servers) and memcached over TLS
    only (CACHE_TLS=true, as ElastiCache's memcached with transit encryption)."""
    with servers.mariadb() as db, servers.memcached(tls=True) as cache:
        db.create(DB_USER, DB_PASSWORD, DB_NAME)
        django = site("django", SECRET_KEY=secrets.token_urlsafe(50),
                      DATABASE_URL=_database_url(db, DB_PASSWORD),
                      CACHE_URL=f"memcache://{cache.host}:{cache.port}", CACHE_TLS="true",
                      SSL_CERT_FILE=cache.ca)
        for command in django.cfg.app.migrate:
            django.sh(command)
        with serving(django) as port:
            _counts(port, "mysql", "PyMemcacheCache")
        assert db.sql("SELECT GROUP_CONCAT(tag ORDER BY id) FROM notes_visit",
                      DB_NAME) == "t0,t1,t2,t3"
        client = pymemcache.Client((cache.host, cache.port), timeout=HTTP_TIMEOUT,
                                   tls_context=ssl.create_default_context(cafile=cache.ca))
        try:
            assert client.get(COUNTER_KEY) == b"4"
        finally:
            client.close()


def test_django_refuses_to_start_without_secret_key(site: Callable[..., Site]) -> None:
    django = site("django")
    assert "SECRET_KEY" not in django.env
    log = django.app.parent / "no-key.log"
    proc = _gunicorn(django, free_port(), log)
    try:
        assert proc.wait(timeout=START_TIMEOUT) != 0
    finally:
        stop(proc)
    checked = django.sh("python manage.py check", ok=False)
    assert checked.returncode != 0
    for output in (log.read_text(), checked.stderr):
        assert "ImproperlyConfigured: SECRET_KEY is not set: expected a long random string" \
            in output


# --- Flask ---

def test_flask_serves_and_keeps_its_data(site: Callable[..., Site]) -> None:
    flask = site("flask")
    with serving(flask) as port:
        assert _request(port, "/healthz", host="10.1.2.3")[::2] == (200, "ok\n")
        status, _, page = _request(port, "/")
        assert status == 200 and 'href="/static/style.css"' in page
        assert (flask.app / flask.cfg.app.static_dir / "style.css").is_file()  # nginx's file
        status, headers, _ = _request(port, "/messages", method="POST",
                                      body=urlencode({"text": "kept across restarts"}))
        assert (status, headers.get("Location")) == (303, "/")
        assert _request(port, "/messages", method="POST", body="text=")[0] == 400
    with serving(flask) as port:
        assert "kept across restarts" in _request(port, "/")[2]
    assert (flask.data / "messages.jsonl").is_file()


# --- stack files ---

@pytest.mark.parametrize("stack", sorted(STACK_FILES))
def test_stack_files_parse(stack: str) -> None:
    """Each example's stack file is valid and names its own directory as appSource."""
    cfg = _stack(stack)
    assert Path(cfg.app.source) == STACK_FILES[stack]
    if stack == "django":
        assert cfg.app.build == ("python manage.py collectstatic --noinput",)
        assert cfg.app.migrate == ("python manage.py migrate --noinput",)
        assert cfg.app.pre_start == ()  # migrations once per release, not at each start
        assert (cfg.database.engine, cfg.cache.engine, cfg.network.create_vpc) == (
            "postgres", "valkey", True)
