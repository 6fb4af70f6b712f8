"""The offline image (devtools/oci.py) is the container example's: its code and static files,
a non-root user, gunicorn binding $PORT as the example's Dockerfile has it; the same recipe
gives the same layers and digest on this machine; podman pulls it from a registry and runs
it."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from devtools import oci
from devtools.localrun import wait_until
from devtools.motoserver import free_port
from devtools.podman import containers_conf, podman_works
from devtools.registry import local_registry
from devtools.vm import get

pytestmark = pytest.mark.realtools


def test_the_image_is_the_example_as_its_dockerfile_runs_it(tmp_path: Path) -> None:
    image = oci.example_image("9", tmp_path, print)
    config = json.loads(image.config.data)
    run = config["config"]
    assert run["User"] == f"{oci.UID}:{oci.UID}" and run["WorkingDir"] == oci.APP_DIR
    assert "PORT=8000" in run["Env"] and run["ExposedPorts"] == {"8000/tcp": {}}
    # the Dockerfile's command, run as a module (no console script in the offline root)
    assert run["Cmd"][:3] == ["python3", "-m", "gunicorn"]
    dockerfile = (oci.EXAMPLE / "Dockerfile").read_text()
    assert "CMD " + json.dumps(["gunicorn", *run["Cmd"][3:]]) in dockerfile
    assert config["rootfs"]["diff_ids"] == [layer.diff_id for layer in image.layers]
    manifest = json.loads(image.manifest)
    assert [d["digest"] for d in manifest["layers"]] == [
        layer.blob.digest for layer in image.layers]
    with tarfile.open(fileobj=io.BytesIO(image.layers[1].blob.data)) as tar:
        names = {m.name: m for m in tar.getmembers()}
        version = tar.extractfile("app/VERSION")
        assert version is not None and version.read() == b"9\n"
    assert names["app/app.py"].mode == 0o644 and names["app/app.py"].mtime == 0
    assert {m.uid for m in names.values()} == {0}


def test_the_same_recipe_is_the_same_digest_and_a_version_is_a_new_one(tmp_path: Path) -> None:
    first = oci.example_image("1", tmp_path, print)
    assert oci.example_image("1", tmp_path, print).digest == first.digest
    second = oci.example_image("2", tmp_path, print)
    assert second.digest != first.digest
    assert second.layers[0] == first.layers[0]  # the base is shared: pushed once
    broken = oci.example_image("1", tmp_path, print, broken=True)
    assert broken.digest not in (first.digest, second.digest)


def test_podman_pulls_it_by_digest_and_runs_it_as_the_servers_do(tmp_path: Path) -> None:
    """Pushed to a real registry, pulled by digest and run by rootful podman with the slots'
    restrictions (read-only, no capabilities, another user than the image's, PORT set): the
    example answers, as its version."""
    work = Path(tempfile.mkdtemp(prefix="wsoci-", dir="/tmp"))  # overlay wants a short path
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", **containers_conf(work)}
    why_not = podman_works(env)
    if why_not:
        pytest.skip(f"rootful podman cannot run here ({why_not}); the VM tier "
                    "(tests/vm/test_docker.py) runs the image in a real guest")
    name, port = "wsoci-app", free_port()

    def podman(*args: str) -> str:
        proc = subprocess.run(["podman", *args], env=env, capture_output=True, text=True,
                              timeout=300, check=False)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return proc.stdout + proc.stderr  # `logs`: the container's stdout, then its stderr

    try:
        with local_registry(work / "registry") as registry:
            digest = oci.push(registry.url, "docker-app", "3",
                              oci.example_image("3", tmp_path, print))
            ref = f"{registry.host}/docker-app@{digest}"
            podman("pull", "--quiet", "--tls-verify=false", ref)
        podman("run", "--detach", "--name", name, "--pull=never", "--env", "PORT=8000",
               "--user", "65534:65534", "--cap-drop=all", "--security-opt=no-new-privileges",
               "--read-only", "--tmpfs", "/tmp", "--publish", f"127.0.0.1:{port}:8000", ref)
        url = f"http://127.0.0.1:{port}"
        assert wait_until(lambda: _answers(f"{url}/healthz"), timeout=60, interval=0.3), \
            podman("logs", name)
        status, headers, body = get(f"{url}/")
        assert (status, body, headers.get("X-Release")) == (
            200, b"Hello from a container, version 3\n", "3")
        logs = podman("logs", name)
        assert "Listening at: http://0.0.0.0:8000" in logs and "Permission denied" not in logs
    finally:
        subprocess.run(["podman", "rm", "--force", "--time", "5", name], env=env,
                       capture_output=True, timeout=120, check=False)
        subprocess.run(["podman", "system", "reset", "--force"], env=env, capture_output=True,
                       timeout=300, check=False)
        shutil.rmtree(work, ignore_errors=True)


def test_the_broken_variant_fails_its_health_check(tmp_path: Path) -> None:
    """What the VM tier's rollback gets: an app that answers 500 to /healthz."""
    image = oci.example_image("1", tmp_path, print, broken=True)
    with tarfile.open(fileobj=io.BytesIO(image.layers[1].blob.data)) as tar:
        app = tar.extractfile("app/app.py")
        assert app is not None and app.read() == oci.BROKEN_APP
    namespace: dict[str, Callable[..., list[bytes]]] = {}
    exec(compile(oci.BROKEN_APP, "app.py", "exec"), namespace)
    seen: list[str] = []
    body = namespace["application"]({"PATH_INFO": "/healthz"}, lambda s, h: seen.append(s))
    assert seen == ["500 Internal Server Error"] and body == [b"broken release\n"]


def _answers(url: str) -> bool:
    try:
        return get(url, timeout=2)[0] == 200
    except OSError:
        return False
