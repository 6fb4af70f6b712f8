"""How long a release of new code takes on a running server, in a local VM (TCG here).

    python scripts/bench_release.py [--stack dev] [--runs 3] [--runtime venv|docker]

Boots the stack once, then releases new code `--runs` times the way `pulumi up` ships it (a new
version of the appSource bundle in the local S3, the release pointer moved in the local SSM) and
the server's release script releases it, given the pointer as the rollout gives it: first with
the requirements unchanged (the previous release's venv is reused), then each time with changed
requirements (a new venv).
Prints, for each kind, the median from the pointer change to the new release serving and the
median of each phase the release script reports (fetch, venv, build, pre-start, check, switch).
`--runtime docker` boots the container example instead (examples/docker-app, its image built
offline and pushed to a registry on the host's loopback, devtools/oci.py) and releases a new
digest `--runs` times: the pull of its new layer, the candidate slot, the switch.
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from components.config import stack_file_settings
from devtools import oci
from devtools.registry import local_registry
from devtools.vm import Ports, Vm, VmError, choose_accel, free_ports
from devtools.vm_image import Recipe, ensure_image, host_cas, host_mirror
from devtools.vm_up import Staged, image_settings, stage, up

TARGET = 20.0  # seconds, pointer change → serving, requirements unchanged (TCG)
# Pure-Python wheels on the package index, one per changed-requirements run (a new venv each).
CHANGED = ("six==1.16.0", "six==1.17.0", "idna==3.10", "idna==3.9", "certifi==2025.1.31")
PHASES = re.compile(r"^release: phases: (.*)$", re.M)
STARTED = time.monotonic()


def say(text: str) -> None:
    print(f"[{time.monotonic() - STARTED:6.1f}s] {text}", flush=True)


def release(vm: Vm, staged: Staged, src: Path, n: int,
            requirement: str | None) -> tuple[float, dict[str, float]]:
    """New code (a marker file; with `requirement`, also new requirements), then the release:
    seconds from the pointer change to serving, and the script's own phases."""
    (src / "bench-release.txt").write_text(f"release {n}\n")
    if requirement is not None:
        (src / staged.cfg.app.requirements).write_text(requirement + "\n")
    started = time.monotonic()
    pointer = staged.release_new_code(src)
    what = "new requirements " + requirement if requirement else "same requirements"
    return released(vm, staged, pointer, started, f"release {n} ({what})")


def released(vm: Vm, staged: Staged, pointer: str, started: float,
             what: str) -> tuple[float, dict[str, float]]:
    """The release script given `pointer`, as the rollout runs it (SSM Run Command on EC2):
    seconds since `started` (the pointer change) to serving, and the script's own phases."""
    out = vm.ssh(f"/usr/local/lib/webstack/{staged.cfg.app.name}/release {pointer}",
                 timeout=900).stdout
    took = time.monotonic() - started
    found = PHASES.search(out)
    words = found.group(1).split() if found else []
    phases = {words[i]: float(words[i + 1].rstrip("s")) for i in range(0, len(words) - 1, 2)}
    say(f"{what}: {took:.1f}s; {found.group(1) if found else 'no phases line'}")
    return took, phases


IMAGE = "docker-app"  # the container example's repository in the host's registry


def bench_docker(vm: Vm, ports: Ports, work: Path, runs: int, accel: str,
                 exits: ExitStack) -> list[tuple[float, dict[str, float]]]:
    """The container example booted on version 0, then `runs` new digests released."""
    registry = exits.enter_context(local_registry(work / "registry"))
    digests = [oci.push(registry.url, IMAGE, str(n), oci.example_image(str(n), work, say))
               for n in range(runs + 1)]
    settings = stack_file_settings("docker", oci.EXAMPLE)
    settings.pop("aws:region", None)
    staged = stage(vm, "dev", ports, registry=registry,
                   extra=image_settings(settings, registry, f"{IMAGE}@{digests[0]}"))
    up(vm.dir.name, staged.user_data, "bench-release", ports, say,
       staged.cfg.app.health_path, timeout=1200, accel=accel)
    results = []
    for n, digest in enumerate(digests[1:], 1):
        started = time.monotonic()
        pointer = staged.release_image(IMAGE, digest)
        results.append(released(vm, staged, pointer, started, f"image {n} (a new digest)"))
    return results


def summary(name: str, runs: list[tuple[float, dict[str, float]]]) -> str:
    totals = [t for t, _ in runs]
    keys = sorted({k for _, p in runs for k in p})
    parts = ", ".join(f"{k} {statistics.median(p.get(k, 0.0) for _, p in runs):.1f}s"
                      for k in keys)
    return (f"{name:28} median {statistics.median(totals):5.1f}s over {len(runs)} "
            f"(each: {', '.join(f'{t:.1f}' for t in totals)}); phases: {parts}")


def bench_venv(vm: Vm, ports: Ports, work: Path, stack: str, runs: int,
               accel: str) -> dict[str, list[tuple[float, dict[str, float]]]]:
    """The stack booted, then new code released `runs` times with the same requirements and
    `runs` times with changed ones."""
    staged = stage(vm, stack, ports)
    up(vm.dir.name, staged.user_data, "bench-release", ports, say,
       staged.cfg.app.health_path, timeout=1200, accel=accel)
    src = work / "src"
    shutil.copytree(staged.cfg.app.source, src,
                    ignore=shutil.ignore_patterns("__pycache__", ".venv", ".git"))
    same = [release(vm, staged, src, n, None) for n in range(runs)]
    changed = [release(vm, staged, src, runs + n, CHANGED[n]) for n in range(runs)]
    return {"requirements unchanged": same, "requirements changed": changed}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--stack", default="dev")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--runtime", choices=("venv", "docker"), default="venv")
    args = parser.parse_args(argv)
    if not 1 <= args.runs <= len(CHANGED):
        parser.error(f"--runs: expected 1 to {len(CHANGED)}")
    image = ensure_image(Recipe(host_mirror(), host_cas()), say)
    accel = choose_accel(image, say)
    if accel is None:
        say("qemu boots no guest on this machine: nothing to measure")
        return 2
    vm = Vm.named("bench-release")
    ports = free_ports(18380)
    work = Path(tempfile.mkdtemp(prefix="bench-release-"))
    try:
        with ExitStack() as exits:
            if args.runtime == "docker":
                kinds = {"a new digest": bench_docker(vm, ports, work, args.runs, accel, exits)}
            else:
                kinds = bench_venv(vm, ports, work, args.stack, args.runs, accel)
            vm.stop()  # before the registry, which it may still read from
    except VmError as err:
        say(f"FAILED: {err}")
        return 1
    finally:
        vm.stop()
        shutil.rmtree(work, ignore_errors=True)
    stack = "docker (examples/docker-app)" if args.runtime == "docker" else args.stack
    print(f"accelerator: {accel}; stack {stack}; pointer change → new release serving")
    for kind, runs in kinds.items():
        print(summary(f"{args.runtime}: {kind}", runs))
    median = statistics.median(t for t, _ in next(iter(kinds.values())))
    print(f"target ≤ {TARGET:.0f}s for new code (the same requirements, or a new digest): "
          f"{'met' if median <= TARGET else 'MISSED'} ({median:.1f}s)")
    return 0

if __name__ == "__main__":
    sys.exit(main())
