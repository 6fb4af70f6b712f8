"""The app's code as a bundle: a local directory (`appSource`) packed into one tar whose bytes
depend on the files' paths and contents alone, so the same tree gives the same sha256 on any OS,
time zone, umask, file system order or Python. The sha256 is the release's name: the same code
is the same release, new code a new one.

Uncompressed on purpose: a compressor's output is not stable across zlib builds (zlib, zlib-ng,
Apple's), and our own deterministic deflate (`components.deflate`) is too slow for code trees
(~24 s per MB). Left out: `.git`, `.venv`, `__pycache__` and the like always, plus the patterns
of the top-level `.webstackignore` and `.gitignore` (gitignore syntax).
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import stat
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

from components.config import NAMESPACE, AppConfig, ConfigError

ALWAYS_IGNORED = (".git/", ".hg/", ".svn/", ".venv/", "venv/", "__pycache__/", "*.pyc",
                  ".pytest_cache/", ".mypy_cache/", ".ruff_cache/", ".webstack/", ".DS_Store",
                  "node_modules/")
IGNORE_FILES = (".gitignore", ".webstackignore")
MAX_BYTES = 256 * 1024 * 1024  # one S3 PUT takes 5 GB; a code bundle this big is a mistake
FILE_MODE = 0o644  # the same on every OS (Windows has no exec bit): run scripts as `sh x.sh`
_USTAR_NAME, _USTAR_PREFIX = 100, 155


class BundleError(ValueError):
    """The directory cannot be packed (a message naming the path and what to do)."""


@dataclass(frozen=True)
class Bundle:
    data: bytes
    files: tuple[str, ...]  # relative POSIX paths, in the tar's order

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def _pattern(line: str) -> tuple[re.Pattern[str], bool, bool] | None:
    """One gitignore line → (regex over the relative path, negated, directories only)."""
    line = line.rstrip("\n").rstrip("\r")
    if not line.strip() or line.startswith("#"):
        return None
    line = re.sub(r"(?<!\\)\s+$", "", line)
    negated = line.startswith("!")
    line = line[1:] if negated else line
    line = line.removeprefix("\\")
    dir_only = line.endswith("/")
    line = line.rstrip("/")
    anchored = "/" in line
    line = line.lstrip("/")
    out, i = "", 0
    while i < len(line):
        ch = line[i]
        if line.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif line.startswith("/**", i) and i + 3 == len(line):
            out, i = out + "/.*", i + 3
        elif ch == "*":
            out, i = out + "[^/]*", i + 1
        elif ch == "?":
            out, i = out + "[^/]", i + 1
        elif ch == "[" and "]" in line[i + 1:]:
            end = line.index("]", i + 1)
            body = line[i + 1:end].replace("\\", "\\\\")
            out, i = out + "[" + ("^" + body[1:] if body.startswith("!") else body) + "]", end + 1
        elif ch == "\\" and i + 1 < len(line):
            out, i = out + re.escape(line[i + 1]), i + 2
        else:
            out, i = out + re.escape(ch), i + 1
    prefix = "" if anchored else "(?:.*/)?"
    return re.compile(f"^{prefix}{out}$"), negated, dir_only


class Ignore:
    """gitignore semantics for one pattern list: the last matching pattern wins, and nothing
    inside an ignored directory comes back (git's rule)."""

    def __init__(self, lines: list[str]):
        self.rules = [p for p in map(_pattern, lines) if p]

    def ignored(self, rel: str, is_dir: bool) -> bool:
        result = False
        for regex, negated, dir_only in self.rules:
            if dir_only and not is_dir:
                continue
            if regex.match(rel):
                result = not negated
        return result


def ignore_rules(root: Path) -> Ignore:
    lines: list[str] = list(ALWAYS_IGNORED)
    for name in IGNORE_FILES:
        path = root / name
        if path.is_file():
            lines += path.read_text(encoding="utf-8", errors="replace").splitlines()
    # the built-in ones last: a `!.venv/` in a project's file cannot bring a venv in
    lines += list(ALWAYS_IGNORED)
    return Ignore(lines)


def collect(root: Path) -> list[str]:
    """The relative paths a bundle of `root` holds, sorted by their UTF-8 bytes."""
    if not root.is_dir():
        raise BundleError(f"{root} is not a directory")
    rules, found = ignore_rules(root), []
    for top, dirs, names in os.walk(root, followlinks=False):
        here = Path(top)
        base = here.relative_to(root).as_posix()
        prefix = "" if base == "." else f"{base}/"
        kept = []
        for d in dirs:
            rel = prefix + d
            if rules.ignored(rel, True):
                continue
            if (here / d).is_symlink():
                raise BundleError(f"{root / rel} is a symbolic link to a directory: a bundle "
                                  "holds plain files (replace it, or list it in .webstackignore)")
            kept.append(d)
        dirs[:] = kept
        for n in names:
            rel = prefix + n
            if rules.ignored(rel, False):
                continue
            mode = os.stat(here / n).st_mode  # follows a link to a file: its content is packed
            if not stat.S_ISREG(mode):
                raise BundleError(f"{root / rel} is not a regular file: list it in "
                                  ".webstackignore")
            found.append(rel)
    return sorted(found, key=lambda r: r.encode())


def _member(rel: str, size: int) -> tarfile.TarInfo:
    encoded = rel.encode()
    if len(encoded) > _USTAR_NAME + _USTAR_PREFIX + 1:
        raise BundleError(f"{rel}: a path of {len(encoded)} bytes; a bundle's paths fit in 255")
    info = tarfile.TarInfo(rel)
    info.size, info.mode, info.mtime, info.type = size, FILE_MODE, 0, tarfile.REGTYPE
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def pack(root: Path) -> Bundle:
    """`root`'s files (see `collect`) as a ustar: sorted, mode 0644, owner root, mtime 0."""
    files, out, total = collect(root), io.BytesIO(), 0
    if not files:
        raise BundleError(f"{root} has no files to deploy (all of them are ignored?)")
    with tarfile.open(fileobj=out, mode="w:", format=tarfile.USTAR_FORMAT,
                      encoding="utf-8", errors="strict") as tar:
        for rel in files:
            data = (root / rel).read_bytes()
            total += len(data)
            if total > MAX_BYTES:
                raise BundleError(f"{root} holds more than {MAX_BYTES // 2**20} MiB of files to "
                                  f"deploy (reached at {rel}): list build outputs, data and "
                                  "dependencies in .webstackignore")
            try:
                tar.addfile(_member(rel, len(data)), io.BytesIO(data))
            except ValueError as err:  # ustar cannot split the name
                raise BundleError(f"{rel}: {err}") from None
    return Bundle(out.getvalue(), tuple(files))


def of_app(app: AppConfig) -> Bundle:
    """The bundle of appSource, or the problem as a config error (before any resource)."""
    try:
        return pack(Path(app.source))
    except (BundleError, OSError) as err:
        raise ConfigError([f"{NAMESPACE}:appSource cannot be packed: {err}"]) from None


CACHE_DIR = Path(".webstack") / "bundles"  # under the project directory, git-ignored
CACHE_DAYS = 7  # other stacks of the same project may be uploading theirs: age, not count


def cached(bundle: Bundle, project_dir: Path) -> str:
    """The bundle as a file for the upload (a Pulumi FileAsset: state keeps its hash and this
    path, not its bytes). Relative to `project_dir`, the program's working directory, so the
    path is the same on every machine."""
    rel = CACHE_DIR / f"{bundle.sha256}.tar"
    path = project_dir / rel
    if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != bundle.sha256:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(bundle.data)
        tmp.replace(path)
    os.utime(path)  # in use: fresh
    for old in path.parent.glob("*.tar"):
        if old.stat().st_mtime < time.time() - CACHE_DAYS * 86400:
            old.unlink(missing_ok=True)
    return rel.as_posix()
