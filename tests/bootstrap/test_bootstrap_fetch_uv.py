"""The server's uv fetcher, run for real against a package index on 127.0.0.1.

The index serves a PyPI-shaped simple page (relative hrefs into another path, `#sha256=`
fragments) and a wheel whose `uv` is a small script that prints its version, so every branch
runs: installed, already there, wrong hash refused, missing from the index, a 5xx retried, a 4xx
not retried.
"""

from __future__ import annotations

import hashlib
import io
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from components.bootstrap import UV_VERSION, UV_WHEELS, render
from tests.http_site import Site
from tests.variants import make_cfg

WHEEL = UV_WHEELS["x86_64"][0]


def fake_wheel(version: str = UV_VERSION) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(f"uv-{UV_VERSION}.data/scripts/uv", f"#!/bin/sh\necho 'uv {version} (x)'\n")
        z.writestr(f"uv-{UV_VERSION}.dist-info/METADATA", "Name: uv\n")
    return buf.getvalue()


@pytest.fixture
def index() -> Iterator[Site]:
    """A package index that knows no file yet (`publish` adds them)."""
    site = Site({}, "/simple/")
    yield site
    site.close()


def publish(index: Site, data: bytes, name: str = WHEEL) -> str:
    """The wheel under /packages/..., listed on /simple/uv/ as PyPI lists it; its sha256."""
    digest = hashlib.sha256(data).hexdigest()
    page = (f'<html><body><a href="../../packages/ab/cd/{name}#sha256={digest}">{name}</a>'
            f'<a href="../../packages/ef/{WHEEL}.metadata">other</a></body></html>')
    index.routes["/simple/uv/"] = [(200, page.encode(), {})]
    index.routes[f"/packages/ab/cd/{name}"] = [(200, data, {})]
    return digest


@pytest.fixture
def fetch_uv(tmp_path: Path) -> Path:
    """The fetcher exactly as the server's setup script gets it, beside the client and the
    settings it reads."""
    files = render(make_cfg({})).files
    for name in ("fetch-uv", "awsclient.py", "settings.env"):
        script = tmp_path / name
        script.write_text(files[f"/usr/local/lib/webstack/hello/{name}"])
        script.chmod(0o755)
    return tmp_path / "fetch-uv"


def run(script: Path, index: Site, sha: str, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(script), "--index", index.url, "--wheel", WHEEL, "--sha256", sha,
                           "--out", str(out)], capture_output=True, text=True, timeout=60,
                          check=False, env={"PATH": "/usr/bin:/bin"})


def test_installs_the_pinned_wheel_once(index: Site, fetch_uv: Path, tmp_path: Path) -> None:
    sha = publish(index, fake_wheel())
    out = tmp_path / "uv"
    proc = run(fetch_uv, index, sha, out)
    assert proc.returncode == 0, proc.stderr
    assert f"uv {UV_VERSION} installed at {out}" in proc.stdout
    assert subprocess.run([str(out), "--version"], capture_output=True, text=True,
                          check=True, timeout=10).stdout.startswith(f"uv {UV_VERSION}")
    assert out.stat().st_mode & 0o777 == 0o755
    assert not list(tmp_path.glob("uv.tmp*"))
    index.paths.clear()
    again = run(fetch_uv, index, sha, out)
    assert again.returncode == 0 and "is already at" in again.stdout
    assert index.paths == []  # nothing fetched when it is there


def test_a_wheel_with_another_hash_is_refused(index: Site, fetch_uv: Path,
                                              tmp_path: Path) -> None:
    publish(index, fake_wheel())
    out = tmp_path / "uv"
    proc = run(fetch_uv, index, "0" * 64, out)
    assert proc.returncode == 1
    assert proc.stderr.startswith("fetch-uv: FAILED: ")
    assert f"expected {'0' * 64}: refused" in proc.stderr
    assert not out.exists()


def test_an_older_uv_at_the_path_is_replaced(index: Site, fetch_uv: Path,
                                             tmp_path: Path) -> None:
    sha = publish(index, fake_wheel())
    out = tmp_path / "uv"
    out.write_text("#!/bin/sh\necho 'uv 0.1.0'\n")
    out.chmod(0o755)
    proc = run(fetch_uv, index, sha, out)
    assert proc.returncode == 0, proc.stderr
    assert "installed at" in proc.stdout and UV_VERSION in out.read_text()


def test_a_wheel_missing_from_the_index_is_named(index: Site, fetch_uv: Path,
                                                 tmp_path: Path) -> None:
    sha = publish(index, fake_wheel(), name="uv-0.0.1-py3-none-any.whl")
    proc = run(fetch_uv, index, sha, tmp_path / "uv")
    assert proc.returncode == 1
    assert f"{WHEEL} is not on the index {index.url}uv/ (2 files listed)" in proc.stderr


def test_a_wheel_that_does_not_run_as_that_version_is_refused(index: Site, fetch_uv: Path,
                                                              tmp_path: Path) -> None:
    sha = publish(index, fake_wheel(version="9.9.9"))
    proc = run(fetch_uv, index, sha, tmp_path / "uv")
    assert proc.returncode == 1
    assert f"does not run as uv {UV_VERSION}" in proc.stderr


def test_server_errors_are_retried_and_client_errors_are_not(index: Site, fetch_uv: Path,
                                                            tmp_path: Path) -> None:
    sha = publish(index, fake_wheel())
    index.routes["/simple/uv/"].insert(0, (503, b"busy", {}))
    proc = run(fetch_uv, index, sha, tmp_path / "uv")
    assert proc.returncode == 0, proc.stderr
    assert index.paths.count("/simple/uv/") == 2

    index.paths.clear()
    del index.routes["/simple/uv/"]
    proc = run(fetch_uv, index, sha, tmp_path / "uv2")
    assert proc.returncode == 1
    assert f"GET {index.url}uv/ answered 404" in proc.stderr
    assert index.paths == ["/simple/uv/"]
