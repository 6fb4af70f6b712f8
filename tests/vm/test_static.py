"""The static site example (examples/static-site) deployed to a local VM from an appSource bundle,
as a user deploys it: its stack file's settings (appKind static, the web root public/, the
health path's default /), served by nginx alone (no gunicorn, no venv, no units), its cache
headers and gzip, then new files released onto the running server and a release without its
index.html refused while the current one keeps serving. Runs after the other VM modules' VMs
are stopped (one VM at a time)."""

from __future__ import annotations

import gzip
import shutil
import ssl
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from components.config import PROJECT_DIR
from devtools.vm import get
from devtools.vm_up import Staged, UpResult
from tests.vm.conftest import example_vm, say

pytestmark = pytest.mark.vm

EXAMPLE = PROJECT_DIR / "examples" / "static-site"
RELEASE = "/usr/local/lib/webstack/site/release"
ASSETS = sorted(p.name for p in (EXAMPLE / "public" / "assets").iterdir())


@pytest.fixture(scope="module")
def booted(accel: str) -> Iterator[tuple[UpResult, Staged]]:
    with example_vm(accel, "static-site", "static") as booted:
        cfg = booted[1].cfg
        assert cfg.app.static and cfg.app.health_path == "/" and cfg.tls.mode == "selfsigned"
        yield booted


def _get(result: UpResult, path: str) -> tuple[int, dict[str, str], bytes]:
    return get(result.vm.url(path), timeout=30)


def _gzipped(result: UpResult, path: str) -> tuple[dict[str, str], bytes]:
    """GET with Accept-Encoding: gzip (the VM's certificate is self-signed)."""
    request = urllib.request.Request(result.vm.url(path), headers={"Accept-Encoding": "gzip"})
    with urllib.request.urlopen(request, timeout=30,
                                context=ssl._create_unverified_context()) as resp:
        return dict(resp.headers.items()), resp.read()


def test_the_site_is_served_by_nginx_with_no_app_process(booted) -> None:
    result, _ = booted
    status, headers, body = _get(result, "/")
    assert status == 200 and body == (EXAMPLE / "public" / "index.html").read_bytes()
    assert headers.get("Server") == "nginx" and headers.get("Cache-Control") == "no-cache"
    assert headers.get("X-Content-Type-Options") == "nosniff"
    status, _, body = _get(result, "/about/")
    assert status == 200 and body == (EXAMPLE / "public" / "about" / "index.html").read_bytes()
    assert _get(result, "/README.md")[0] == 404  # outside the web root
    out = result.vm.ssh("systemctl list-unit-files 'webstack-site*' --no-legend | wc -l; "
                        "pgrep -c gunicorn || true; test -e /srv/site/current/venv && echo venv "
                        "|| echo no-venv").stdout.split()
    assert out == ["0", "0", "no-venv"], out


def test_fingerprinted_files_are_immutable_and_gzipped(booted) -> None:
    result, _ = booted
    for name in ASSETS:
        status, headers, body = _get(result, f"/assets/{name}")
        assert status == 200 and body == (EXAMPLE / "public" / "assets" / name).read_bytes()
        assert headers.get("Cache-Control") == "public, max-age=31536000, immutable"
    css = next(n for n in ASSETS if n.endswith(".css"))  # over gzip_min_length
    headers, body = _gzipped(result, f"/assets/{css}")
    assert headers.get("Content-Encoding") == "gzip"
    assert gzip.decompress(body) == (EXAMPLE / "public" / "assets" / css).read_bytes()


def test_new_files_are_released_and_a_release_without_its_index_is_refused(
        booted, tmp_path: Path) -> None:
    result, staged = booted
    src = tmp_path / "static-site"
    shutil.copytree(EXAMPLE, src)
    index = src / "public" / "index.html"
    index.write_text(index.read_text().replace("<body>", "<body><p>release two</p>", 1))
    staged.release_new_code(src)
    started = time.monotonic()
    out = result.vm.ssh(RELEASE, timeout=300).stdout
    say(f"static release in {time.monotonic() - started:.1f}s: {out.splitlines()[-2]}")
    assert "virtualenv" not in out and "restarting" not in out, out
    status, _, body = _get(result, "/")
    assert status == 200 and b"<p>release two</p>" in body
    index.unlink()
    staged.release_new_code(src)
    proc = result.vm.ssh(RELEASE, timeout=300, check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "no file of its web root public answers /" in proc.stderr
    status, _, body = _get(result, "/")
    assert status == 200 and b"<p>release two</p>" in body  # the current one kept serving
