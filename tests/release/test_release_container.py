"""appRuntime docker released for real on loopback: rootful podman pulls each image by digest
from a real registry (Debian's docker-registry on 127.0.0.1, plain HTTP as the local VM's
INSECURE_REGISTRY), the rendered release script starts the idle blue/green slot with it and
checks it before nginx (the rendered site) moves to it under a wrk load, a broken image never
takes traffic, a kept release goes back without a pull, and images are pruned with their
releases. The images are busybox (httpd on $PORT) imported from a tar: nothing leaves the
machine. systemd's part is tests/release/fake_container_systemctl.py; podman, nginx and the
registry are the real ones. Measured numbers are printed (run with -s)."""

from __future__ import annotations

import io
import json
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from components.bootstrap import Endpoints, render
from components.config import PROJECT_DIR
from components.naming import Paths
from devtools.localrun import connects, install, local_target, nginx_main_conf, stop, wait_for
from devtools.motoserver import free_port
from devtools.podman import containers_conf, podman_works
from devtools.registry import Registry, local_registry
from tests.release.stack import SECRET, STUBS, Stack, Wrk, require_tools
from tests.stubs import write_stubs
from tests.variants import make_cfg

pytestmark = pytest.mark.realtools

KEPT = 2
BUSYBOX = Path("/bin/busybox")
# PID 1 of the image: httpd on $PORT; on SIGTERM it stops accepting, lets its requests in
# flight finish, and exits (a graceful app).
RUN = """#!/bin/sh
httpd -f -p "$PORT" -h /www & pid=$!
trap 'kill "$pid"; sleep 1; exit 0' TERM
wait "$pid"
"""


def image(name: str, env: dict[str, str], registry: Registry, *, healthy: bool = True) -> str:
    """Release `name`'s image pushed to the registry; its reference by digest. Not in podman's
    store afterwards: a release pulls it."""
    files = {"www/index.html": f"release {name}\n", "app/static/app.css": f"{name} css\n",
             "app/run": RUN}
    if healthy:
        files["www/healthz"] = f"ok {name}\n"
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        tar.add(BUSYBOX, "bin/busybox")
        for link in ("sh", "httpd", "sleep", "kill"):
            info = tarfile.TarInfo(f"bin/{link}")
            info.type, info.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(info)
        for path, text in files.items():
            info = tarfile.TarInfo(path)
            data = text.encode()
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))
    local, remote = f"localhost/shop:{name}", f"{registry.host}/shop:{name}"
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "rootfs.tar").write_bytes(out.getvalue())
        for argv in (["podman", "import", "--change", "WORKDIR=/app",
                      "--change", 'CMD ["/bin/sh", "/app/run"]', f"{tmp}/rootfs.tar", local],
                     ["podman", "push", "--tls-verify=false", "--digestfile",
                      f"{tmp}/digest", local, remote],
                     ["podman", "rmi", "--force", local]):
            subprocess.run(argv, env=env, capture_output=True, check=True, timeout=120)
        return f"{registry.host}/shop@{(Path(tmp) / 'digest').read_text().strip()}"


def images_in_store(env: dict[str, str]) -> set[str]:
    out = subprocess.run(["podman", "images", "--format", "{{.Repository}}@{{.Digest}}"],
                         env=env, capture_output=True, text=True, check=True, timeout=60).stdout
    return set(out.split())


