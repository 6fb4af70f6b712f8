"""systemctl for a container app's release on loopback (the release script's PATH has it as
`systemctl`): runs the rendered `<unit>-container@.service` the way systemd does, with %i the
slot's port: ExecStartPre, then ExecStart (podman run --detach returns once conmon runs the
container: Type=notify's READY), its output appended to ROOT/slot-<port>.log; stop runs ExecStop
then ExecStopPost. `start <unit>-secrets.service` writes the test's stand-in for SSM
(ROOT/ssm-secrets.env) as secrets.env, 0600; `reload nginx` sends SIGHUP to ROOT/nginx-run's
master. Stateless: an active slot is a file ROOT/active/<unit>."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(os.environ["WEBSTACK_FAKE_ROOT"])
UNITS = ROOT / "etc/systemd/system"


def unit_lines(name: str) -> dict[str, list[str]]:
    template, _, instance = name.removesuffix(".service").partition("@")
    text = (UNITS / f"{template}@.service").read_text()
    out: dict[str, list[str]] = {}
    for line in text.replace("%i", instance).replace("%n", name).splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.startswith("#"):
            out.setdefault(key, []).append(value)
    return out


def run(name: str, key: str) -> int:
    with (ROOT / f"slot-{name}.log").open("ab") as log:
        for command in unit_lines(name).get(key, []):
            rc = subprocess.run(shlex.split(command), stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, timeout=120, check=False).returncode
            if rc:
                return rc
    return 0


def start(name: str) -> int:
    active = ROOT / "active" / name
    if active.exists():
        return 0
    rc = run(name, "ExecStartPre") or run(name, "ExecStart")
    if rc == 0:
        active.parent.mkdir(exist_ok=True)
        active.touch()
    else:
        run(name, "ExecStopPost")
    return rc


def stop(name: str) -> int:
    active = ROOT / "active" / name
    if active.exists():
        run(name, "ExecStop")
        active.unlink()
    run(name, "ExecStopPost")
    return 0


def secrets(app: str) -> int:
    target = ROOT / "run/webstack" / app / "secrets.env"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes((ROOT / "ssm-secrets.env").read_bytes())
    target.chmod(0o600)
    return 0


def main(args: list[str]) -> int:
    words = [a for a in args if not a.startswith("-")]
    verb, units = words[0], words[1:]
    for name in units:
        if name == "nginx" and verb == "reload":
            os.kill(int((ROOT / "nginx-run/nginx.pid").read_text()), signal.SIGHUP)
        elif name.endswith("-secrets.service") and verb == "start":
            secrets(name.removeprefix("webstack-").removesuffix("-secrets.service"))
        elif "-container@" in name:
            if verb == "start" and (rc := start(name)):
                return rc
            if verb == "stop":
                stop(name)
            if verb == "is-active" and not (ROOT / "active" / name).exists():
                return 3
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
