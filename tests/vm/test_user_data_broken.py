"""A user-data that cannot converge (a package that does not exist): `local_vm.py up` must
name the failing cloud-init module, show the log tail and exit non-zero, as soon as cloud-init
reports the failure rather than at its timeout."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from components.config import PROJECT_DIR
from deploy.readiness_check import cloud_init_details, probe_command
from devtools.vm import Vm
from devtools.vm_up import stage
from tests.vm.conftest import say, vm_ports

pytestmark = pytest.mark.vm

BOGUS = "webstack-no-such-package"
BOUND = 600  # seconds: the package step fails within ~2 min of power-on under TCG


def test_broken_user_data_reports_the_failing_module(accel: str, tmp_path: Path) -> None:
    ports = vm_ports()
    user_data = stage(Vm.named("test-broken"), "dev", ports).user_data
    assert "\npackages:\n" in user_data
    broken = tmp_path / "user-data"
    broken.write_text(user_data.replace("\npackages:\n", f"\npackages:\n  - {BOGUS}\n", 1))
    cli = [sys.executable, str(PROJECT_DIR / "scripts" / "local_vm.py")]
    started = time.monotonic()
    try:
        proc = subprocess.run(
            [*cli, "up", "--name", "test-broken", "--user-data", str(broken),
             "--timeout", str(BOUND), "--http-port", str(ports.http),
             "--https-port", str(ports.https), "--ssh-port", str(ports.ssh)],
            capture_output=True, text=True, timeout=BOUND + 120, check=False)
        elapsed = time.monotonic() - started
        # The readiness gate's probe (what SSM runs on EC2) on the same broken server, once
        # cloud-init has finished: the failure it reports names the module.
        vm = Vm.named("test-broken")
        ci = probe_command(vm.ssh_argv("sudo", "sh", "-s"), timeout=60)
        while not ci.finished and time.monotonic() - started < BOUND:
            time.sleep(5)
            ci = probe_command(vm.ssh_argv("sudo", "sh", "-s"), timeout=60)
        report = "\n".join(cloud_init_details(ci))
        say(f"the readiness probe on the broken VM:\n{report}")
    finally:
        subprocess.run([*cli, "down", "--name", "test-broken"], timeout=60, check=True,
                       capture_output=True)
    say(f"broken user-data reported after {elapsed:.0f}s:\n{proc.stdout[-3000:]}")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "cloud-init module(s) failed: package-update-upgrade-install" in proc.stdout
    assert "--- last 25 lines of" in proc.stdout
    assert f"Unable to locate package {BOGUS}" in proc.stdout  # apt's own words, in the tail
    assert elapsed < BOUND
    assert ci.status == "error" and "package-update-upgrade-install" in ci.failed_modules, report
    assert f"Unable to locate package {BOGUS}" in report
