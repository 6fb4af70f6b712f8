"""The Django example (examples/django-app) deployed to a local VM from an appSource bundle, as
a user deploys it: its stack file's settings (a health path other than /healthz, collectstatic
as a build command, migrations before start, SECRET_KEY from SSM), then new code released onto
the running server, its data directory surviving. Runs after test_converge.py's VM is stopped
(one VM at a time)."""

from __future__ import annotations

import json
import secrets
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import django
import pytest

from components.config import PROJECT_DIR
from devtools.vm import get
from devtools.vm_up import Staged, UpResult
from tests.vm.conftest import example_vm, say

pytestmark = pytest.mark.vm

EXAMPLE = PROJECT_DIR / "examples" / "django-app"
SECRET_PARAMETER = "/webstack/dev/django/secrets/SECRET_KEY"
RELEASE = "/usr/local/lib/webstack/django/release"


@pytest.fixture(scope="module")
def booted(accel: str) -> Iterator[tuple[UpResult, Staged]]:
    with example_vm(accel, "django-app", "django",
                    {"webstack:appSecrets": json.dumps([f"SECRET_KEY={SECRET_PARAMETER}"])},
                    {SECRET_PARAMETER: secrets.token_urlsafe(50)}) as booted:
        # the VM waited on the stack's own health path
        assert booted[1].cfg.app.health_path == "/health/"
        yield booted


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


def test_new_code_is_released_and_the_data_directory_survives(booted, tmp_path: Path) -> None:
    result, staged = booted
    status, _, body = _get(result, "/visits/")
    assert status == 200, body
    before = int(body.decode().split()[-1])
    src = tmp_path / "django-app"
    shutil.copytree(EXAMPLE, src, ignore=shutil.ignore_patterns("__pycache__", "data",
                                                                 "staticfiles"))
    template = src / "notes" / "templates" / "notes" / "index.html"
    template.write_text(template.read_text().replace("<body>", "<body><p>release two</p>", 1))
    staged.release_new_code(src)
    started = time.monotonic()
    out = result.vm.ssh(RELEASE, timeout=900).stdout
    took = time.monotonic() - started
    say(f"Django release with the same requirements in {took:.1f}s: {out.splitlines()[-2]}")
    assert "(the same requirements: reused)" in out, out
    status, _, body = _get(result, "/")
    assert status == 200 and b"release two" in body
    status, _, body = _get(result, "/visits/")
    assert (status, body) == (200, f"visits: {before + 1}\n".encode())  # kept across releases
    owner = result.vm.ssh("stat -c %U /var/lib/webstack/django/data/visits.txt").stdout.strip()
    assert owner == "django"
