"""A local qemu VM that converges from our rendered user-data alone (NoCloud seed), and the
means to watch and inspect it: console milestones, SSH, health polls.

Each VM has a state directory `<cache>/vms/<name>/` holding its copy-on-write overlay of the
base image, its seed ISO, its serial console log, qemu's pidfile and `vm.json` (ports,
accelerator, power-on time, user-data hash). qemu daemonizes, so a VM outlives the command
that started it; `stop()` ends exactly the process of that pidfile, after checking it is this
VM's qemu.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from devtools import local_aws
from devtools.localrun import wait_until
from devtools.vm_image import Image, cache_dir

QEMU = "qemu-system-x86_64"
GUEST_USER = "debian"  # the Debian image's cloud-init default user (NOPASSWD sudo)
KERNEL_ARGS = "root=LABEL=root rw console=ttyS0 loglevel=6"  # 6: "Linux version" (NOTICE)
# The kernel announces it is done with its own start-up and runs the initramfs.
_PROBE_MARKER = re.compile(rb"Run /init as init process")


class VmError(RuntimeError):
    """The VM cannot be started, or did not converge."""


def _machine(accel: str) -> list[str]:
    """qemu's machine options, the same for the probe and the VM."""
    cpu = "host" if accel == "kvm" else "max"
    return [QEMU, "-accel", accel, "-cpu", cpu, "-nodefaults", "-display", "none",
            "-monitor", "none"]


def guest_runs(accel: str, image: Image, timeout: float) -> bool:
    """Whether the image's kernel gets to its init under `accel` within `timeout`: /dev/kvm
    may exist and still run no guest (or one so slow it never boots), so only a boot counts."""
    with tempfile.TemporaryDirectory(prefix="ws-probe-") as tmp:
        out = Path(tmp) / "serial.log"
        with subprocess.Popen(
                [*_machine(accel), "-m", "256", "-no-reboot",
                 "-kernel", str(image.kernel), "-initrd", str(image.initrd),
                 "-append", "console=ttyS0 loglevel=7 panic=-1", "-serial", f"file:{out}"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as proc:
            try:
                return wait_until(lambda: out.exists() and bool(
                    _PROBE_MARKER.search(out.read_bytes())), timeout, interval=0.2)
            finally:
                proc.kill()


def choose_accel(image: Image, say: Callable[[str], None]) -> str | None:
    """kvm where a guest really boots under it, else tcg with a notice; None: no guest at all.

    The answer is kept for the host's current boot (keyed by its boot id and the image): the
    probe costs a failed KVM boot (10 s) on machines where /dev/kvm runs no guest."""
    record = cache_dir() / "accel.json"
    key = {"boot_id": Path("/proc/sys/kernel/random/boot_id").read_text().strip(),
           "image": str(image.dir), "kvm_device": os.access("/dev/kvm", os.R_OK | os.W_OK)}
    with contextlib.suppress(OSError, ValueError, KeyError):
        saved = json.loads(record.read_text())
        if saved["key"] == key and saved["accel"] in ("kvm", "tcg"):
            accel = saved["accel"]
            if accel == "tcg":
                say("accelerator: no guest boots under KVM here (probed earlier this host boot), "
                    "using TCG (software emulation)")
            return accel
    if key["kvm_device"] and guest_runs("kvm", image, timeout=10):
        accel: str | None = "kvm"
    elif guest_runs("tcg", image, timeout=90):
        say("accelerator: no guest boots under KVM here, using TCG (software emulation)")
        accel = "tcg"
    else:
        return None  # not kept: a machine that runs no guest at all is worth asking again
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps({"key": key, "accel": accel}) + "\n")
    return accel


def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def ensure_key() -> Path:
    """The harness's SSH key (ed25519, made once): the VM's admin user trusts it."""
    key = cache_dir() / "ssh" / "id_ed25519"
    if not key.exists():
        key.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "webstack-local-vm",
                        "-f", str(key)], check=True, timeout=30)
    return key


@dataclass(frozen=True)
class Ports:
    http: int = 8080
    https: int = 8443
    ssh: int = 2222


def free_ports(first: int) -> Ports:
    """The first three free 127.0.0.1 ports from `first` on (within 120)."""
    return Ports(*[p for p in range(first, first + 120) if port_free(p)][:3])


@dataclass(frozen=True)
class VmInfo:
    name: str
    image: str
    accel: str
    ports: Ports
    started: float  # time.time() of power-on
    user_data_sha256: str


