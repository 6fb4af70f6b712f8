#!/usr/bin/python3
"""Which venv a release may share (run by the release script):

    requirements-key FILE [EXTRA...]

prints a key of FILE's bytes, of the files it includes (-r/-c, recursively) and of EXTRA (the
WSGI server's pin, gunicorn's or pyuwsgi's, and the index): releases whose key is the same
install exactly the same packages, so they share one venv. Exits 3, saying why, when FILE
installs files of the release itself (`-e .`, `./pkg`, `file:`) or from a version-control URL
(`git+...`, whose branch may move): those belong to one release, and its venv is its own.
"""

from __future__ import annotations

import hashlib
import re
import shlex
import sys
from pathlib import Path

_INCLUDE = re.compile(r"^(?:-r|--requirement|-c|--constraint)(?:\s*=\s*|\s+|(?=\S))(\S+)")
_LOCAL = re.compile(r"^(?:-e|--editable)\b|^\.{0,2}/|^\.$|(?:^|@\s*)(?:file:|(?:git|hg|svn|bzr)\+)")


class Local(Exception):
    pass


def key(path: Path, extra: list[str]) -> str:
    digest, queue, seen = hashlib.sha256(), [path.resolve()], set()
    while queue:
        f = queue.pop(0)
        if f in seen:
            continue
        seen.add(f)
        data = f.read_bytes()
        digest.update(f"{f.name}\0{len(data)}\0".encode() + data)
        for raw in data.decode("utf-8", "replace").splitlines():
            line = raw.split(" #", 1)[0].strip()
            if line.startswith("#") or not line:
                continue
            if _LOCAL.search(line):
                raise Local(f"{f.name} installs a local path or a VCS URL ({line!r})")
            match = _INCLUDE.match(line)
            if match:
                queue.append((f.parent / shlex.split(match.group(1))[0]).resolve())
    digest.update("\0".join(extra).encode())
    return digest.hexdigest()[:20]


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: requirements-key FILE [EXTRA...]")
    try:
        print(key(Path(sys.argv[1]), sys.argv[2:]))
    except Local as err:
        print(f"its own venv: {err}", file=sys.stderr)
        sys.exit(3)
    except OSError as err:
        sys.exit(f"requirements-key: {err}")
