"""systemd's part in a release, on loopback: a stand-in for the socket and service units.

    python -m tests.release.fakesystemd --root ROOT --unit webstack-hello --control SOCKET

Holds the `.socket` unit's listening socket (ListenStream=, backlog SOMAXCONN as systemd) for
its whole life, and runs the `.service` unit's ExecStart on it the way systemd does: the socket
as fd 3 with LISTEN_FDS=1 and LISTEN_PID, the EnvironmentFile(s), WorkingDirectory resolved at
each start, Runtime/Logs/StateDirectory created; `start` returns once the process sent READY=1
on NOTIFY_SOCKET (Type=notify); `stop` sends KillSignal= (SIGTERM unless the unit says: uWSGI's
SIGHUP) to the main process only and SIGKILL to what is left after TimeoutStopSec
(KillMode=mixed); `restart` is stop then start. The stub `systemctl` (see tests/release/stack.py)
sends its argv over CONTROL and exits with the answer. This is what makes a release's restart
lose no request: the socket outlives every gunicorn or uWSGI.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import signal
import socket
import subprocess
import time
from pathlib import Path

from devtools.localrun import read_env_file, unit_value

READY_TIMEOUT = 60.0


class Service:
    def __init__(self, root: Path, unit: str):
        self.root = root
        self.unit_dir = root / "etc/systemd/system"
        self.unit = unit
        self.proc: subprocess.Popen[bytes] | None = None
        self.kill_signal = signal.SIGTERM  # the running unit's KillSignal=
        self.secrets_active = False  # the secrets oneshot ran (RemainAfterExit=yes)
        socket_unit = (self.unit_dir / f"{unit}.socket").read_text()
        path = unit_value(socket_unit, "ListenStream")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).unlink(missing_ok=True)
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        self.listener.listen(socket.SOMAXCONN)
        self.notify_path = str(root / "notify.sock")
        Path(self.notify_path).unlink(missing_ok=True)
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(self.notify_path)
        self.log = open(root / "service.log", "ab")  # noqa: SIM115 (lives as long as we do)

    def active(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _values(self, text: str, key: str) -> list[str]:
        return [line.split("=", 1)[1].strip() for line in text.splitlines()
                if line.startswith(f"{key}=")]

    def start(self) -> tuple[int, str]:
        if self.active():
            return 0, ""
        text = (self.unit_dir / f"{self.unit}.service").read_text()
        argv = shlex.split(unit_value(text, "ExecStart"))
        self.kill_signal = signal.Signals[(self._values(text, "KillSignal") or ["SIGTERM"])[-1]]
        env = {"PATH": "/usr/bin:/bin", "LISTEN_FDS": "1", "NOTIFY_SOCKET": self.notify_path}
        for path in self._values(text, "EnvironmentFile"):
            if Path(path).exists():
                env.update(read_env_file(path))
        for key, base in (("RuntimeDirectory", "run"), ("LogsDirectory", "var/log"),
                          ("StateDirectory", "var/lib")):
            for name in self._values(text, key):
                (self.root / base / name).mkdir(parents=True, exist_ok=True)
        cwd = os.path.realpath(unit_value(text, "WorkingDirectory"))
        fd = self.listener.fileno()
        self.notify.setblocking(False)
        while True:  # forget what an earlier process said
            try:
                self.notify.recv(4096)
            except BlockingIOError:
                break
        self.proc = subprocess.Popen(
            ["/bin/sh", "-c", 'LISTEN_PID=$$ exec "$0" "$@"', *argv], env=env, cwd=cwd,
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True, pass_fds=(3,),
            preexec_fn=lambda: os.dup2(fd, 3))  # single-threaded: safe before exec
        deadline = time.monotonic() + READY_TIMEOUT
        self.notify.settimeout(0.2)
        while time.monotonic() < deadline:
            try:
                if b"READY=1" in self.notify.recv(4096):
                    return 0, ""
            except TimeoutError:
                pass
            if self.proc.poll() is not None:
                return 1, f"{self.unit}.service exited with {self.proc.returncode} at start"
        self.stop()
        return 1, f"{self.unit}.service sent no READY=1 within {READY_TIMEOUT:.0f} s"

    def stop(self, timeout: float = 35.0) -> tuple[int, str]:
        proc = self.proc
        if proc is None:
            return 0, ""
        if proc.poll() is None:
            proc.send_signal(self.kill_signal)  # KillMode=mixed: the main process only
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # whatever is left in the "cgroup"
        proc.wait(10)
        self.proc = None
        return 0, ""


def serve(service: Service, control: str) -> None:
    Path(control).unlink(missing_ok=True)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(control)
        server.listen(16)
        while True:
            conn, _ = server.accept()
            with conn:
                data = b""
                while not data.endswith(b"\n"):
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                args = data.decode().rstrip("\n").split("\0")
                rc, message = handle(service, args)
                conn.sendall(f"{rc}\n{message}".encode())
                if args[:1] == ["exit"]:
                    return


def fetch_secrets(service: Service) -> tuple[int, str]:
    """The secrets oneshot's work: its own ExecStart (ssm-get) when the stack's SSM and
    Secrets Manager are a local moto, else the test's stand-in for SSM (the file
    `ssm-secrets.env` under the root) written to the app's secrets.env, 0600. Before it runs,
    nothing of the release has the secrets. Once it succeeded, a start is a no-op, as
    systemd's for a oneshot that remains active."""
    if service.secrets_active:
        return 0, ""
    app = service.unit.removeprefix("webstack-")
    source = service.root / "ssm-secrets.env"
    target = service.root / "run" / "webstack" / app / "secrets.env"
    target.parent.mkdir(parents=True, exist_ok=True)
    if not source.exists():
        unit = (service.unit_dir / f"{service.unit}-secrets.service").read_text()
        proc = subprocess.run(shlex.split(unit_value(unit, "ExecStart")), capture_output=True,
                              text=True, timeout=120, check=False, env={"PATH": "/usr/bin:/bin"},
                              umask=0o077)
        service.secrets_active = proc.returncode == 0
        return proc.returncode, proc.stderr.strip()
    target.write_bytes(source.read_bytes())
    target.chmod(0o600)
    service.secrets_active = True
    return 0, ""


def handle(service: Service, args: list[str]) -> tuple[int, str]:
    words = [a for a in args if not a.startswith("-")]
    verb, units = (words[0], words[1:]) if words else ("", [])
    services = [u for u in units if u.endswith(".service")]
    ours = f"{service.unit}.service"
    if verb == "exit":
        service.stop()
        return 0, ""
    if verb in ("daemon-reload", "enable") or not services:
        return 0, ""  # the socket is held from the start; other units are not ours
    if services == [f"{service.unit}-secrets.service"] and verb == "start":
        return fetch_secrets(service)
    if services != [ours]:
        return (0, "") if verb in ("start", "is-active") else (5, f"{verb}: not supported")
    if verb == "is-active":
        return (0, "active") if service.active() else (3, "inactive")
    if verb == "start":
        return service.start()
    if verb == "stop":
        return service.stop()
    if verb == "restart":
        service.stop()
        return service.start()
    return 1, f"fakesystemd: {verb} is not supported"


def main() -> None:
    parser = argparse.ArgumentParser(description="systemd's part in a release, on loopback")
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--unit", required=True)
    parser.add_argument("--control", required=True)
    args = parser.parse_args()
    service = Service(args.root, args.unit)
    signal.signal(signal.SIGTERM, lambda *_: (service.stop(5), os._exit(0)))
    serve(service, args.control)


if __name__ == "__main__":
    main()
