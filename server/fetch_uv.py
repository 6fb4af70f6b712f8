#!/usr/bin/python3
"""fetch-uv [--index URL --wheel FILE --sha256 HEX --out PATH]: uv from wheel FILE, found on the
index's simple page and refused unless its sha256 is HEX, at PATH (unless already there).
The defaults are this server's: its package index, the pinned uv for its arch."""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import io
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile

from awsclient import settings


class Failed(Exception):
    pass


def fetch(url):
    """(final URL, body); network errors and 5xx are retried, 4xx are not."""
    for attempt in (1, 2, 3):
        try:
            with urllib.request.urlopen(url, timeout=60) as resp:
                return resp.geturl(), resp.read(200 << 20)
        except urllib.error.HTTPError as err:
            if err.code < 500 or attempt == 3:
                raise Failed(f"GET {url} answered {err.code} {err.reason}") from None
        except OSError as err:
            if attempt == 3:
                raise Failed(f"GET {url} failed: {getattr(err, 'reason', err)}") from None
        time.sleep(2 * attempt)
    raise Failed("unreachable")


def version_at(path):
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30).stdout
    except OSError:
        return ""
    return out.split()[1] if out.startswith("uv ") else ""


def main():
    conf = settings()
    p = argparse.ArgumentParser()
    p.add_argument("--index", default=conf["UV_INDEX"])
    p.add_argument("--wheel", default=conf["UV_WHEEL"])
    p.add_argument("--sha256", default=conf["UV_SHA256"])
    p.add_argument("--out", default=conf["UV"])
    a = p.parse_args()
    version = a.wheel.split("-")[1]
    lock = open(a.out + ".lock", "w")  # noqa: SIM115 - one fetch at a time, held until exit
    fcntl.flock(lock, fcntl.LOCK_EX)
    if version_at(a.out) == version:
        return print(f"fetch-uv: uv {version} is already at {a.out}")
    page, html = fetch(urllib.parse.urljoin(a.index.rstrip("/") + "/", "uv/"))
    urls = [urllib.parse.urljoin(page, h).split("#")[0]
            for h in re.findall(r'href="([^"]+)"', html.decode(errors="replace"))]
    url = next((u for u in urls if urllib.parse.unquote(u).endswith("/" + a.wheel)), None)
    if url is None:
        raise Failed(f"{a.wheel} is not on the index {page} ({len(urls)} files listed)")
    _, data = fetch(url)
    digest = hashlib.sha256(data).hexdigest()
    if digest != a.sha256:
        raise Failed(f"{url} has sha256 {digest}, expected {a.sha256}: refused")
    member = f"uv-{version}.data/scripts/uv"
    try:
        program = zipfile.ZipFile(io.BytesIO(data)).read(member)
    except (zipfile.BadZipFile, KeyError) as err:
        raise Failed(f"{a.wheel} has no {member}: {err}") from None
    tmp = f"{a.out}.tmp"
    with open(tmp, "wb") as f:
        f.write(program)
    os.chmod(tmp, 0o755)
    os.replace(tmp, a.out)
    if version_at(a.out) != version:
        raise Failed(f"{a.out} does not run as uv {version}")
    print(f"fetch-uv: uv {version} installed at {a.out} from {url}")


if __name__ == "__main__":
    try:
        main()
    except Failed as err:
        sys.exit(f"fetch-uv: FAILED: {err}")
