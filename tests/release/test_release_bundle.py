"""Releases of an appSource bundle on loopback, for real: the rendered release script fetches
each version of the stack's bundle object from a local S3 (moto) with IMDSv2 credentials, checks
its sha256, shares the venv of releases with the same requirements, runs the build commands
before the health check, and keeps the app's data directory across releases."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from components import naming
from components.bootstrap import bundle_release
from components.bundle import Bundle, pack
from tests.release.stack import (
    SECRET,
    BundleBucket,
    Stack,
    app_source,
    bundle_loopback,
    dump,
)

pytestmark = pytest.mark.realtools

BUCKET = "shop-dev-123456789012-us-east-1"
KEY = naming.bundle_key("shop")
# Records where it ran and what it saw; fails in a release that has a file named fail-build.
BUILD = ('echo "$PWD $VIRTUAL_ENV $APP_DATA_DIR ${DB_PASSWORD:+has-secret}" > build-ran; '
         'echo built >> "$APP_DATA_DIR/builds"; '
         'if [ -f fail-build ]; then echo "build broke as $DB_PASSWORD"; exit 4; fi')


class Bundles:
    """The app's versions as `pulumi up` uploads them: one key, a new S3 version each."""

    def __init__(self, root: Path, bucket: BundleBucket):
        self.root, self.bucket, self.s3 = root, bucket, bucket.s3

    def upload(self, name: str, *, extra: dict[str, str] | None = None) -> tuple[Bundle, str]:
        src = self.root / name
        src.mkdir()
        (src / "app.py").write_text(app_source(name))
        (src / "requirements.txt").write_text("")
        for rel, text in (extra or {}).items():
            (src / rel).write_text(text)
        return self.bucket.upload(src)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory,
          moto_url: str) -> Iterator[tuple[Stack, Bundles]]:
    work = tmp_path_factory.mktemp("bundle")
    with bundle_loopback(work, moto_url, BUCKET, KEY, {
            "webstack:appName": "shop", "webstack:appWorkers": "2",
            "webstack:appBuild": json.dumps([BUILD]),
            "webstack:appSecrets": json.dumps(["DB_PASSWORD=/webstack/dev/shop/db"])},
            ) as (stack, bucket, _):
        yield stack, Bundles(work / "bundles", bucket)


def test_a_bundle_is_fetched_by_its_version_built_and_served(setup) -> None:
    stack, bundles = setup
    bundles.root.mkdir()
    code, pointer = bundles.upload("A")
    result, _ = stack.release(pointer)
    assert result.returncode == 0, result.stderr + dump(stack)
    release = Path(stack.paths.releases) / bundle_release(code.sha256)
    assert stack.current() == release
    assert result.stdout.splitlines()[-1] == (
        f"release: serving bundle ({code.sha256[:12]}) as {release}")
    assert stack.get("/") == ("200", "release A")
    # the build ran in the new release's app directory, with its venv, environment and secrets
    ran = (release / "src" / "build-ran").read_text().split()
    assert ran == [str(release / "src"), str(release / "venv"), stack.paths.data, "has-secret"]
    assert (release / "venv").is_symlink()
    assert "phases: fetch" in result.stdout and " build " in result.stdout


def test_new_code_with_the_same_requirements_reuses_the_venv_with_no_failed_request(setup) -> None:
    stack, bundles = setup
    before = stack.current()
    _, pointer = bundles.upload("B")
    result, wrk = stack.release(pointer, wrk_at="fetching bundle")
    assert result.returncode == 0, result.stderr + dump(stack)
    assert "(the same requirements: reused)" in result.stdout
    assert stack.get("/") == ("200", "release B")
    assert (stack.current() / "venv").resolve() == (before / "venv").resolve()
    assert wrk is not None and wrk.requests > 0 and wrk.failed == 0, wrk
    # the data directory is the app's, kept across releases
    assert (Path(stack.paths.data) / "builds").read_text() == "built\nbuilt\n"
    print(f"\n[bundle release] {result.stdout.splitlines()[-2]}")


def test_a_bundle_whose_bytes_are_not_the_pointers_is_refused(setup) -> None:
    stack, bundles = setup
    serving_now = stack.current()
    other, _ = bundles.upload("C")
    version = bundles.s3.list_object_versions(Bucket=BUCKET, Prefix=KEY)["Versions"][-1]
    forged = f"{other.sha256}@{version['VersionId']}"  # C's hash, A's bytes
    result, _ = stack.release(forged)
    assert result.returncode == 1
    assert f"not {other.sha256}: refused" in result.stderr
    assert stack.current() == serving_now and stack.get("/") == ("200", "release B")


def test_a_failing_build_stops_the_release_and_the_current_one_keeps_serving(setup) -> None:
    stack, bundles = setup
    serving_now = stack.current()
    code, pointer = bundles.upload("D", extra={"fail-build": ""})
    result, _ = stack.release(pointer)
    assert result.returncode == 1
    assert "a build command failed: build broke as ***" in result.stderr
    assert SECRET not in result.stderr + result.stdout
    assert stack.current() == serving_now and stack.get("/") == ("200", "release B")
    assert (Path(stack.paths.releases) / f".failed-{bundle_release(code.sha256)}").is_dir()


def test_back_to_a_kept_release_needs_no_fetch(setup) -> None:
    stack, bundles = setup
    first = bundles.s3.list_object_versions(Bucket=BUCKET, Prefix=KEY)["Versions"][-1]
    a = pack(bundles.root / "A")
    result, _ = stack.release(f"{a.sha256}@{first['VersionId']}")
    assert result.returncode == 0, result.stderr
    assert "is still in" in result.stdout and "fetching" not in result.stdout
    assert stack.get("/") == ("200", "release A")
