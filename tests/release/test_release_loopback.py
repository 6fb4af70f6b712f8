"""The release script for real on loopback (see stack.py): releases A then B under a bounded
wrk load through nginx, a broken C and a D that breaks only once it serves, both rolled back to
B, pruning to appReleasesKept, and idempotency. Measured numbers are printed (run with -s);
the assertions are on behaviour: zero failed requests, which release answers, exit codes."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.release.stack import (
    PRE_START,
    REPO_URL,
    SECRET,
    Poll,
    Stack,
    dump,
    loopback_stack,
    rev,
)
from tests.variants import make_cfg

pytestmark = pytest.mark.realtools

KEPT = 2


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    for tool in ("nginx", "git", "wrk", "flock"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed: scripts/setup-system.sh (make system) does it")
    cfg = make_cfg({"webstack:appName": "shop", "webstack:appRepo": REPO_URL,
                    "webstack:appRef": "A", "webstack:appWorkers": "2",
                    "webstack:appReleasesKept": str(KEPT),
                    "webstack:appPreStart": json.dumps([PRE_START]),
                    "webstack:appSecrets": json.dumps(["DB_PASSWORD=/webstack/dev/shop/db"])})
    with loopback_stack(cfg, tmp_path_factory.mktemp("release")) as served:
        yield served


def served_by(stack: Stack) -> tuple[str, str]:
    return stack.get("/")


def report(what: str, **numbers: object) -> None:
    print(f"\n[release loopback] {what}: " + ", ".join(f"{k}={v}" for k, v in numbers.items()))


def short(stack: Stack, tag: str) -> str:
    return rev(stack.origin, tag)[:12]


def test_first_release_serves_a_through_the_same_code_path(stack: Stack) -> None:
    result, _ = stack.release()  # no REF: the stack's appRef, inline on local targets
    assert result.returncode == 0, result.stdout + result.stderr + dump(stack)
    sha = short(stack, "A")
    last = result.stdout.strip().splitlines()[-1]
    assert last == f"release: serving A ({sha}) as {stack.paths.releases}/{sha}"
    assert stack.current() == Path(stack.paths.releases) / sha
    assert served_by(stack) == ("200", "release A")
    assert stack.get("/healthz") == ("200", "ok A")
    release = stack.current()
    assert (release / "venv/bin/gunicorn").exists()  # its own venv
    # The pre-start hooks ran in the new release, with its venv and the app's secrets.
    assert (release / "src/hook-ran").read_text().split() == [
        str(release / "src"), str(release / "venv"), "has-secret"]


def test_releasing_what_serves_is_a_no_op(stack: Stack) -> None:
    stack.release("A")
    before = {p: p.stat().st_mtime_ns for p in Path(stack.paths.releases).rglob("*")
              if "__pycache__" not in p.parts}
    result, _ = stack.release("A")
    assert result.returncode == 0, result.stderr
    assert "is already serving: nothing to do" in result.stdout
    assert result.stdout.strip().splitlines()[-1].startswith("release: serving A (")
    after = {p: p.stat().st_mtime_ns for p in Path(stack.paths.releases).rglob("*")
             if "__pycache__" not in p.parts}
    assert after == before


def test_a_to_b_under_load_fails_no_request_and_b_imports_its_new_dependency(
        stack: Stack) -> None:
    stack.release("A")
    with Poll(stack.port, "/") as poll:
        result, wrk = stack.release("B", wrk_at="before it takes traffic")
    assert result.returncode == 0, result.stdout + result.stderr + dump(stack)
    assert wrk is not None
    # The load covered the switch: it started before it and ran past the script's end.
    assert wrk.started < result.when("switching") and wrk.ended > result.ended, wrk.output
    seen = Counter(status if status != "200" else body for status, body in poll.results)
    report("A -> B", wrk_requests=wrk.requests, wrk_non_2xx=wrk.non_2xx,
           wrk_socket_errors=wrk.socket_errors, poll=dict(seen))
    assert wrk.requests > 0
    assert (wrk.non_2xx, wrk.socket_errors) == (0, {}), wrk.output
    # Every answer came from A or from B (with the dependency only B's venv has), none failed.
    assert set(seen) <= {"release A", "release B with dep 1.0"}, seen
    assert served_by(stack) == ("200", "release B with dep 1.0")
    sha = short(stack, "B")
    assert result.stdout.strip().splitlines()[-1] == (
        f"release: serving B ({sha}) as {stack.paths.releases}/{sha}")


def test_broken_c_never_takes_traffic_and_b_keeps_serving(stack: Stack) -> None:
    stack.release("B")
    b = stack.current().name
    with Poll(stack.port, "/healthz") as poll:
        result, wrk = stack.release("C", wrk_at="before it takes traffic", wrk_seconds=4)
    assert result.returncode == 1
    message = result.stderr.strip()
    assert message.startswith("release: FAILED: release C (") and "\n" not in message
    assert "its health check failed before it took traffic" in message
    assert "GET /healthz answered 500" in message
    assert f"Rolled back to {b}, which kept serving throughout" in message
    # The app's 500 body quoted the secret; the message shows it redacted.
    assert "database unreachable with password ***" in message
    assert SECRET not in result.stdout + result.stderr
    assert wrk is not None
    seen = Counter(f"{s} {b}" for s, b in poll.results)
    report("C (broken: health 500)", exit=result.returncode, wrk_requests=wrk.requests,
           wrk_non_2xx=wrk.non_2xx, wrk_socket_errors=wrk.socket_errors, health=dict(seen))
    assert set(seen) == {"200 ok B"}, seen  # health stayed green, from B, throughout
    assert (wrk.non_2xx, wrk.socket_errors) == (0, {}), wrk.output
    assert stack.current().name == b
    assert served_by(stack) == ("200", "release B with dep 1.0")
    assert (Path(stack.paths.releases) / f".failed-{short(stack, 'C')}").is_dir()


def test_d_failing_after_the_switch_is_rolled_back_to_b_without_a_failed_request(
        stack: Stack) -> None:
    """D answers its health check once (the check before traffic), then 500: only the check
    through nginx after the switch can catch it, and the script switches back."""
    stack.release("B")
    b = stack.current().name
    with Poll(stack.port, "/") as poll:
        result, wrk = stack.release("D", wrk_at="before it takes traffic")
    assert result.returncode == 1, result.stdout + result.stderr + dump(stack)
    message = result.stderr.strip()
    assert "failed its health check through nginx after the switch" in message
    assert "GET /healthz answered 500: 'broke after one answer'" in message
    assert f"Rolled back to {b}, which answers /healthz with 200 again" in message
    assert wrk is not None
    seen = Counter(status if status != "200" else body for status, body in poll.results)
    report("D (breaks once serving) and the rollback", exit=result.returncode,
           wrk_requests=wrk.requests, wrk_non_2xx=wrk.non_2xx,
           wrk_socket_errors=wrk.socket_errors, poll=dict(seen))
    # Two restarts (to D, back to B) under load: still no failed request on /.
    assert (wrk.non_2xx, wrk.socket_errors) == (0, {}), wrk.output
    assert set(seen) <= {"release B with dep 1.0", "release D"}, seen
    assert stack.current().name == b
    assert stack.get("/healthz") == ("200", "ok B")


def test_only_the_newest_releases_are_kept(stack: Stack) -> None:
    for tag in ("A", "B", "E"):
        result, _ = stack.release(tag)
        assert result.returncode == 0, result.stdout + result.stderr + dump(stack)
    assert served_by(stack) == ("200", "release E")
    # appReleasesKept = 2: E (serving) and B (the one before); A pruned, failed trees gone.
    assert stack.releases() == sorted([short(stack, "B"), short(stack, "E")])
    assert not list(Path(stack.paths.releases).glob(".failed-*"))


def test_a_failing_hook_stops_the_release_and_its_output_is_redacted(stack: Stack) -> None:
    before = stack.current()
    result, _ = stack.release("F")
    assert result.returncode == 1
    message = result.stderr.strip()
    assert message.startswith("release: FAILED: release F (")
    assert "a pre-start hook failed: cannot migrate as ***" in message
    assert f"Rolled back to {before.name}, which kept serving throughout" in message
    assert SECRET not in result.stdout + result.stderr
    assert stack.current() == before


def test_a_bad_ref_is_a_usage_error_and_an_unknown_one_changes_nothing(stack: Stack) -> None:
    before = stack.current()
    bad, _ = stack.release("--upload-pack=touch /tmp/pwned")
    assert bad.returncode == 2 and "is not a git ref" in bad.stderr
    unknown, _ = stack.release("no-such-tag")
    assert unknown.returncode == 1
    assert unknown.stderr.startswith("release: FAILED: could not fetch no-such-tag")
    assert stack.current() == before
