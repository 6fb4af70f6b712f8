"""Helpers of the readiness tier: run the CLI in or out of process, and a stand-in for a
server's cloud-init that the real probe script runs against."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from deploy.cloudinit_status import PROBE_SCRIPT
from deploy.readiness_check import main

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Run:
    code: int
    out: str
    err: str
    seconds: float


def check(*argv: str) -> Run:
    """The CLI's main() in this process (fast: boto3 is imported once)."""
    out, err = io.StringIO(), io.StringIO()
    start = time.monotonic()
    code = main(list(argv), out=out, err=err)
    return Run(code, out.getvalue(), err.getvalue(), time.monotonic() - start)


def check_cli(*argv: str, timeout: float = 60) -> Run:
    """`python -m deploy.readiness_check` as a user or pulumi-command runs it."""
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "deploy.readiness_check", *argv],
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, check=False)
    return Run(proc.returncode, proc.stdout, proc.stderr, time.monotonic() - start)


@dataclass
class FakeServer:
    """A directory standing in for a server's cloud-init: a `cloud-init` executable that prints
    a `status --long` fixture and exits with its code, logs and a run dir; `env` makes the
    probe script see them."""

    root: Path

    def __post_init__(self) -> None:
        (self.root / "bin").mkdir(parents=True)
        (self.root / "run").mkdir()
        exe = self.root / "bin" / "cloud-init"
        exe.write_text('#!/bin/sh\ncat "$FAKE_STATUS"\nexit "$(cat "$FAKE_EXIT")"\n')
        exe.chmod(0o755)

    def boot(self, status_fixture: str, exit_code: int, *, stage: str | None = None,
             log: str = "", output: str = "") -> None:
        (self.root / "status.txt").write_text((DATA / status_fixture).read_text())
        (self.root / "exit").write_text(str(exit_code))
        # cloud-init writes status.json with atomic_helper.write_json: indent=1, sorted keys
        (self.root / "run" / "status.json").write_text(
            json.dumps({"v1": {"datasource": "DataSourceEc2Local", "stage": stage}},
                       indent=1, sort_keys=True))
        (self.root / "cloud-init.log").write_text(log)
        (self.root / "cloud-init-output.log").write_text(output)

    @property
    def env(self) -> dict[str, str]:
        return {"PATH": f"{self.root / 'bin'}:{os.environ['PATH']}",
                "FAKE_STATUS": str(self.root / "status.txt"),
                "FAKE_EXIT": str(self.root / "exit"),
                "CLOUD_INIT_LOG": str(self.root / "cloud-init.log"),
                "CLOUD_INIT_OUTPUT_LOG": str(self.root / "cloud-init-output.log"),
                "CLOUD_INIT_RUN_DIR": str(self.root / "run")}

    def probe_stdout(self) -> str:
        """What the probe script prints on this server (run by the real sh)."""
        return subprocess.run(["sh", "-s"], input=PROBE_SCRIPT, capture_output=True, text=True,
                              env={**os.environ, **self.env}, timeout=10, check=True).stdout
