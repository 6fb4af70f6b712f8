"""Rootful podman for the offline tests (the container release on loopback, the offline image):
its own configuration and store per run, and whether it works on this machine at all."""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
from pathlib import Path


def podman_works(env: dict[str, str]) -> str:
    """'' when rootful podman runs a container here, else why not (its error)."""
    if os.geteuid() != 0:
        return "rootful podman needs root"
    proc = subprocess.run(["podman", "info"], env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    return "" if proc.returncode == 0 else proc.stderr.strip()[-300:]


def containers_conf(work: Path) -> dict[str, str]:
    """podman's configuration for this run: its own store under `work` (the host's stays
    untouched), and ulimits within this process's hard limits (podman's defaults exceed them
    where CAP_SYS_RESOURCE is not in the bounding set, e.g. in a sandbox)."""
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nproc = min(resource.getrlimit(resource.RLIMIT_NPROC)[1], 4096)
    runtime = 'runtime = "runc"\n' if shutil.which("runc") else ""  # crun wants pure cgroup v2
    (work / "containers.conf").write_text(
        f'[containers]\ndefault_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]\n'
        f'[engine]\n{runtime}cgroup_manager = "cgroupfs"\nevents_logger = "file"\n')
    (work / "storage.conf").write_text(
        f'[storage]\ndriver = "overlay"\ngraphroot = "{work}/storage"\nrunroot = "{work}/run"\n')
    return {"CONTAINERS_CONF": str(work / "containers.conf"),
            "CONTAINERS_STORAGE_CONF": str(work / "storage.conf")}
