"""A stack's server converged in a local qemu VM from its user-data alone, no cloud account.

    python scripts/local_vm.py up [--stack dev]     build/reuse the image, boot, wait until healthy
    python scripts/local_vm.py status|logs|down [--stack dev]
    python scripts/local_vm.py ssh [--stack dev] [-- COMMAND...]

The VM boots a copy-on-write overlay of a cached Debian 12 image, reads the stack's rendered
user-data (sample app, self-signed TLS, the harness's SSH key) from a NoCloud seed, fetches its
artefact and parameters from a local S3/SSM with IMDSv2 credentials (devtools/local_aws.py, on
the host's loopback), and is reached on 127.0.0.1 (8080→80, 8443→443, 2222→22). `down` stops
exactly that VM's qemu and its local AWS.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from components.bootstrap import BootstrapError
from components.config import ConfigError, parse_stack
from devtools.vm import Ports, Vm, VmError
from devtools.vm_up import NoGuest, stage, up

STARTED = time.monotonic()


def say(text: str) -> None:
    print(f"[{time.monotonic() - STARTED:6.1f}s] {text}", flush=True)


def cmd_up(args: argparse.Namespace, vm: Vm) -> int:
    ports = Ports(args.http_port, args.https_port, args.ssh_port)
    if args.user_data:  # a hand-made user-data, served like the stack's (its health path)
        user_data, hostname = args.user_data.read_text(), args.name
        health_path = parse_stack(args.stack).app.health_path
    else:
        staged = stage(vm, args.stack, ports)
        rendered, health_path = staged.rendered, staged.cfg.app.health_path
        user_data, hostname = rendered.user_data, f"{args.stack}-vm"
        say(f"render: {args.stack} user-data {len(user_data)} bytes, sha256 "
            f"{rendered.sha256[:12]}; artefact {len(rendered.artefact)} bytes and the app's "
            f"bundle (release {staged.pointer[:12]}) in the local S3")
    try:
        result = up(vm.dir.name, user_data, hostname, ports, say, health_path,
                    timeout=args.timeout)
    except NoGuest as err:
        say(f"error: {err}")
        return 2
    except VmError as err:
        say(f"FAILED: {err}")
        if vm.running():
            say(f"the VM is left running for inspection: {sys.argv[0]} logs|ssh|down "
                f"--name {vm.dir.name}")
        return 1
    long = vm.ssh("cloud-init status --long", check=False).stdout.strip()
    print(f"\nwebstack local VM '{vm.dir.name}' ({result.accel})\n"
          f"  URL:              {vm.url('/')}  (self-signed certificate)\n"
          f"  plain HTTP:       {vm.url('/', https=False)} (redirects to the URL above)\n"
          f"  time to healthy:  {result.converged.seconds_to_healthy:.0f}s from power-on\n"
          f"  ssh:              {sys.argv[0]} ssh --name {vm.dir.name}\n"
          f"  cloud-init:       " + long.replace("\n", "\n                    "), flush=True)
    return 0


def cmd_status(vm: Vm) -> int:
    if not vm.running():
        print(f"VM {vm.dir.name}: not running")
        return 3
    info = vm.info
    print(f"VM {vm.dir.name}: running (pid {vm.pid()}, {info.accel}, up "
          f"{time.time() - info.started:.0f}s), {vm.url('/')}, user-data sha256 "
          f"{info.user_data_sha256[:12]}")
    proc = vm.ssh("cloud-init status --long", check=False, timeout=30)
    print(proc.stdout.strip() or "cloud-init status: not reachable over SSH yet")
    return 0


def cmd_logs(vm: Vm, lines: int) -> int:
    if vm.running():
        proc = vm.ssh(f"tail -n {lines} /var/log/cloud-init-output.log", check=False)
        if proc.returncode == 0:
            print(proc.stdout, end="")
            return 0
    text = vm.console_text()
    if not text:
        print(f"VM {vm.dir.name}: no console log", file=sys.stderr)
        return 3
    print("\n".join(text.splitlines()[-lines:]))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("command", choices=("up", "down", "status", "logs", "ssh"))
    parser.add_argument("--stack", default="dev", help="reads Pulumi.<stack>.yaml (default dev)")
    parser.add_argument("--name", help="VM name (default: the stack's name)")
    parser.add_argument("--http-port", type=int, default=8080)
    parser.add_argument("--https-port", type=int, default=8443)
    parser.add_argument("--ssh-port", type=int, default=2222)
    parser.add_argument("--timeout", type=float, default=900.0,
                        help="up: seconds from power-on to healthy before giving up")
    parser.add_argument("--user-data", type=Path,
                        help="up: boot this user-data instead of the stack's rendered one")
    parser.add_argument("--lines", type=int, default=60, help="logs: how many lines")
    args, remote = parser.parse_known_args(argv)  # ssh: the rest is the command to run
    if remote and args.command != "ssh":
        parser.error(f"unrecognized arguments: {' '.join(remote)}")
    args.name = args.name or args.stack
    vm = Vm.named(args.name)
    try:
        if args.command == "up":
            return cmd_up(args, vm)
        if args.command == "down":
            print(f"VM {args.name}: {'stopped' if vm.stop() else 'was not running'}")
            return 0
        if args.command == "status":
            return cmd_status(vm)
        if args.command == "logs":
            return cmd_logs(vm, args.lines)
        if not vm.running():
            print(f"VM {args.name}: not running", file=sys.stderr)
            return 3
        argv_ssh = vm.ssh_argv(*(r for r in remote if r != "--"))
        os.execvp(argv_ssh[0], argv_ssh)
    except (ConfigError, BootstrapError, subprocess.SubprocessError, RuntimeError) as err:
        say(f"error: {err}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
