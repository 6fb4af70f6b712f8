"""The VM tier: the stack's rendered user-data converging a real Debian VM under qemu.

Slow (a TCG boot takes minutes), so one VM serves every check of `test_converge.py`; the
broken-user-data boot comes after it is stopped (never two VMs at once). Skips, saying so, only
where qemu boots no guest at all; missing tools are a set-up failure, not a skip.
"""

from __future__ import annotations

import shutil
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest

from components.bootstrap import RenderedBootstrap
from components.config import PROJECT_DIR, stack_file_settings
from devtools.registry import Registry
from devtools.vm import Ports, Vm, choose_accel, free_ports, get
from devtools.vm_image import Image, Recipe, ensure_image, host_cas, host_mirror
from devtools.vm_up import HostCache, HostDatabase, Staged, UpResult, image_settings, stage, up

TOOLS = ("qemu-system-x86_64", "qemu-img", "debootstrap", "genisoimage", "ssh", "ssh-keygen",
         "docker-registry")


def vm_ports() -> Ports:
    """Three free ports, away from the demo's defaults so a running demo does not collide."""
    return free_ports(18080)


def say(text: str) -> None:
    print(f"[vm {time.strftime('%H:%M:%S')}] {text}", flush=True)


@dataclass(frozen=True)
class Booted:
    result: UpResult
    staged: Staged

    @property
    def rendered(self) -> RenderedBootstrap:
        return self.staged.rendered

    @property
    def vm(self) -> Vm:
        return self.result.vm

    def get(self, path: str, https: bool = True,
            context: ssl.SSLContext | None = None) -> tuple[int, dict[str, str], bytes]:
        return get(self.vm.url(path, https=https), context=context)

    def sh(self, script: str, timeout: float = 120.0) -> str:
        return self.vm.ssh(script, timeout=timeout).stdout



@contextmanager
def load(url: str, clients: int = 2) -> Iterator[list[tuple[int, str]]]:
    """Requests from the host in a loop until the block ends: (status, X-Release) each;
    status 0 is a connection or TLS error."""
    results: list[tuple[int, str]] = []
    stop = threading.Event()

    def client() -> None:
        while not stop.is_set():
            try:
                status, headers, _ = get(url, timeout=30)
                results.append((status, headers.get("X-Release", "A")))
            except (OSError, ssl.SSLError):
                results.append((0, ""))
    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    try:
        time.sleep(2)  # the load runs before the switch
        yield results
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=40)



@pytest.fixture(scope="session")
def vm_image() -> Image:
    missing = [t for t in TOOLS if shutil.which(t) is None]
    assert not missing, f"{missing} not installed: run scripts/setup-system.sh (make system)"
    return ensure_image(Recipe(host_mirror(), host_cas()), say)


@pytest.fixture(scope="session")
def accel(vm_image: Image) -> str:
    found = choose_accel(vm_image, say)
    if found is None:
        pytest.skip("qemu boots no guest on this machine (neither under KVM nor TCG): "
                    "the VM tier cannot run here")
    return found


@contextmanager
def example_vm(accel: str, example: str, stack_file: str,
               extra: dict[str, str] | None = None,
               parameters: dict[str, str] | None = None, database: HostDatabase | None = None,
               cache: HostCache | None = None,
               image: tuple[Registry, str] | None = None) -> Iterator[tuple[UpResult, Staged]]:
    """One VM serving `examples/<example>` from its bundle, with its stack file's settings (the
    VM keeps its own TLS, OS and size) on the dev stack, until the block ends; its database
    and cache, if the stack has them, are servers on the host (see `vm_up.stage`). `image`: a
    container example's image as `pulumi up` would have built it, pushed to the host's
    registry (registry, name@sha256:...), instead of the stack's build of appSource."""
    ports = vm_ports()
    vm = Vm.named(f"test-{example}")
    settings = stack_file_settings(stack_file, PROJECT_DIR / "examples" / example)
    settings.pop("aws:region", None)
    registry = None
    if image is not None:
        registry, pinned = image
        settings = image_settings(settings, registry, pinned)
    staged = stage(vm, "dev", ports, extra={**settings, **(extra or {})}, parameters=parameters,
                   database=database, cache=cache, registry=registry)
    try:
        result = up(vm.dir.name, staged.user_data, f"{example}-vm", ports, say,
                    staged.cfg.app.health_path, timeout=1200, accel=accel)
        yield result, staged
    finally:
        vm.stop()