@dataclass(frozen=True)
class Vm:
    """One VM's state directory and what can be done with it."""

    dir: Path

    @staticmethod
    def named(name: str) -> Vm:
        return Vm(cache_dir() / "vms" / name)

    overlay = property(lambda self: self.dir / "overlay.qcow2")
    seed = property(lambda self: self.dir / "seed.iso")
    console = property(lambda self: self.dir / "console.log")
    pidfile = property(lambda self: self.dir / "qemu.pid")
    info_file = property(lambda self: self.dir / "vm.json")
    aws_state = property(lambda self: self.dir / "aws")  # its local AWS (devtools.local_aws)

    @property
    def info(self) -> VmInfo:
        raw = json.loads(self.info_file.read_text())
        return VmInfo(**{**raw, "ports": Ports(**raw["ports"])})

    def pid(self) -> int | None:
        """qemu's PID if this VM's qemu runs (checked by its command line, not just the PID)."""
        try:
            pid = int(self.pidfile.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            return None
        return pid if str(self.overlay).encode() in b" ".join(cmdline) else None

    def running(self) -> bool:
        return self.pid() is not None

    def console_text(self) -> str:
        return self.console.read_text(errors="replace") if self.console.exists() else ""

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self, image: Image, user_data: str, accel: str, ports: Ports,
              hostname: str, memory_mib: int = 1024, cpus: int = 2) -> VmInfo:
        """A fresh overlay and seed, then power on (qemu daemonizes; returns at once)."""
        if self.running():
            raise VmError(f"VM {self.dir.name} is already running: `down` it first")
        taken = [f"127.0.0.1:{p}" for p in (ports.http, ports.https, ports.ssh) if not port_free(p)]
        if taken:
            raise VmError(f"port(s) taken: {', '.join(taken)}; pick others with --http-port, "
                          "--https-port, --ssh-port")
        self.remove_files()
        self.dir.mkdir(parents=True, exist_ok=True)
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2",
                        "-b", str(image.disk), str(self.overlay)], check=True, timeout=60)
        write_seed(self.seed, user_data, hostname)
        fwd = ",".join(f"hostfwd=tcp:127.0.0.1:{host}-:{guest}" for host, guest in
                       ((ports.http, 80), (ports.https, 443), (ports.ssh, 22)))
        argv = [*_machine(accel), "-name", f"webstack-{self.dir.name}",
                "-smp", str(cpus), "-m", str(memory_mib), "-kernel", str(image.kernel),
                "-initrd", str(image.initrd), "-append", KERNEL_ARGS,
                "-drive", f"file={self.overlay},format=qcow2,if=virtio,cache=unsafe",
                "-drive", f"file={self.seed},format=raw,if=virtio,readonly=on",
                "-netdev", f"user,id=net0,{fwd}", "-device", "virtio-net-pci,netdev=net0",
                "-device", "virtio-rng-pci",
                "-serial", f"file:{self.console}", "-daemonize", "-pidfile", str(self.pidfile)]
        info = VmInfo(name=self.dir.name, image=str(image.dir), accel=accel, ports=ports,
                      started=time.time(),
                      user_data_sha256=hashlib.sha256(user_data.encode()).hexdigest())
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
        if proc.returncode != 0:
            raise VmError(f"qemu did not start: {proc.stderr.strip()}")
        self.info_file.write_text(json.dumps(asdict(info), indent=2) + "\n")
        return info

    def stop(self, timeout: float = 20.0) -> bool:
        """End this VM's qemu (by its PID only) and its local AWS, and remove its overlay;
        whether a qemu ran."""
        local_aws.stop(self.aws_state)
        pid = self.pid()
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
            wait_until(lambda: self.pid() is None, timeout, interval=0.2)
            if self.pid() is not None:
                os.kill(pid, signal.SIGKILL)
        self.remove_files(keep_logs=True)
        return pid is not None

    def remove_files(self, keep_logs: bool = False) -> None:
        """The overlay and seed (and unless asked to keep them, the console log and info)."""
        kept = (self.console, self.info_file) if keep_logs else ()
        for path in (self.overlay, self.seed, self.pidfile, self.console, self.info_file):
            if path not in kept:
                path.unlink(missing_ok=True)

    # -- inside the guest ---------------------------------------------------------------------

    def ssh_argv(self, *command: str) -> list[str]:
        return ["ssh", "-q", "-i", str(ensure_key()), "-p", str(self.info.ports.ssh),
                "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
                "-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=5",
                "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3",
                f"{GUEST_USER}@127.0.0.1", *command]

    def ssh(self, script: str, timeout: float = 60.0,
            check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a shell script as root in the guest."""
        proc = subprocess.run(self.ssh_argv("sudo", "bash", "-s"), input=script, text=True,
                              capture_output=True, timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise VmError(f"in the VM, exit {proc.returncode}: {script.strip()[:200]}\n"
                          f"{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
        return proc

    def ssh_ready(self) -> bool:
        try:
            return self.ssh("true", timeout=15, check=False).returncode == 0
        except subprocess.TimeoutExpired:
            return False

    def cloud_init_status(self, wait: float = 0) -> dict[str, object]:
        """`cloud-init status --format json` (waiting up to `wait` s for it to finish)."""
        cmd = "cloud-init status --format json"
        if wait:
            cmd = f"timeout {int(wait)} cloud-init status --wait >/dev/null; {cmd}"
        out = self.ssh(cmd, timeout=wait + 30, check=False).stdout
        return json.loads(out)

    def url(self, path: str = "/", https: bool = True) -> str:
        ports = self.info.ports
        return (f"https://127.0.0.1:{ports.https}{path}" if https
                else f"http://127.0.0.1:{ports.http}{path}")


def write_seed(path: Path, user_data: str, hostname: str) -> None:
    """A NoCloud seed: an ISO labelled `cidata` with user-data and meta-data."""
    instance = hashlib.sha256(f"{user_data}{time.time()}".encode()).hexdigest()[:12]
    with tempfile.TemporaryDirectory(prefix="ws-seed-") as tmp:
        (Path(tmp) / "user-data").write_text(user_data)
        (Path(tmp) / "meta-data").write_text(
            f"instance-id: webstack-{instance}\nlocal-hostname: {hostname}\n")
        subprocess.run(["genisoimage", "-quiet", "-output", str(path), "-volid", "cidata",
                        "-joliet", "-rock", "user-data", "meta-data"],
                       cwd=tmp, check=True, timeout=60)


# ---------------------------------------------------------------------------------------------
# Watching a boot

# What the serial console says as cloud-init moves on (its stage banners go to the console).
STAGES = (
    ("kernel", re.compile(r"Linux version \S+")),
    ("cloud-init init-local", re.compile(r"running 'init-local'")),
    ("cloud-init init (network up)", re.compile(r"running 'init' ")),
    ("cloud-init modules:config", re.compile(r"running 'modules:config'")),
    ("cloud-init modules:final (packages, write_files, our setup)",
     re.compile(r"running 'modules:final'")),
    ("cloud-init finished", re.compile(r"Cloud-init v\. \S+ finished at")),
)
MODULE_FAILED = re.compile(r"Running module (\S+) \(.*\) failed")


def failed_modules(console: str) -> list[str]:
    return list(dict.fromkeys(MODULE_FAILED.findall(console)))


def get(url: str, timeout: float = 10.0,
        context: ssl.SSLContext | None = None) -> tuple[int, dict[str, str], bytes]:
    """GET without following redirects; HTTPS unverified unless a context is given."""
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: object, **kwargs: object) -> None:
            return None

    ctx = context or ssl._create_unverified_context()
    opener = urllib.request.build_opener(NoRedirect, urllib.request.HTTPSHandler(context=ctx))
    try:
        with opener.open(url, timeout=timeout) as resp:
            return resp.status, dict(resp.headers.items()), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers.items()), err.read()


def healthy(url: str) -> bool:
    """200 at the app's health path (nginx proxies it: a 502 while the app is down, never a
    page of its own; a redirect is not followed)."""
    try:
        status, _, _ = get(url, timeout=5)
    except (OSError, ssl.SSLError):
        return False
    return status == 200


@dataclass
class Converged:
    seconds_to_healthy: float
    milestones: dict[str, float]  # stage -> seconds after power-on


def watch(vm: Vm, health_url: str | None, say: Callable[[str], None], timeout: float,
          started: float) -> Converged:
    """Report console milestones until the app answers healthy (no `health_url`: until
    cloud-init finishes); VmError (with the failing cloud-init modules and the log's tail) as
    soon as a module fails, qemu exits, cloud-init finishes without a healthy app, or
    `timeout` passes."""
    seen: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        console = vm.console_text()
        for stage, pattern in STAGES:
            if stage not in seen and pattern.search(console):
                seen[stage] = time.time() - started
                say(f"boot: {stage} at {seen[stage]:.0f}s")
        failed = failed_modules(console)
        if failed:
            raise VmError(failure_report(vm, f"cloud-init module(s) failed: {', '.join(failed)}"))
        finished = seen.get("cloud-init finished")
        if health_url is None and finished is not None:
            return Converged(finished, seen)
        if health_url is not None and healthy(health_url):
            elapsed = time.time() - started
            say(f"healthy: {health_url} answered 200 from the app at {elapsed:.0f}s")
            return Converged(elapsed, seen)
        if not vm.running():
            raise VmError(failure_report(vm, "qemu exited"))
        if finished is not None and time.time() - started > finished + 30:
            raise VmError(failure_report(vm, "cloud-init finished but the app is not healthy"))
        time.sleep(1)
    raise VmError(failure_report(vm, f"not converged within {timeout:.0f}s"))


def failure_report(vm: Vm, reason: str, lines: int = 25) -> str:
    """The reason, then the tail of cloud-init's output log (over SSH) or of the console."""
    tail = ""
    with contextlib.suppress(VmError, subprocess.TimeoutExpired, OSError):
        if vm.running():
            tail = vm.ssh(f"tail -n {lines} /var/log/cloud-init-output.log", timeout=20).stdout
    source = "/var/log/cloud-init-output.log"
    if not tail.strip():
        source = str(vm.console)
        tail = "\n".join(vm.console_text().splitlines()[-lines:])
    return f"{reason}\n--- last {lines} lines of {source} ---\n{tail.rstrip()}"