def containers_running(env: dict[str, str]) -> list[str]:
    out = subprocess.run(["podman", "ps", "--format", "{{.Names}}"], env=env,
                         capture_output=True, text=True, check=True, timeout=60).stdout
    return sorted(out.split())


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, Registry]]:
    require_tools("podman", "docker-registry", "nginx", "wrk", "flock")
    if not BUSYBOX.exists():
        pytest.skip("no /bin/busybox (Debian's busybox-static) to build the test images from")
    work = Path(tempfile.mkdtemp(prefix="wsctr-", dir="/tmp"))
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", **containers_conf(work)}
    why_not = podman_works(env)
    if why_not:
        pytest.skip(f"rootful podman cannot run here ({why_not}); the VM tier "
                    "(tests/vm/test_docker.py) releases containers in a real guest")
    root = work / "root"
    procs: list[subprocess.Popen[bytes]] = []
    try:
        with local_registry(work / "registry") as registry:
            first = image("A", env, registry)
            cfg = make_cfg({"webstack:appName": "shop", "webstack:appRuntime": "docker",
                            "webstack:appImage": first,
                            "webstack:appReleasesKept": str(KEPT),
                            "webstack:appSecrets": json.dumps(
                                ["DB_PASSWORD=/webstack/dev/shop/db"])})
            target = replace(local_target(root, free_port(), free_port(), pointer=first),
                             endpoints=Endpoints(registry=registry.host),
                             container_slots=(free_port(), free_port()))
            install(render(cfg, target), target)
            paths = Paths(target.root, cfg.app.name)
            (root / "ssm-secrets.env").write_text(f'DB_PASSWORD="{SECRET}"\n')
            Path(paths.nginx_logs).mkdir(parents=True)
            stubs = root / "stub"
            write_stubs(stubs, {**STUBS, "id": "echo 65534",  # the app's user, in the image
                                "systemctl": f'exec {sys.executable} '
                                f'{PROJECT_DIR}/tests/release/fake_container_systemctl.py "$@"'})
            prefix = root / "nginx-run"
            prefix.mkdir()
            distro = Path("/etc/nginx/nginx.conf").read_text()
            (prefix / "nginx.conf").write_text(
                nginx_main_conf(f"{paths.nginx}/conf.d/shop.conf", prefix, distro))
            with (root / "nginx.log").open("wb") as log:
                procs.append(subprocess.Popen(["nginx", "-c", str(prefix / "nginx.conf"), "-p",
                                               str(prefix), "-g", "daemon off;"],
                                              stdout=log, stderr=subprocess.STDOUT))
            wait_for(connects(socket.AF_INET, ("127.0.0.1", target.http_port)), "nginx")
            run_env = {**env, "PATH": f"{stubs}:{env['PATH']}", "HOME": str(root),
                       "LC_ALL": "C", "WEBSTACK_FAKE_ROOT": str(root)}
            yield Stack(cfg, root, paths, target.http_port, run_env, root), registry
    finally:
        for name in containers_running(env):
            subprocess.run(["podman", "rm", "--force", name], env=env, capture_output=True,
                           timeout=120, check=False)
        for proc in procs:
            stop(proc)
        subprocess.run(["podman", "system", "reset", "--force"], env=env, capture_output=True,
                       timeout=300, check=False)
        shutil.rmtree(work, ignore_errors=True)


def report(what: str, **numbers: object) -> None:
    print(f"\n[release container] {what}: " + ", ".join(f"{k}={v}" for k, v in numbers.items()))


def slot_logs(stack: Stack) -> str:
    return "\n".join(p.read_text(errors="replace")[-1500:] for p in stack.root.glob("slot-*.log"))


def test_first_release_pulls_by_digest_and_serves_through_nginx(served) -> None:
    stack, _ = served
    result, _ = stack.release()  # no REF: the target's pointer (appImage by digest)
    assert result.returncode == 0, result.stdout + result.stderr + slot_logs(stack)
    digest = stack.cfg.app.image.split("@sha256:")[1]
    release = Path(stack.paths.releases) / f"image-{digest[:12]}"
    assert result.stdout.splitlines()[-1] == (
        f"release: serving {stack.cfg.app.image.split('@')[0]} ({digest[:12]}) as {release}")
    assert stack.current() == release
    assert stack.get("/") == ("200", "release A")
    assert stack.get("/static/app.css") == ("200", "A css")  # copied out of the image
    assert (release / "image").read_text().strip() == stack.cfg.app.image
    live = (Path(stack.paths.state) / "live-slot").read_text().strip()
    assert containers_running(stack.env) == [f"webstack-shop-{live}"]
    # podman's env file: the app's environment and its secret, verbatim, root-only
    container_env = Path(stack.paths.secrets_dir) / "container.env"
    assert f"DB_PASSWORD={SECRET}\n" in container_env.read_text()
    assert container_env.stat().st_mode & 0o077 == 0
    report("first release", phases=result.stdout.splitlines()[-2])


LOAD: dict[str, Wrk] = {}  # the load test's wrk, for the keep-alive check after it


def test_a_new_digest_under_load_reaches_no_stopped_slot(served) -> None:
    stack, registry = served
    before = (Path(stack.paths.state) / "live-slot").read_text()
    ref = image("B", stack.env, registry)
    result, wrk = stack.release(ref, wrk_at="pulling", wrk_seconds=15)
    assert result.returncode == 0, result.stdout + result.stderr + slot_logs(stack)
    assert stack.get("/") == ("200", "release B")
    assert wrk is not None and wrk.requests > 0, wrk
    LOAD["wrk"] = wrk
    # no 502 (a request nginx sent to a stopped slot), no refused connection, no timeout
    assert (wrk.non_2xx, wrk.socket_errors.get("connect", 0),
            wrk.socket_errors.get("timeout", 0)) == (0, 0, 0), wrk.output
    after = (Path(stack.paths.state) / "live-slot").read_text()
    assert after != before  # the other slot serves; the old one is stopped
    assert containers_running(stack.env) == [f"webstack-shop-{after.strip()}"]
    report("new digest under load", requests=wrk.requests, failed=wrk.failed,
           release_seconds=f"{result.ended - result.lines[0][0]:.1f}",
           phases=result.stdout.splitlines()[-2])


