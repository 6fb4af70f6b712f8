"""The Django example (examples/django-app) deployed to a local VM from an appSource bundle, as
a user deploys it: its stack file's settings (a health path other than /healthz, collectstatic
as a build command, SECRET_KEY from SSM, `database: postgres`, `cache: valkey`, appMigrate),
then new code with a new migration released onto the running server, its data directory
surviving. The database is a real PostgreSQL 15 on the host (TLS, its master user's password
in the local Secrets Manager) and the cache a real Redis with AUTH over TLS only, both reached
from the guest at 10.0.2.2 as the local AWS endpoints are (tests/services starts them). Runs
after test_converge.py's VM is stopped (one VM at a time)."""

from __future__ import annotations

import json
import secrets
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import django
import pytest
import redis

from components.config import PROJECT_DIR
from devtools.vm import get
from devtools.vm_up import Staged, UpResult
from tests.services import servers
from tests.vm.conftest import example_vm, say

pytestmark = pytest.mark.vm

EXAMPLE = PROJECT_DIR / "examples" / "django-app"
SECRET_PARAMETER = "/webstack/dev/django/secrets/SECRET_KEY"
RELEASE = "/usr/local/lib/webstack/django/release"
COUNTER_KEY = ":1:services-visits"  # Django's key for the example's cache counter
RELEASE_TWO_MIGRATION = '''from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("notes", "0002_visit")]
    operations = [migrations.RunSQL("CREATE TABLE release_two (id integer)",
                                    "DROP TABLE release_two")]
'''


@pytest.fixture(scope="module")
def services() -> Iterator[tuple[servers.Database, servers.Cache]]:
    """The stack's database and cache, on the host."""
    with servers.postgres() as db, servers.redis(secrets.token_urlsafe(32), tls=True) as cache:
        yield db, cache


@pytest.fixture(scope="module")
def booted(accel: str, services: tuple[servers.Database, servers.Cache],
           ) -> Iterator[tuple[UpResult, Staged]]:
    db, cache = services
    with example_vm(accel, "django-app", "django",
                    {"webstack:appSecrets": json.dumps([f"SECRET_KEY={SECRET_PARAMETER}"])},
                    {SECRET_PARAMETER: secrets.token_urlsafe(50)}, database=db,
                    cache=cache) as booted:
        result, staged = booted
        # the VM waited on the stack's own health path; the stack's own database and cache
        assert staged.cfg.app.health_path == "/health/"
        assert (staged.cfg.database.engine, staged.cfg.cache.engine) == ("postgres", "valkey")
        say(f"Django with PostgreSQL and Valkey: healthy "
            f"{result.converged.seconds_to_healthy:.0f}s after power-on")
        yield booted


def _sql(db: servers.Database, statement: str) -> str:
    return db.sql(statement, "app")  # the stack's databaseName


def _get(result: UpResult, path: str) -> tuple[int, dict[str, str], bytes]:
    return get(result.vm.url(path), timeout=30)


def test_the_admin_login_page_renders(booted) -> None:
    result, _ = booted
    status, headers, body = _get(result, "/admin/login/")
    assert status == 200, body[:500]
    assert b"csrfmiddlewaretoken" in body and b"/static/admin/css/base.css" in body
    assert headers.get("Server") == "nginx"


def test_a_collected_static_file_is_served_by_nginx(booted) -> None:
    result, _ = booted
    status, headers, body = _get(result, "/static/admin/css/base.css")
    shipped = Path(django.__file__).parent / "contrib/admin/static/admin/css/base.css"
    assert status == 200 and body == shipped.read_bytes()  # collectstatic's copy, the pinned one
    assert headers.get("Content-Type") == "text/css"
    assert headers.get("Cache-Control") == "max-age=604800"  # nginx's, not Django's


def _services(result: UpResult, tag: str) -> dict[str, str]:
    status, _, body = _get(result, f"/services/?tag={tag}")
    assert status == 200, body[:500]
    return dict(line.split(": ", 1) for line in body.decode().splitlines())


