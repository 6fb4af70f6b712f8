"""appServer uwsgi on the release engine, for real on loopback (see stack.py): uWSGI takes the
socket fakesystemd holds (LISTEN_FDS) and speaks the uwsgi protocol to nginx's uwsgi_pass; the
same releases as gunicorn's (tests/release/test_release_loopback.py) switch under wrk load with
no failed request, a broken release (health 500, an import error) never takes traffic, one that
breaks once serving is rolled back; a restart lets a request in flight finish (the unit stops
uWSGI with SIGHUP). The examples (hello-app, flask-app) are released as bundles from a local
S3, and the release time is measured against gunicorn's on the same app (run with -s)."""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from components import naming
from components.config import PROJECT_DIR
from tests.release.stack import (
    PRE_START,
    RELEASES,
    REPO_URL,
    SECRET,
    Poll,
    Stack,
    app_source,
    bundle_loopback,
    dump,
    get,
    loopback_stack,
    origin_repo,
)

# gunicorn's release tests, run here against this module's uWSGI stack: the same behaviour.
from tests.release.test_release_loopback import (  # noqa: F401 (collected by pytest)
    KEPT,
    test_a_bad_ref_is_a_usage_error_and_an_unknown_one_changes_nothing,
    test_a_failing_hook_stops_the_release_and_its_output_is_redacted,
    test_a_to_b_under_load_fails_no_request_and_b_imports_its_new_dependency,
    test_broken_c_never_takes_traffic_and_b_keeps_serving,
    test_d_failing_after_the_switch_is_rolled_back_to_b_without_a_failed_request,
    test_only_the_newest_releases_are_kept,
    test_releasing_what_serves_is_a_no_op,
)
from tests.variants import make_cfg

pytestmark = pytest.mark.realtools

EXAMPLES = PROJECT_DIR / "examples"
SLOW_SECONDS = 2.0
# G cannot be imported; S answers /slow after SLOW_SECONDS.
UWSGI_RELEASES = {
    **RELEASES,
    "G": {"app.py": "import webstack_no_such_module\n" + app_source("G"),
          "requirements.txt": ""},
    "S": {"app.py": app_source("S").replace(
        "    else:\n", "    elif environ['PATH_INFO'] == '/slow':\n"
        f"        import time; time.sleep({SLOW_SECONDS}); body = 'slow S'\n    else:\n"),
          "requirements.txt": ""},
}


def report(what: str, **numbers: object) -> None:
    print(f"\n[release uwsgi] {what}: " + ", ".join(f"{k}={v}" for k, v in numbers.items()))


