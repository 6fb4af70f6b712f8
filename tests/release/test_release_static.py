"""Releases of a static site (appKind static) on loopback, for real: the rendered release script
fetches each version of the bundle from a local S3 (moto), runs the build (on the system PATH
without a requirements file, in a venv made from it with one), checks that the health path is a
file of the new web root, and switches `current`; the real nginx serves the files with their
cache headers and gzip, with no app process and no reload."""

from __future__ import annotations

import gzip
import http.client
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from components import naming
from components.bootstrap import bundle_release
from components.bundle import Bundle
from tests.release.stack import BundleBucket, Stack, bundle_loopback, dump
from tests.stubs import write_stubs

pytestmark = pytest.mark.realtools

BUCKET = "site-dev-123456789012-us-east-1"
KEY = naming.bundle_key("site")
ASSET = "assets/app.3f2a9c1b.js"  # fingerprinted: a hex hash of 8+ characters in its name
# The site's "build": pages/ copied into the web root, and whether a venv was active.
BUILD = 'mkdir -p public && cp -R pages/. public/ && echo "${VIRTUAL_ENV:-no-venv}" > build-env'


class Sites:
    """The site's versions as `pulumi up` uploads them: one key, a new S3 version each."""

    def __init__(self, root: Path, bucket: BundleBucket):
        self.root, self.bucket = root, bucket

    def upload(self, name: str, *, index: bool = True,
               requirements: bool = False) -> tuple[Bundle, str]:
        src = self.root / name
        (src / "pages" / "assets").mkdir(parents=True)
        if index:
            (src / "pages" / "index.html").write_text(
                f"<!doctype html><title>{name}</title><p>release {name}</p>\n")
        (src / "pages" / ASSET).write_text(f"// release {name}\n" + "console.log(1);\n" * 200)
        (src / "pages" / ".env").write_text("SECRET=never-served\n")
        if requirements:
            (src / "requirements.txt").write_text("")
        return self.bucket.upload(src)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory,
          moto_url: str) -> Iterator[tuple[Stack, Sites]]:
    work = tmp_path_factory.mktemp("static")
    with bundle_loopback(work, moto_url, BUCKET, KEY, {
            "webstack:appName": "site", "webstack:appKind": "static",
            "webstack:appStaticDir": "public", "webstack:appBuild": json.dumps([BUILD])},
            requirements=False) as (stack, bucket, cfg):
        assert cfg.app.health_path == "/"  # a static site's default
        sites = Sites(work / "sites", bucket)
        sites.root.mkdir()
        yield stack, sites


def fetch(stack: Stack, path: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=30)
    try:
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def test_a_static_release_is_built_without_a_venv_and_served_by_nginx_alone(setup) -> None:
    stack, sites = setup
    code, pointer = sites.upload("A")
    result, _ = stack.release(pointer)
    assert result.returncode == 0, result.stderr + dump(stack)
    release = Path(stack.paths.releases) / bundle_release(code.sha256)
    assert stack.current() == release
    assert result.stdout.splitlines()[-1] == (
        f"release: serving bundle ({code.sha256[:12]}) as {release}")
    assert "virtualenv" not in result.stdout and "restarting" not in result.stdout
    assert not (release / "venv").exists()
    assert (release / "src" / "build-env").read_text() == "no-venv\n"  # the system PATH
    assert "phases: fetch" in result.stdout and " build " in result.stdout
    assert not (stack.root / "systemd.sock").exists()  # no app process, no units
    status, _, body = fetch(stack, "/")
    assert (status, body) == (200, b"<!doctype html><title>A</title><p>release A</p>\n")