def test_the_first_boot_migrated_once_and_the_app_uses_the_hosts_database_and_cache(
        booted, services) -> None:
    """appMigrate ran once for the first release (its marker row, the notes app's two
    migrations); /services/ writes a row the host's PostgreSQL holds, over TLS, and counts in
    the host's Redis."""
    result, _ = booted
    db, cache = services
    assert _sql(db, "SELECT count(*) FROM webstack_migrations") == "1"
    assert _sql(db, "SELECT count(*) FROM django_migrations WHERE app = 'notes'") == "2"
    tags = [secrets.token_hex(8) for _ in range(3)]
    pages = [_services(result, tag) for tag in tags]
    assert {(p["database"], p["cache"]) for p in pages} == {("postgresql", "RedisCache")}
    counters = [int(p["counter"]) for p in pages]
    assert counters == list(range(counters[0], counters[0] + 3))
    for tag, page in zip(tags, pages, strict=True):
        visit = page["visit"].split()[0]
        assert page["visit"] == f"{visit} tag={tag}"
        assert _sql(db, f"SELECT tag FROM notes_visit WHERE id = {int(visit)}") == tag
    assert _sql(db, "SELECT bool_and(ssl), count(*) > 0 FROM pg_stat_ssl JOIN pg_stat_activity "
                    "USING (pid) WHERE usename = 'webstack'") == "t|t"  # sslmode=require
    with redis.Redis(host=cache.host, port=cache.port, password=cache.password, ssl=True,
                     ssl_ca_certs=cache.ca) as client:
        assert client.get(COUNTER_KEY) == str(counters[-1]).encode()


def test_no_credential_in_the_user_data_the_logs_or_a_command_line(booted) -> None:
    """The database's password and the cache's AUTH token reach the app's environment file
    only: not the user-data (as the guest got it), the journal, cloud-init's output or any
    process's argv."""
    result, staged = booted
    assert len(staged.credentials) == 2
    seen = result.vm.ssh(
        "cat /var/lib/cloud/instance/user-data.txt /var/log/cloud-init-output.log; "
        "journalctl -b --no-pager -o cat; ps -eo args", timeout=120).stdout
    assert "Cloud-init v." in seen and "gunicorn" in seen  # the logs and argv were read
    for credential in staged.credentials:
        assert credential not in staged.user_data and credential not in seen
    env = result.vm.ssh("f=/run/webstack/django/secrets.env; grep -c "
                        "'^DATABASE_URL=\"postgresql://\\|^CACHE_URL=\"rediss://' $f; "
                        "stat -c '%a %U' $f").stdout.split()
    assert env == ["2", "600", "root"]  # the units read it as root before dropping to django


def test_new_code_is_released_and_the_data_directory_survives(booted, services,
                                                              tmp_path: Path) -> None:
    """A release with a new migration: migrated once (a second marker row, its table in the
    host's PostgreSQL), the old rows and the data directory kept, no credential in its
    output."""
    result, staged = booted
    db, _ = services
    status, _, body = _get(result, "/visits/")
    assert status == 200, body
    before = int(body.decode().split()[-1])
    src = tmp_path / "django-app"
    shutil.copytree(EXAMPLE, src, ignore=shutil.ignore_patterns("__pycache__", "data",
                                                                 "staticfiles"))
    template = src / "notes" / "templates" / "notes" / "index.html"
    template.write_text(template.read_text().replace("<body>", "<body><p>release two</p>", 1))
    (src / "notes" / "migrations" / "0003_release_two.py").write_text(RELEASE_TWO_MIGRATION)
    rows = int(_sql(db, "SELECT count(*) FROM notes_visit"))
    staged.release_new_code(src)
    started = time.monotonic()
    out = result.vm.ssh(RELEASE, timeout=900).stdout
    took = time.monotonic() - started
    say(f"Django release with a migration and the same requirements in {took:.1f}s: "
        f"{out.splitlines()[-2]}")
    assert "(the same requirements: reused)" in out, out
    assert "migrated release" in out, out
    for credential in staged.credentials:
        assert credential not in out
    assert _sql(db, "SELECT count(*) FROM webstack_migrations") == "2"
    assert _sql(db, "SELECT count(*) FROM django_migrations WHERE app = 'notes'") == "3"
    assert _sql(db, "SELECT to_regclass('release_two') IS NOT NULL") == "t"
    assert int(_sql(db, "SELECT count(*) FROM notes_visit")) == rows
    status, _, body = _get(result, "/")
    assert status == 200 and b"release two" in body
    status, _, body = _get(result, "/visits/")
    assert (status, body) == (200, f"visits: {before + 1}\n".encode())  # kept across releases
    owner = result.vm.ssh("stat -c %U /var/lib/webstack/django/data/visits.txt").stdout.strip()
    assert owner == "django"
