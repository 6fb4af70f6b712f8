"""How long a server takes to converge from its user-data, in a local VM from the cached image.

    python scripts/bench_converge.py [--stack dev] [--runs 3]

Boots the stack's rendered user-data `--runs` times (power-on → first 200 from the app), then
the floor as often: the same VM with the same OS packages and nothing of ours (power-on →
cloud-init done). Prints medians split into kernel boot, cloud-init stages and modules
(`cloud-init analyze dump` in the VM), apt, the uv fetch, venv + requirements and service start
(the setup script's lines on the console, stamped by the guest kernel), the accelerator, and
the targets.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devtools.vm import Ports, Vm, VmError, choose_accel, free_ports
from devtools.vm_image import Recipe, ensure_image, host_cas, host_mirror
from devtools.vm_up import stage, up

TARGETS = {"tcg": 120.0, "kvm": 60.0}  # power-on → first 200, seconds
BEYOND_FLOOR_TARGET = 0.25
STAGES = ("init-local", "init-network", "modules-config", "modules-final")
# The setup script's own progress lines, as the console shows them with the guest's uptime.
SETUP_MARKS = {"setup before uv (tls, nginx, units)": ("webstack-setup: app directory",
                                                      "webstack-setup: uv"),
               "uv (setup's check; fetched during apt)": ("webstack-setup: uv",
                                                          "webstack-setup: release"),
               "venv + requirements (uv)": ("release: virtualenv", "release: checking"),
               "candidate check": ("release: checking", "release: switching"),
               "service start": ("release: switching", "release: serving")}
CONSOLE_LINE = re.compile(r"^\[\s*(\d+\.\d+)\] (.*)$")

STARTED = time.monotonic()


def say(text: str) -> None:
    print(f"[{time.monotonic() - STARTED:6.1f}s] {text}", flush=True)


@dataclass
class Run:
    total: float  # power-on → first 200 (the floor: → cloud-init done), host clock
    phases: dict[str, float] = field(default_factory=dict)


def floor_user_data(user_data: str) -> str:
    """The same OS settings (apt's, the SSH keys) and packages, nothing of ours: what any server
    of this OS would do. It gets every OS-level speed-up ours has, so the floor is no easier."""
    doc = yaml.safe_load(user_data)
    keep = {k: doc[k] for k in ("apt", "package_update", "packages", "ssh_authorized_keys",
                                "ssh_genkeytypes") if k in doc}
    return "#cloud-config\n" + yaml.safe_dump(keep, sort_keys=False)


def console_times(console: str) -> dict[str, float]:
    """Guest uptime of the first console line containing each setup mark."""
    found: dict[str, float] = {}
    for line in console.splitlines():
        m = CONSOLE_LINE.match(line)
        if not m:
            continue
        for start, end in SETUP_MARKS.values():
            for mark in (start, end):
                if mark in m.group(2) and mark not in found:
                    found[mark] = float(m.group(1))
    return found


def analyze(vm: Vm) -> dict[str, float]:
    """Stage and module durations from `cloud-init analyze dump` (start/finish event pairs)."""
    events = json.loads(vm.ssh("cloud-init analyze dump", timeout=60).stdout)
    started: dict[str, float] = {}
    out: dict[str, float] = {}
    for ev in events:
        name = ev["name"]
        if ev["event_type"] == "start":
            started[name] = ev["timestamp"]
        elif name in started:
            out[name] = ev["timestamp"] - started[name]
    return out


def measure(vm: Vm, total: float, milestones: dict[str, float]) -> Run:
    run = Run(total)
    # Firmware, kernel, initrd and early systemd: the host's clock, power-on to cloud-init.
    run.phases["power-on → cloud-init starts"] = milestones.get("cloud-init init-local", 0.0)
    times = analyze(vm)
    for name in STAGES:
        run.phases[f"cloud-init {name}"] = times.get(name, 0.0)
    run.phases["apt (package-update-upgrade-install)"] = times.get(
        "modules-final/config-package-update-upgrade-install", 0.0)
    boot = vm.ssh("systemd-analyze time | head -1", timeout=30, check=False).stdout
    kernel = re.search(r"([\d.]+)s \(kernel\)", boot)
    run.phases["kernel boot"] = float(kernel.group(1)) if kernel else 0.0
    marks = console_times(vm.console_text())
    for phase, (start, end) in SETUP_MARKS.items():
        if start in marks and end in marks:
            run.phases[phase] = marks[end] - marks[start]
    return run


def boot_once(name: str, user_data: str, ports: Ports, accel: str, app: bool,
              stack: str = "") -> Run:
    """One boot; `stack`: stage its artefact and user-data afresh (the app's boots)."""
    try:
        health_path = None
        if stack:
            staged = stage(Vm.named(name), stack, ports)
            user_data, health_path = staged.user_data, staged.cfg.app.health_path
        result = up(name, user_data, f"bench-{name}", ports, say,
                    health_path if app else None, timeout=1200, accel=accel)
        total = (result.converged.seconds_to_healthy if app
                 else result.converged.milestones["cloud-init finished"])
        return measure(result.vm, total, result.converged.milestones)
    finally:
        Vm.named(name).stop()


def median_run(runs: list[Run]) -> Run:
    keys = sorted({k for r in runs for k in r.phases})
    return Run(statistics.median(r.total for r in runs),
               {k: statistics.median(r.phases.get(k, 0.0) for r in runs) for k in keys})


def report(accel: str, apps: list[Run], floors: list[Run]) -> str:
    app, floor = median_run(apps), median_run(floors)
    each = ", ".join(f"{r.total:.0f}" for r in apps)
    each_floor = ", ".join(f"{r.total:.0f}" for r in floors)
    lines = [f"accelerator: {accel}; medians of {len(apps)} boot(s) from the cached image "
             f"(app: {each} s; floor: {each_floor} s)",
             f"{'phase':48} {'app':>8} {'floor':>8}"]
    for key in sorted(set(app.phases) | set(floor.phases)):
        lines.append(f"{key:48} {app.phases.get(key, 0.0):7.1f}s "
                     f"{floor.phases.get(key, 0.0):7.1f}s")
    lines.append(f"{'power-on → first 200 (floor: → cloud-init done)':48} {app.total:7.1f}s "
                 f"{floor.total:7.1f}s")
    beyond = max(0.0, app.total - floor.total) / app.total
    target = TARGETS.get(accel, TARGETS["tcg"])
    lines += [f"target power-on → 200 ≤ {target:.0f}s: {'met' if app.total <= target else 'MISSED'}"
              f" ({app.total:.0f}s)",
              f"target beyond the floor ≤ {BEYOND_FLOOR_TARGET:.0%}: "
              f"{'met' if beyond <= BEYOND_FLOOR_TARGET else 'MISSED'} ({beyond:.0%})"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--stack", default="dev")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    image = ensure_image(Recipe(host_mirror(), host_cas()), say)
    accel = choose_accel(image, say)
    if accel is None:
        say("qemu boots no guest on this machine: nothing to measure")
        return 2
    ports = free_ports(18280)
    try:
        user_data = stage(Vm.named("bench-app"), args.stack, ports).user_data
        Vm.named("bench-app").stop()
        app = [boot_once("bench-app", "", ports, accel, app=True, stack=args.stack)
               for _ in range(args.runs)]
        floor = [boot_once("bench-floor", floor_user_data(user_data), ports, accel, app=False)
                 for _ in range(args.runs)]
    except VmError as err:
        say(f"FAILED: {err}")
        return 1
    print(report(accel, app, floor))
    return 0


if __name__ == "__main__":
    sys.exit(main())