def test_html_revalidates_fingerprinted_files_are_immutable_and_text_is_gzipped(setup) -> None:
    stack, _ = setup
    status, headers, _ = fetch(stack, "/")
    assert status == 200 and headers["cache-control"] == "no-cache"
    assert headers["content-type"] == "text/html"
    status, headers, _ = fetch(stack, "/index.html")
    assert status == 200 and headers["cache-control"] == "no-cache"
    status, headers, body = fetch(stack, f"/{ASSET}", **{"Accept-Encoding": "gzip"})
    assert status == 200, body
    assert headers["cache-control"] == "public, max-age=31536000, immutable"
    assert headers["content-encoding"] == "gzip" and "Accept-Encoding" in headers["vary"]
    assert gzip.decompress(body).startswith(b"// release A\n")
    for name, value in (("x-content-type-options", "nosniff"), ("x-frame-options", "SAMEORIGIN"),
                        ("referrer-policy", "strict-origin-when-cross-origin")):
        assert headers[name] == value  # the site's security headers, beside Cache-Control
    # a missing file: 404 and never cached for a year; the source's dotfiles are never served
    status, headers, _ = fetch(stack, "/assets/app.0badc0de.js")
    assert status == 404 and "cache-control" not in headers
    assert fetch(stack, "/.env")[0] == 404
    assert fetch(stack, "/build-env")[0] == 404  # outside the web root


def test_new_files_are_switched_in_with_no_failed_request(setup) -> None:
    stack, sites = setup
    before = stack.current()
    _, pointer = sites.upload("B")
    result, wrk = stack.release(pointer, wrk_at="fetching bundle", wrk_seconds=3)
    assert result.returncode == 0, result.stderr + dump(stack)
    assert stack.current() != before
    assert fetch(stack, "/")[2] == b"<!doctype html><title>B</title><p>release B</p>\n"
    assert wrk is not None and wrk.requests > 0 and wrk.failed == 0, wrk
    assert wrk.started < result.when("switching") and result.ended < wrk.ended  # across it


def test_a_release_without_the_health_file_is_refused_and_the_current_one_serves(setup) -> None:
    stack, sites = setup
    serving_now = stack.current()
    code, pointer = sites.upload("C", index=False)
    result, _ = stack.release(pointer)
    assert result.returncode == 1
    assert ("its health check failed before it took traffic: no file of its web root public "
            "answers / (a directory: its index.html)") in result.stderr
    assert "Rolled back to" in result.stderr and "switching" not in result.stdout
    assert stack.current() == serving_now
    assert fetch(stack, "/")[2] == b"<!doctype html><title>B</title><p>release B</p>\n"
    assert (Path(stack.paths.releases) / f".failed-{bundle_release(code.sha256)}").is_dir()


def test_a_build_with_the_requirements_file_runs_in_a_venv_without_gunicorn(setup) -> None:
    stack, sites = setup
    code, pointer = sites.upload("D", requirements=True)
    result, _ = stack.release(pointer)
    assert result.returncode == 0, result.stderr + dump(stack)
    release = Path(stack.paths.releases) / bundle_release(code.sha256)
    assert "virtualenv" in result.stdout
    assert (release / "src" / "build-env").read_text() == f"{release / 'venv'}\n"
    assert (release / "venv" / "bin" / "python").exists()
    assert not (release / "venv" / "bin" / "gunicorn").exists()
    assert fetch(stack, "/")[2] == b"<!doctype html><title>D</title><p>release D</p>\n"


def test_setup_starts_no_app_process_and_ends_on_the_health_check_through_nginx(
        setup, tmp_path: Path) -> None:
    stack, _ = setup
    stubs = tmp_path / "stubs"
    log = tmp_path / "calls"
    write_stubs(stubs, {name: f'echo "{name} $*" >> {log}' for name in
                        ("systemctl", "usermod", "nginx")})
    write_stubs(stubs, {"id": "echo www-data site"})  # nginx is already in the app's group
    env = {**stack.env, "PATH": f"{stubs}:{stack.env['PATH']}"}
    # what a local target's settings name (Target.pointer): here the release that serves
    sha = (stack.current() / ".complete").read_text().strip()
    with open(f"{stack.paths.lib}/settings.env", "a") as settings:
        settings.write(f'APP_REF="{sha}"\n')
    proc = subprocess.run([f"{stack.paths.lib}/setup"], capture_output=True, text=True,
                          timeout=120, env=env, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    calls = log.read_text().splitlines()
    assert "nginx -t -q" in calls
    assert not [c for c in calls if "webstack-site" in c], calls  # no units, nothing started
    assert "is already serving: nothing to do" in proc.stdout
    assert proc.stdout.splitlines()[-2:] == ["webstack-setup: waiting for / through nginx",
                                             "webstack-setup: done"]