def error_log(stack: Stack) -> str:
    """uWSGI's own log (logto in uwsgi.ini): the master's lines, the app's output."""
    path = Path(stack.paths.logs) / "error.log"
    return path.read_text(errors="replace") if path.exists() else ""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    for tool in ("nginx", "git", "wrk", "flock"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed: scripts/setup-system.sh (make system) does it")
    work = tmp_path_factory.mktemp("uwsgi")
    cfg = make_cfg({"webstack:appName": "shop", "webstack:appRepo": REPO_URL,
                    "webstack:appRef": "A", "webstack:appServer": "uwsgi",
                    "webstack:appWorkers": "2", "webstack:appReleasesKept": str(KEPT),
                    "webstack:appPreStart": json.dumps([PRE_START]),
                    "webstack:appSecrets": json.dumps(["DB_PASSWORD=/webstack/dev/shop/db"])})
    with loopback_stack(cfg, work, origin=origin_repo(work / "origin", UWSGI_RELEASES)) as served:
        # the first release, before any test (gunicorn's tests expect one serving)
        result, _ = served.release("A")
        assert result.returncode == 0, result.stdout + result.stderr + dump(served)
        yield served


def test_uwsgi_serves_on_the_socket_systemd_holds(stack: Stack) -> None:
    result, _ = stack.release("A")
    assert result.returncode == 0, result.stdout + result.stderr + dump(stack)
    assert stack.get("/") == ("200", "release A")
    assert stack.get("/healthz") == ("200", "ok A")
    venv = stack.current() / "venv/bin"
    assert (venv / "uwsgi").exists() and not (venv / "gunicorn").exists()
    log = error_log(stack).split("*** Starting uWSGI ")[1]  # its first start (the fixture's)
    # uWSGI found systemd's socket (LISTEN_FDS, LISTEN_PID) and bound none of its own: nginx's
    # uwsgi_pass above reached it there, in the uwsgi protocol.
    assert "- SystemD socket activation detected -" in log, log
    assert f"uwsgi socket 0 attached to UNIX address {stack.paths.socket} fd 3" in log, log
    assert "bound to" not in log, log
    assert log.count("spawned uWSGI worker") == 2, log  # appWorkers
    # The pre-start hooks ran in the new release, with its venv and the app's secrets.
    release = stack.current()
    assert (release / "src/hook-ran").read_text().split() == [
        str(release / "src"), str(release / "venv"), "has-secret"]


def test_a_release_that_cannot_import_never_takes_traffic(stack: Stack) -> None:
    tag = "G"
    stack.release("B")
    b = stack.current().name
    with Poll(stack.port, "/healthz") as poll:
        result, wrk = stack.release(tag, wrk_at="before it takes traffic", wrk_seconds=4)
    assert result.returncode == 1, result.stdout + result.stderr + dump(stack)
    message = result.stderr.strip()
    assert message.startswith(f"release: FAILED: release {tag} (") and "\n" not in message
    assert ("its health check failed before it took traffic: the server exited before "
            "answering GET /healthz") in message, message
    # uWSGI's log, quoted: the import error, not uWSGI's own lines of its exit
    assert ("uwsgi's log ends: " in message and "ModuleNotFoundError: No module named "
            "'webstack_no_such_module'" in message), message
    assert f"Rolled back to {b}, which kept serving throughout" in message
    assert SECRET not in result.stdout + result.stderr
    assert wrk is not None
    seen = Counter(f"{s} {body}" for s, body in poll.results)
    report(f"{tag} (cannot import)", wrk_requests=wrk.requests, wrk_non_2xx=wrk.non_2xx,
           wrk_socket_errors=wrk.socket_errors, health=dict(seen))
    assert set(seen) == {"200 ok B"}, seen
    assert (wrk.non_2xx, wrk.socket_errors) == (0, {}), wrk.output
    assert stack.current().name == b


def test_a_restart_lets_the_request_in_flight_finish(stack: Stack) -> None:
    """KillSignal=SIGHUP: uWSGI's graceful stop (SIGTERM, with die-on-term, would cut it off)."""
    result, _ = stack.release("S")
    assert result.returncode == 0, result.stdout + result.stderr + dump(stack)
    answers: list[tuple[str, str]] = []
    slow = threading.Thread(target=lambda: answers.append(get(stack.port, "/slow")))
    started = time.monotonic()
    slow.start()
    time.sleep(SLOW_SECONDS / 4)
    restart = subprocess.run(["systemctl", "restart", f"webstack-{stack.cfg.app.name}.service"],
                             env=stack.env, capture_output=True, text=True, timeout=60,
                             check=False)
    slow.join(timeout=30)
    assert restart.returncode == 0, restart.stderr
    assert answers == [("200", "slow S")], dump(stack)
    assert time.monotonic() - started >= SLOW_SECONDS
    log = error_log(stack)
    assert "...gracefully killing workers..." in log and "GAME OVER" in log, log
    assert stack.get("/") == ("200", "release S")  # the restarted uWSGI serves


# --- the examples, released as bundles -----------------------------------------------------

def _bundle_stack(work: Path, moto_url: str, bucket: str, app: str, overrides: dict[str, str]):
    """A loopback stack of app `app` whose bundles are in its own bucket of the local S3."""
    return bundle_loopback(work, moto_url, f"{bucket}-dev-123456789012-us-east-1",
                           naming.bundle_key(app),
                           {"webstack:appName": app, "webstack:appWorkers": "2", **overrides})


def test_hello_app_through_nginx_and_uwsgi(tmp_path: Path, moto_url: str) -> None:
    with _bundle_stack(tmp_path, moto_url, "hellouwsgi", "hello", {
            "webstack:appServer": "uwsgi"}) as (stack, store, _):
        _, pointer = store.upload(EXAMPLES / "hello-app")
        result, _ = stack.release(pointer)
        assert result.returncode == 0, result.stdout + result.stderr + dump(stack)
        assert stack.get("/") == ("200", "Hello from webstack")
        # What the app sees: nginx's view of the client, never the client's own claims.
        big = {f"X-Big-{n}": "x" * 7000 for n in range(3)}  # nginx's limit: 8 KiB a line
        seen = _headers(stack, {"X-Forwarded-For": "6.6.6.6", "X-Real-IP": "6.6.6.6",
                                "X-Forwarded-Proto": "https", "Cookie": "c=" + "x" * 7000,
                                **big})
        assert seen["HTTP_X_FORWARDED_FOR"] == seen["HTTP_X_REAL_IP"] == "127.0.0.1", seen
        assert seen["REMOTE_ADDR"] == "127.0.0.1", seen
        assert seen["HTTP_X_FORWARDED_PROTO"] == seen["wsgi.url_scheme"] == "http", seen
        assert seen["HTTP_HOST"] == seen["HTTP_X_FORWARDED_HOST"] == "localhost", seen
        # 28 KB of headers fit uWSGI's buffer-size (its default, 4 KiB, would refuse them)
        assert [len(seen[f"HTTP_X_BIG_{n}"]) for n in range(3)] == [7000] * 3, seen.keys()
        assert len(seen["HTTP_COOKIE"]) == 7002
        # A body nginx accepts (appMaxBodyMib 10) reaches uWSGI (post-buffering: a temp file).
        status = _post(stack, "/healthz", b"x" * (5 * 1024 * 1024))
        assert status == 200


def test_flask_app_through_nginx_and_uwsgi(tmp_path: Path, moto_url: str) -> None:
    with _bundle_stack(tmp_path, moto_url, "flaskuwsgi", "flask", {
            "webstack:appServer": "uwsgi", "webstack:appWsgi": "app:app"}) as (stack, store, _):
        _, pointer = store.upload(EXAMPLES / "flask-app")
        result, _ = stack.release(pointer)
        assert result.returncode == 0, result.stdout + result.stderr + dump(stack)
        assert stack.get("/healthz") == ("200", "ok")
        assert _post(stack, "/messages", b"text=from+uwsgi",
                     "application/x-www-form-urlencoded") == 303
        status, page = stack.get("/")
        assert status == "200" and "from uwsgi" in page, page
        assert (stack.current() / "venv/bin/flask").exists()  # its own venv, Flask in it


def test_release_time_uwsgi_against_gunicorn(tmp_path: Path, moto_url: str) -> None:
    """New code of hello-app (requirements unchanged: the venv is reused), released three times
    by each server; the uWSGI releases run under wrk load and fail no request."""
    medians = {}
    for server in ("gunicorn", "uwsgi"):
        work = tmp_path / server
        work.mkdir()
        with _bundle_stack(work, moto_url, f"time{server}", "hello", {
                "webstack:appServer": server}) as (stack, store, _):
            first, _ = stack.release(store.upload(_hello_version(work, 0))[1])
            assert first.returncode == 0, first.stdout + first.stderr + dump(stack)
            times = []
            for n in (1, 2, 3):
                pointer = store.upload(_hello_version(work, n))[1]
                start = time.monotonic()
                result, wrk = stack.release(pointer, wrk_at="before it takes traffic",
                                            wrk_seconds=6)
                times.append(result.ended - start)
                assert result.returncode == 0, result.stdout + result.stderr + dump(stack)
                assert "(the same requirements: reused)" in result.stdout
                assert wrk is not None
                assert (wrk.non_2xx, wrk.socket_errors) == (0, {}), wrk.output
                assert stack.get("/") == ("200", f"Hello from webstack, version {n}")
            medians[server] = statistics.median(times)
            report(f"{server}: hello-app, new code", seconds=[round(t, 2) for t in times],
                   median=round(medians[server], 2), phases=result.stdout.split("phases: ")[1]
                   .splitlines()[0])
    assert set(medians) == {"gunicorn", "uwsgi"}


def _hello_version(work: Path, n: int) -> Path:
    """hello-app whose greeting names version n."""
    src = work / f"hello-{n}"
    shutil.copytree(EXAMPLES / "hello-app", src)
    app = src / "app.py"
    app.write_text(app.read_text().replace('"Hello from webstack"',
                                           f'"Hello from webstack, version {n}"'))
    return src


def _headers(stack: Stack, headers: dict[str, str]) -> dict[str, str]:
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=30)
    try:
        conn.request("GET", "/headers", headers={"Host": "localhost", **headers})
        resp = conn.getresponse()
        body = resp.read()
        assert resp.status == 200, body
        return json.loads(body)
    finally:
        conn.close()


def _post(stack: Stack, path: str, body: bytes,
          content_type: str = "application/octet-stream") -> int:
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=60)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": content_type})
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()
