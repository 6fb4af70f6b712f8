"""A real container registry on the host's loopback: Debian's docker-registry (distribution's
registry v2, what ECR, GHCR and Docker Hub speak), with its own config and storage directory.

The VM tier's guest pulls from it at 10.0.2.2:<port> (qemu's user network maps that to the
host's 127.0.0.1), so it is plain HTTP there; unit tests resolve tags against it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from devtools.localrun import stop
from devtools.motoserver import HOST, free_port

BINARY = "docker-registry"
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True)
class Registry:
    port: int
    dir: Path
    address: str = HOST

    @property
    def host(self) -> str:
        """host:port as an image reference names it."""
        return f"{self.address}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def log(self) -> Path:
        return self.dir / "registry.log"


def _answers(url: str) -> bool:
    try:
        with _DIRECT.open(f"{url}/v2/", timeout=1):
            return True
    except urllib.error.HTTPError:  # 401 with auth on: up all the same
        return True
    except OSError:
        return False


@contextmanager
def local_registry(root: Path, auth: Mapping[str, object] | None = None,
                   address: str = HOST, ready_timeout: float = 20.0) -> Iterator[Registry]:
    """docker-registry serving `root`/storage on `address`:<free port> until the block ends.

    `auth`: the config's `auth` section (e.g. {"token": {...}}); None: anonymous pull and push.
    `address`: another loopback address (127.0.0.2) stands for a registry not named localhost.
    RuntimeError with the log's tail if it does not come up.
    """
    if shutil.which(BINARY) is None:
        raise RuntimeError(f"{BINARY} is missing: run scripts/setup-system.sh (make system)")
    registry = Registry(free_port(address), root, address)
    root.mkdir(parents=True, exist_ok=True)
    config = {"version": 0.1, "log": {"level": "info", "accesslog": {"disabled": False}},
              "storage": {"filesystem": {"rootdirectory": str(root / "storage")},
                          "delete": {"enabled": True}},
              "http": {"addr": registry.host}}
    if auth:
        config["auth"] = dict(auth)
    (root / "config.yml").write_text(json.dumps(config))  # JSON is YAML
    with registry.log.open("ab") as log:
        proc = subprocess.Popen([BINARY, "serve", str(root / "config.yml")],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + ready_timeout
        while not _answers(registry.url):
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = registry.log.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{BINARY} on {registry.url} did not come up:\n{tail}")
            time.sleep(0.1)
        yield registry
    finally:
        stop(proc)
