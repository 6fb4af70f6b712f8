"""The operations verbs of the release script for real on loopback (see stack.py), as the CLI
sends them through SSM: `--list` (JSON lines), `--rollback [ID]` (a kept release again, through
the whole engine and offline) and `--run -- CMD...` (once, as the app runs). The git app's tests
run in order on one stack: nothing released, A alone, then A and B; a static site from bundles
shows a bundle's pointer and rollback."""

from __future__ import annotations

import json
import re
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest

from components import naming
from tests.release.stack import (
    REPO_URL,
    SECRET,
    BundleBucket,
    Poll,
    Release,
    Stack,
    bundle_loopback,
    dump,
    loopback_stack,
    rev,
)
from tests.variants import make_cfg

pytestmark = pytest.mark.realtools

GREETING = "hello from appEnv"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    for tool in ("nginx", "git", "flock"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed: scripts/setup-system.sh (make system) does it")
    cfg = make_cfg({"webstack:appName": "shop", "webstack:appRepo": REPO_URL,
                    "webstack:appRef": "A", "webstack:appReleasesKept": "3",
                    "webstack:appEnv": json.dumps([f"GREETING={GREETING}"]),
                    "webstack:appSecrets": json.dumps(["DB_PASSWORD=/webstack/dev/shop/db"])})
    with loopback_stack(cfg, tmp_path_factory.mktemp("ops")) as served:
        yield served


def release_ok(stack: Stack, *args: str) -> Release:
    result, _ = stack.release(*args)
    assert result.returncode == 0, result.stdout + result.stderr + dump(stack)
    return result


def listed(stack: Stack) -> list[dict[str, object]]:
    result, _ = stack.release("--list")
    assert (result.returncode, result.stderr) == (0, ""), result.stderr
    return [json.loads(line) for line in result.stdout.splitlines() if line]


def ids(stack: Stack) -> dict[str, str]:
    """tag -> its release's ID (the commit's first 12 hex digits)."""
    return {tag: rev(stack.origin, tag)[:12] for tag in ("A", "B")}


def serving_line(stack: Stack, tag: str) -> str:
    sha = rev(stack.origin, tag)
    return f"release: serving {sha} ({sha[:12]}) as {stack.paths.releases}/{sha[:12]}"


def test_before_any_release_there_is_nothing_to_list_roll_back_or_run(stack: Stack) -> None:
    assert listed(stack) == []
    rollback, _ = stack.release("--rollback")
    assert (rollback.returncode, rollback.stderr) == (
        1, "release: FAILED: no release to roll back to (nothing is released yet)\n")
    run, _ = stack.release("--run", "--", "true")
    assert (run.returncode, run.stdout, run.stderr) == (
        1, "\n", "release: FAILED: nothing is released yet\n")


def test_with_one_release_there_is_nothing_to_roll_back_to(stack: Stack) -> None:
    release_ok(stack, "A")
    a = ids(stack)["A"]
    result, _ = stack.release("--rollback")
    assert (result.returncode, result.stderr) == (
        1, f"release: FAILED: no release to roll back to (only {a} is kept)\n")
    assert stack.current().name == a


def test_list_shows_the_releases_newest_first_with_their_commits(stack: Stack) -> None:
    started = time.time()
    release_ok(stack, "B")
    a, b = ids(stack)["A"], ids(stack)["B"]
    releases = listed(stack)
    assert [(r["id"], r["ref"], r["current"]) for r in releases] == [
        (b, rev(stack.origin, "B"), True), (a, rev(stack.origin, "A"), False)]
    times = []
    for r in releases:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", str(r["released"])), r
        times.append(datetime.strptime(str(r["released"]), "%Y-%m-%dT%H:%M:%S%z").timestamp())
    assert times == sorted(times, reverse=True)
    assert int(started) <= times[0] <= time.time()  # B's: when it was released, in UTC
    for r in releases:  # the pointer each was released from, recorded beside it
        assert (Path(stack.paths.releases) / str(r["id"]) / ".ref").read_text() == f"{r['ref']}\n"


def test_rollback_goes_back_to_a_through_the_engine_with_no_fetch_and_no_failed_request(
        stack: Stack) -> None:
    a, b = ids(stack)["A"], ids(stack)["B"]
    assert stack.current().name == b
    # the origin is unreachable: a kept release needs nothing from it
    offline = replace(stack, env={**stack.env,
                                  "GIT_CONFIG_KEY_0": "url.file:///nonexistent.insteadOf"})
    with Poll(stack.port, "/") as poll:
        result, _ = offline.release("--rollback")
    assert result.returncode == 0, result.stdout + result.stderr + dump(stack)
    out = result.stdout
    assert f"is still in {stack.paths.releases}/{a}: reusing it" in out and "fetching" not in out
    assert f"checking /healthz on {a} before it takes traffic" in out
    assert out.splitlines()[-1] == serving_line(stack, "A")
    seen = Counter(status if status != "200" else body for status, body in poll.results)
    assert poll.results and set(seen) <= {"release A", "release B with dep 1.0"}, seen
    assert stack.get("/") == ("200", "release A") and stack.current().name == a
    assert [(r["id"], r["current"]) for r in listed(stack)] == [(a, True), (b, False)]
    unreachable, _ = offline.release("B")  # while a tag would need the origin
    assert unreachable.stderr.startswith("release: FAILED: could not fetch B"), unreachable.stderr


def test_rollback_to_a_named_release_goes_forward_again(stack: Stack) -> None:
    b = ids(stack)["B"]
    result = release_ok(stack, "--rollback", b)
    assert result.stdout.splitlines()[-1] == serving_line(stack, "B")
    assert stack.get("/") == ("200", "release B with dep 1.0")
    again = release_ok(stack, "--rollback", b)
    assert "is already serving: nothing to do" in again.stdout


def test_rollback_to_an_id_that_is_not_kept_is_a_usage_error_naming_the_kept_ones(
        stack: Stack) -> None:
    a, b = ids(stack)["A"], ids(stack)["B"]
    before = stack.current()
    for bad in ("nonsense", f"../{b}", f".failed-{a}"):
        result, _ = stack.release("--rollback", bad)
        assert result.returncode == 2, (bad, result.stderr)
        assert result.stderr == (
            f"release: FAILED: '{bad}' is not a kept release: expected one of {b} {a}\n")
    assert stack.current() == before


def test_run_sees_the_app_environment_its_source_and_venv(stack: Stack) -> None:
    release = stack.current()
    code = ("import os, sys; print(os.environ['GREETING']); print(os.getcwd()); "
            "print(sys.prefix); print(os.environ['PYTHONUNBUFFERED']); "
            "print('asked for', os.environ['DB_PASSWORD'])")
    result, _ = stack.release("--run", "--", "python", "-c", code)
    assert (result.returncode, result.stderr) == (0, ""), result.stderr
    assert result.stdout.splitlines() == [
        GREETING, str(release / "src"), str((release / "venv").resolve()), "1",
        f"asked for {SECRET}"]  # only because the command printed it


def test_run_returns_the_commands_exit_code_and_says_nothing_of_its_own(stack: Stack) -> None:
    result, _ = stack.release("--run", "--", "sh", "-c", "exit 3")
    assert (result.returncode, result.stdout, result.stderr) == (3, "\n", "")
    usage, _ = stack.release("--run", "python")  # no `--`
    assert usage.returncode == 2 and "--run -- CMD [ARG...]" in usage.stderr
    assert SECRET not in usage.stdout + usage.stderr


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory,
         moto_url: str) -> Iterator[tuple[Stack, BundleBucket, Path]]:
    work = tmp_path_factory.mktemp("ops-site")
    with bundle_loopback(work, moto_url, "site-dev-123456789012-us-east-1",
                         naming.bundle_key("site"),
                         {"webstack:appName": "site", "webstack:appKind": "static",
                          # a build: the site's files are not in the (empty) source yet
                          "webstack:appBuild": json.dumps(["true"])},
                         requirements=False) as (stack, bucket, _):
        yield stack, bucket, work


