"""appRuntime docker on a real server: the container example's image, built offline
(devtools/oci.py), pushed to Debian's docker-registry on the host's loopback, pulled by podman
in the guest at 10.0.2.2 (as it reaches the local AWS endpoints) by digest, served through
nginx; then a new digest released under load with zero failed requests, a broken one refused
while the old keeps serving, and a kept image released again without a pull.

The tests run in file order and share the VM. Times are reported (first boot to healthy, each
release) for the venv runtime's figures beside them (README, `make bench-release`).
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from components import naming
from components.bootstrap import CONTAINER_SLOTS
from devtools import local_aws, oci
from devtools.registry import Registry, local_registry
from devtools.vm import get
from tests.vm.conftest import Booted as Converged
from tests.vm.conftest import example_vm, load, say

pytestmark = pytest.mark.vm

NAME = "docker-app"  # the repository in the host's registry


@dataclass(frozen=True)
class Images:
    registry: Registry
    digests: dict[str, str]  # "1", "2", "broken" -> sha256:...


@dataclass(frozen=True)
class Booted(Converged):
    images: Images

    @property
    def app(self) -> str:
        return self.staged.cfg.app.name

    def release(self, version: str,
                check: bool = True) -> tuple[float, subprocess.CompletedProcess[str]]:
        """The pointer moved to `version`'s digest, then the release script given it, as the
        rollout runs it; (seconds, the ssh result)."""
        pointer = self.staged.release_image(NAME, self.images.digests[version])
        started = time.monotonic()
        done = self.vm.ssh(f"/usr/local/lib/webstack/{self.app}/release {pointer}",
                           timeout=900, check=check)
        return time.monotonic() - started, done

    def serving(self) -> str:
        status, headers, _ = get(self.vm.url("/"))
        assert status == 200, status
        return headers.get("X-Release", "")


def phases(out: str) -> str:
    """The release script's summary of its phases (fetch, check, switch), for the report."""
    return next((line for line in out.splitlines() if line.startswith("release: phases:")),
                "no phases line")


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Images]:
    work = tmp_path_factory.mktemp("images")
    with local_registry(work / "registry") as registry:
        digests = {}
        for version, broken in (("1", False), ("2", False), ("broken", True)):
            image = oci.example_image(version, work, say, broken=broken)
            digests[version] = oci.push(registry.url, NAME, version, image)
            say(f"image {version}: {digests[version][:19]}..., {image.size / 1e6:.1f} MB "
                "compressed")
        yield Images(registry, digests)


@pytest.fixture(scope="module")
def booted(accel: str, images: Images) -> Iterator[Booted]:
    pinned = f"{NAME}@{images.digests['1']}"
    with example_vm(accel, "docker-app", "docker", image=(images.registry, pinned)) as (
            result, staged):
        say(f"container app healthy {result.converged.seconds_to_healthy:.0f}s after power-on "
            f"({result.accel})")
        yield Booted(result, staged, images)


def test_first_boot_serves_the_pinned_image_through_nginx(booted: Booted) -> None:
    status, headers, body = get(booted.vm.url("/"))
    assert (status, body) == (200, b"Hello from a container, version 1\n")
    assert headers.get("Server") == "nginx" and headers.get("X-Release") == "1"
    pointer = local_aws.client(booted.staged.info, "ssm").get_parameter(
        Name=naming.release_ref_parameter(booted.staged.cfg))["Parameter"]["Value"]
    assert pointer == booted.staged.pointer == (
        f"10.0.2.2:{booted.images.registry.port}/{NAME}@{booted.images.digests['1']}")
    # pulled by digest, from the host's registry (its access log shows the guest's pulls)
    assert booted.images.digests["1"] in booted.sh("podman images --digests --format "
                                                   "'{{.Digest}}'")
    log = booted.images.registry.log.read_text()
    assert re.search(rf'"GET /v2/{NAME}/manifests/{booted.images.digests["1"]} ', log), log[-800:]


def test_static_files_come_out_of_the_image_and_nginx_serves_them(booted: Booted) -> None:
    status, headers, body = get(booted.vm.url("/static/app.css"))
    assert status == 200 and body == (oci.EXAMPLE / "static" / "app.css").read_bytes()
    assert "X-Release" not in headers  # nginx's answer, not the app's
    assert headers.get("Content-Type") == "text/css"


def test_the_container_is_unprivileged_and_listens_on_loopback_only(booted: Booted) -> None:
    uids = booted.sh("ps -eo uid=,args= | awk '/[g]unicorn/ {print $1}' | sort -u").split()
    app_uid = booted.sh(f"id -u {booted.app}").strip()
    assert uids == [app_uid], uids  # the app's own user, never root
    listening = booted.sh("ss -Hltn").split("\n")
    slots = [line.split()[3] for line in listening if line.strip()
             and line.split()[3].rsplit(":", 1)[1] in {str(p) for p in CONTAINER_SLOTS}]
    assert slots and all(a.startswith("127.0.0.1:") for a in slots), listening


def test_a_new_digest_is_released_under_load_without_a_failed_request(booted: Booted) -> None:
    with load(booted.vm.url("/")) as results:
        took, done = booted.release("2")
        time.sleep(2)  # and after it
    failed = [r for r in results if r[0] != 200]
    say(f"container release 1 -> 2 in {took:.1f}s under load: {len(results)} requests, "
        f"{len(failed)} failed, {sum(r[1] == '2' for r in results)} answered by 2")
    say(done.stdout.strip().splitlines()[-1])
    say(phases(done.stdout))
    assert failed == [] and len(results) > 20, (failed[:5], done.stdout[-2000:])
    assert results[0][1] == "1" and results[-1][1] == "2"
    assert booted.serving() == "2"


def test_a_broken_digest_is_refused_and_the_old_one_keeps_serving(booted: Booted) -> None:
    with load(booted.vm.url("/healthz")) as health:
        took, broken = booted.release("broken", check=False)
    say(f"broken release refused in {took:.1f}s: exit {broken.returncode}, {len(health)} "
        f"health checks meanwhile, {sum(h[0] != 200 for h in health)} failed")
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert "release: FAILED" in broken.stderr and "health check failed" in broken.stderr
    assert all(h[0] == 200 for h in health) and len(health) > 5
    assert booted.serving() == "2"


def test_a_kept_image_is_released_again_without_a_pull(booted: Booted) -> None:
    log = booted.images.registry.log
    pulls_before = log.read_text().count(f"/v2/{NAME}/blobs/")
    took, done = booted.release("1")
    say(f"container release back to 1 (kept on the server) in {took:.1f}s; {phases(done.stdout)}")
    assert booted.serving() == "1", done.stdout
    assert log.read_text().count(f"/v2/{NAME}/blobs/") == pulls_before  # nothing fetched

