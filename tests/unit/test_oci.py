"""The offline image (devtools/oci.py) is the container example's: its code and static files,
a non-root user, gunicorn binding $PORT as the example's Dockerfile has it; the same recipe
gives the same layers and digest on this machine; its root really runs the app."""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from devtools import oci
from devtools.localrun import wait_until
from devtools.motoserver import free_port
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


def test_its_root_runs_the_app_as_the_unprivileged_user(tmp_path: Path) -> None:
    """The layers unpacked and their config's command run as a container engine runs it: in
    that root, its WorkingDir, its User, its Env with PORT. chroot, since no engine can start a
    container in this sandbox (it refuses crun's setrlimit); the VM tier runs it under podman."""
    image = oci.example_image("3", tmp_path, print)
    root = tmp_path / "root"
    for layer in image.layers:
        with tarfile.open(fileobj=io.BytesIO(layer.blob.data)) as tar:
            tar.extractall(root, filter="fully_trusted")
    run = json.loads(image.config.data)["config"]
    uid, gid = (int(n) for n in run["User"].split(":"))
    port = free_port()

    def enter() -> None:  # in the child, before exec: the engine's part
        os.chroot(root)
        os.chdir(run["WorkingDir"])
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)

    env = dict(e.split("=", 1) for e in run["Env"]) | {"PORT": str(port)}
    proc = subprocess.Popen(run["Cmd"], env=env, preexec_fn=enter, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        assert wait_until(lambda: _answers(f"{url}/healthz"), timeout=30, interval=0.2)
        status, headers, body = get(f"{url}/")
        assert (status, body, headers.get("X-Release")) == (
            200, b"Hello from a container, version 3\n", "3")
    finally:
        proc.terminate()
        out = proc.communicate(timeout=30)[0].decode(errors="replace")
    assert f"Listening at: http://0.0.0.0:{port}" in out, out[-2000:]
    assert "Permission denied" not in out, out[-2000:]  # read-only to its user, and fine


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