def test_a_bundle_rolls_back_to_the_version_it_came_from_and_a_site_runs_no_commands(
        site: tuple[Stack, BundleBucket, Path]) -> None:
    stack, bucket, work = site
    pointers = {}
    for name in ("A", "B"):
        (work / name).mkdir()
        (work / name / "index.html").write_text(f"release {name}\n")
        _, pointers[name] = bucket.upload(work / name)
        release_ok(stack, pointers[name])
    assert [(r["ref"], r["current"]) for r in listed(stack)] == [
        (pointers["B"], True), (pointers["A"], False)]
    # A's version is gone from the bucket: going back to it reads nothing from S3
    sha, version = pointers["A"].split("@")
    bucket.s3.delete_object(Bucket=bucket.bucket, Key=bucket.key, VersionId=version)
    result = release_ok(stack, "--rollback")
    assert "fetching" not in result.stdout and "reusing it" in result.stdout
    assert result.stdout.splitlines()[-1] == (
        f"release: serving bundle ({sha[:12]}) as {stack.paths.releases}/bundle-{sha[:12]}")
    assert stack.get("/") == ("200", "release A")
    run, _ = stack.release("--run", "--", "true")
    assert (run.returncode, run.stderr) == (2, "release: FAILED: a static site runs no commands\n")
