"""How long a release of new code takes on a running server, in a local VM (TCG here).

    python scripts/bench_release.py [--stack dev] [--runs 3]

Boots the stack once, then releases new code `--runs` times the way `pulumi up` ships it (a new
version of the appSource bundle in the local S3, the release pointer moved in the local SSM) and
the server's release script releases it, given the pointer as the rollout gives it: first with
the requirements unchanged (the previous release's venv is reused), then each time with changed
requirements (a new venv).
Prints, for each kind, the median from the pointer change to the new release serving and the
median of each phase the release script reports (fetch, venv, build, pre-start, check, switch).
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devtools.vm import Vm, VmError, choose_accel, free_ports
from devtools.vm_image import Recipe, ensure_image, host_cas, host_mirror
from devtools.vm_up import Staged, stage, up

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
    # as the rollout runs it (SSM Run Command on EC2): the release script given the pointer
    out = vm.ssh(f"/usr/local/lib/webstack/{staged.cfg.app.name}/release {pointer}",
                 timeout=900).stdout
    took = time.monotonic() - started
    found = PHASES.search(out)
    words = found.group(1).split() if found else []
    phases = {words[i]: float(words[i + 1].rstrip("s")) for i in range(0, len(words) - 1, 2)}
    say(f"release {n} ({'new requirements ' + requirement if requirement else 'same requirements'})"
        f": {took:.1f}s; {found.group(1) if found else 'no phases line'}")
    return took, phases


def summary(name: str, runs: list[tuple[float, dict[str, float]]]) -> str:
    totals = [t for t, _ in runs]
    keys = sorted({k for _, p in runs for k in p})
    parts = ", ".join(f"{k} {statistics.median(p.get(k, 0.0) for _, p in runs):.1f}s"
                      for k in keys)
    return (f"{name:28} median {statistics.median(totals):5.1f}s over {len(runs)} "
            f"(each: {', '.join(f'{t:.1f}' for t in totals)}); phases: {parts}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--stack", default="dev")
    parser.add_argument("--runs", type=int, default=3)
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
        staged = stage(vm, args.stack, ports)
        up(vm.dir.name, staged.user_data, "bench-release", ports, say,
           staged.cfg.app.health_path, timeout=1200, accel=accel)
        src = work / "src"
        shutil.copytree(staged.cfg.app.source, src,
                        ignore=shutil.ignore_patterns("__pycache__", ".venv", ".git"))
        same = [release(vm, staged, src, n, None) for n in range(args.runs)]
        changed = [release(vm, staged, src, args.runs + n, CHANGED[n])
                   for n in range(args.runs)]
    except VmError as err:
        say(f"FAILED: {err}")
        return 1
    finally:
        vm.stop()
        shutil.rmtree(work, ignore_errors=True)
    median = statistics.median(t for t, _ in same)
    print(f"accelerator: {accel}; stack {args.stack}; pointer change → new release serving")
    print(summary("requirements unchanged", same))
    print(summary("requirements changed", changed))
    print(f"target ≤ {TARGET:.0f}s with the requirements unchanged: "
          f"{'met' if median <= TARGET else 'MISSED'} ({median:.1f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
