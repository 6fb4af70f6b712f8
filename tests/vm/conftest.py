"""The VM tier: the stack's rendered user-data converging a real Debian VM under qemu.

Slow (a TCG boot takes minutes), so one VM serves every check of `test_converge.py`; the
broken-user-data boot comes after it is stopped (never two VMs at once). Skips, saying so, only
where qemu boots no guest at all; missing tools are a set-up failure, not a skip.
"""

from __future__ import annotations

import shutil
import time

import pytest

from devtools.vm import Ports, choose_accel, free_ports
from devtools.vm_image import Image, Recipe, ensure_image, host_cas, host_mirror

TOOLS = ("qemu-system-x86_64", "qemu-img", "debootstrap", "genisoimage", "ssh", "ssh-keygen")


def vm_ports() -> Ports:
    """Three free ports, away from the demo's defaults so a running demo does not collide."""
    return free_ports(18080)


def say(text: str) -> None:
    print(f"[vm {time.strftime('%H:%M:%S')}] {text}", flush=True)


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