def test_the_switch_loses_at_most_a_few_keepalive_reads() -> None:
    """A known limit, bounded rather than hidden: `systemctl reload nginx` makes its old workers
    close their idle keep-alive connections, and a request a client sends on one at that
    instant is a read error (1-4 in ~50k here; clients retry such idempotent requests). No
    request is answered with an error, none is refused or times out, nothing is written to a
    closed connection. The fix (slots on the host network, so the switch needs no reload) is
    left for a later change: see the README's Containers section."""
    wrk = LOAD.get("wrk")
    assert wrk is not None, "runs after the load test"
    errors = wrk.socket_errors
    assert wrk.non_2xx == 0 and errors.get("write", 0) == 0, wrk.output
    assert errors.get("read", 0) <= 5, wrk.output


def test_a_broken_image_never_takes_traffic(served) -> None:
    stack, registry = served
    serving = stack.current()
    ref = image("C", stack.env, registry, healthy=False)
    result, _ = stack.release(ref)
    assert result.returncode == 1
    assert "release: FAILED:" in result.stderr and "before it took traffic" in result.stderr
    assert f"Rolled back to {serving.name}, which kept serving throughout" in result.stderr
    assert SECRET not in result.stdout + result.stderr
    assert stack.current() == serving and stack.get("/") == ("200", "release B")
    assert len(containers_running(stack.env)) == 1  # the candidate was stopped


def test_releasing_what_serves_is_a_no_op(served) -> None:
    stack, _ = served
    ref = (stack.current() / "image").read_text().strip()
    result, _ = stack.release(ref)
    assert result.returncode == 0, result.stderr
    assert "is already serving: nothing to do" in result.stdout


def test_a_kept_release_comes_back_without_a_pull_and_old_images_are_pruned(served) -> None:
    stack, registry = served
    first = stack.cfg.app.image
    result, _ = stack.release(first)
    assert result.returncode == 0, result.stderr + slot_logs(stack)
    assert "is still in" in result.stdout and "pulling" not in result.stdout
    assert stack.get("/") == ("200", "release A")
    report("back to a kept image", seconds=f"{result.ended - result.lines[0][0]:.1f}")
    b = (Path(stack.paths.releases)).glob("image-*/image")
    kept_before = {p.read_text().strip() for p in b}
    ref = image("D", stack.env, registry)
    result, _ = stack.release(ref)
    assert result.returncode == 0, result.stderr + slot_logs(stack)
    kept = {p.read_text().strip() for p in Path(stack.paths.releases).glob("image-*/image")}
    assert kept == {first, ref}  # appReleasesKept = 2: the newest two released
    gone = kept_before - kept
    assert gone and not gone & images_in_store(stack.env)
    assert images_in_store(stack.env) >= kept


def test_the_operations_verbs_list_run_in_the_live_image_and_roll_back(served) -> None:
    """release --list, --run -- CMD (in the live slot's image, as the slots run it) and
    --rollback (to the kept image: no pull), as the operations CLI sends them."""
    stack, _ = served
    first, serving = stack.cfg.app.image, stack.current()
    ref = (serving / "image").read_text().strip()
    listed, _ = stack.release("--list")
    releases = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [(r["id"], r["ref"], r["current"]) for r in releases] == [
        (serving.name, ref, True), (f"image-{first.split(':')[-1][:12]}", first, False)]
    run, _ = stack.release("--run", "--", "sh", "-c",
                           'echo "$PORT $DB_PASSWORD"; pwd; touch /not-here || exit 3')
    assert run.returncode == 3, run.stdout + run.stderr
    # the image's WORKDIR, the app's environment and secret, and the read-only root of a slot
    assert run.stdout.splitlines()[:2] == [f"{stack.cfg.app.container_port} {SECRET}", "/app"]
    result, _ = stack.release("--rollback")
    assert result.returncode == 0, result.stderr + slot_logs(stack)
    assert "pulling" not in result.stdout
    assert result.stdout.splitlines()[-1].startswith(f"release: serving {first.split('@')[0]} (")
    assert stack.get("/") == ("200", "release A")
