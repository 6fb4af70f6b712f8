"""Stand-ins for the privileged commands the server scripts run, so the real scripts can run
unprivileged in tests: each a bash body written as an executable on a PATH of its own."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

# `install -o USER -g GROUP` would chown to the app's user, which does not exist here.
INSTALL_WITHOUT_OWNER = """
args=()
while [ $# -gt 0 ]; do
  case "$1" in -o|-g) shift 2 ;; *) args+=("$1"); shift ;; esac
done
exec /usr/bin/install "${args[@]}"
"""


def write_stubs(directory: Path, stubs: Mapping[str, str]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, body in stubs.items():
        path = directory / name
        path.write_text(f"#!/bin/bash\n{body.strip()}\n")
        path.chmod(0o755)
