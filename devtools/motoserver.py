"""A moto server on 127.0.0.1 for tests and demos that talk to "AWS" over real HTTP.

`moto_server()` runs `python -m moto.server` as a subprocess rather than moto's in-process
`ThreadedMotoServer`: a separate process keeps moto's global state and its Flask/Werkzeug
imports out of the caller, and ending it frees everything at once.

    with moto_server({"MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION": "1"}) as url:
        ec2 = boto3.client("ec2", endpoint_url=url, region_name="us-east-1",
                           aws_access_key_id="testing", aws_secret_access_key="testing")

Clients need fake credentials (any non-empty strings) and either `endpoint_url=url` or
`AWS_ENDPOINT_URL=url` in their environment. State lives as long as the server; POST
`{url}/moto-api/reset` to clear it between tests that must not see each other's resources.
`server_module="devtools.moto_plugins"` runs moto with this project's additions (per-instance
EC2 console output).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

HOST = "127.0.0.1"
_ROOT = Path(__file__).resolve().parents[1]  # so the server can import devtools.*

# Talk to the server directly even when the environment sets an HTTP proxy.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port(host: str = HOST) -> int:
    """A port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _answers(url: str) -> bool:
    try:
        with _DIRECT.open(f"{url}/moto-api/", timeout=1):
            return True
    except urllib.error.HTTPError:  # any HTTP status means the server is up
        return True
    except OSError:
        return False


@contextmanager
def moto_server(env: Mapping[str, str] | None = None, *, port: int | None = None,
                ready_timeout: float = 20.0, stop_timeout: float = 5.0,
                server_module: str = "moto.server") -> Iterator[str]:
    """Start moto on 127.0.0.1, yield its base URL once it answers, and always stop it.

    `env` is added to this process's environment for the server (moto reads settings such as
    MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION from it). Raises RuntimeError, with the tail of
    the server's log, if it exits early or does not answer within `ready_timeout` seconds.
    `server_module` is the module run with `python -m`: moto.server or a wrapper of it.
    """
    port = port or free_port()
    url = f"http://{HOST}:{port}"
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", server_module, "-H", HOST, "-p", str(port)],
            env={**os.environ, **(env or {}),
                 "PYTHONPATH": os.pathsep.join(filter(None, (str(_ROOT),
                                                             os.environ.get("PYTHONPATH"))))},
            stdin=subprocess.DEVNULL,
            stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + ready_timeout
            while not _answers(url):
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    tail = log.read().decode(errors="replace")[-2000:]
                    state = (f"exited with {proc.returncode}" if proc.poll() is not None
                             else f"did not answer within {ready_timeout:g}s")
                    raise RuntimeError(f"moto server on {url} {state}:\n{tail}")
                time.sleep(0.1)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=stop_timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=stop_timeout)
