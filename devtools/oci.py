"""Container images built offline: no base image can be downloaded here, so the root is made of
Debian packages (the host's mirror, as the VM image is) and pushed to a registry by its HTTP API.

The image is the container example's (examples/docker-app) on python3.11 from Debian 12 with
gunicorn copied from the dev venv (a pure-Python wheel): two layers, the base (~45 MB
unpacked: python3.11's stdlib without the modules a WSGI app never imports, glibc without its
locales and gconv) and the app. Layers are tars with sorted entries, owner root, mtime 0 and a
gzip header without a name or time, so the same recipe gives the same digest on this machine;
the gzip stream itself comes from this machine's zlib, and another zlib version may compress
differently, so digests are not promised across machines (nothing needs them to be: the
pointer names whatever digest was pushed).

The base layer is cached under `<cache>/oci/<key>/`, the key hashing its recipe (packages,
pruning, the gunicorn files, the mirror), like the VM image.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.metadata
import io
import json
import os
import shutil
import subprocess
import tarfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.message import Message
from pathlib import Path

from components.config import PROJECT_DIR
from devtools.vm_image import cache_dir, host_mirror

# python3.11-minimal and what its stdlib's extension modules link, less what a WSGI app never
# loads (readline, curses, sqlite, dbm, nis): their modules fail only when imported.
PACKAGES = (
    "libc6", "libgcc-s1", "zlib1g", "libexpat1", "libssl3", "libffi8", "libbz2-1.0", "liblzma5",
    "libuuid1", "media-types", "libpython3.11-minimal", "python3.11-minimal",
    "libpython3.11-stdlib",
)
PRUNE = (
    "usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/lintian", "usr/share/locale",
    "usr/share/i18n", "usr/lib/x86_64-linux-gnu/gconv", "usr/lib/python3.11/idlelib",
    "usr/lib/python3.11/tkinter", "usr/lib/python3.11/turtledemo", "usr/lib/python3.11/lib2to3",
    "usr/lib/python3.11/pydoc_data", "usr/lib/python3.11/ensurepip",
    "usr/lib/python3.11/distutils", "usr/lib/python3.11/config-3.11-x86_64-linux-gnu",
)
SITE = "usr/lib/python3/dist-packages"  # on Debian's python3.11 sys.path
APP_DIR = "/app"
UID = 10001  # the image's user: never root
PASSWD = (f"root:x:0:0:root:/root:/usr/sbin/nologin\n"
          f"app:x:{UID}:{UID}:app:{APP_DIR}:/usr/sbin/nologin\n")
GROUP = f"root:x:0:\napp:x:{UID}:\n"
EXAMPLE = PROJECT_DIR / "examples" / "docker-app"
EXAMPLE_FILES = ("app.py", "static/app.css")
# The broken variant: it starts, and its health check answers 500.
BROKEN_APP = b'''def application(environ, start_response):
    start_response("500 Internal Server Error", [("Content-Type", "text/plain")])
    return [b"broken release\\n"]
'''
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def sha256(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


@dataclass(frozen=True)
class Blob:
    data: bytes
    media_type: str

    @property
    def digest(self) -> str:
        return sha256(self.data)

    @property
    def descriptor(self) -> dict[str, object]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": len(self.data)}


@dataclass(frozen=True)
class Layer:
    blob: Blob  # the gzip stream, what a registry stores
    diff_id: str  # the sha256 of the uncompressed tar, what the config lists


@dataclass(frozen=True)
class Image:
    config: Blob
    layers: tuple[Layer, ...]

    @property
    def manifest(self) -> bytes:
        return json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                           "config": self.config.descriptor,
                           "layers": [layer.blob.descriptor for layer in self.layers]},
                          sort_keys=True, separators=(",", ":")).encode()

    @property
    def digest(self) -> str:
        return sha256(self.manifest)

    @property
    def size(self) -> int:
        return sum(len(layer.blob.data) for layer in self.layers)


def _member(info: tarfile.TarInfo) -> tarfile.TarInfo:
    """One entry, as every machine would write it: owner root, mtime 0, modes normalised."""
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mtime = 0
    if info.isdir():
        info.mode = 0o1777 if info.name == "tmp" else 0o755
    elif info.isfile():
        info.mode = 0o755 if info.mode & 0o111 else 0o644
    return info


def layer_of(root: Path) -> Layer:
    """The tree under `root` as a layer (paths relative to /; symlinks kept as links)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(root.rglob("*"), key=lambda p: p.relative_to(root).as_posix()):
            info = _member(tar.gettarinfo(str(path), path.relative_to(root).as_posix()))
            if info.isfile():
                with path.open("rb") as f:
                    tar.addfile(info, f)
            elif info.isdir() or info.issym() or info.islnk():  # a hard link: to the first
                tar.addfile(info)
    data = raw.getvalue()
    return Layer(Blob(gzip.compress(data, compresslevel=6, mtime=0), OCI_LAYER), sha256(data))


def _gunicorn_files() -> dict[str, Path]:
    """gunicorn's files in the dev venv (pure Python) by their path under site-packages."""
    dist = importlib.metadata.distribution("gunicorn")
    files = {}
    for entry in dist.files or ():
        rel = entry.as_posix()
        if rel.startswith(("gunicorn/", "gunicorn-")) and "__pycache__" not in rel:
            files[rel] = Path(str(dist.locate_file(entry)))
    return files


def base_key() -> str:
    gunicorn = {rel: hashlib.sha256(p.read_bytes()).hexdigest()
                for rel, p in sorted(_gunicorn_files().items())}
    text = json.dumps({"packages": PACKAGES, "prune": PRUNE, "site": SITE, "passwd": PASSWD,
                       "group": GROUP, "gunicorn": gunicorn, "mirror": host_mirror()},
                      sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _run(argv: list[str], cwd: Path | None = None, timeout: float = 600) -> None:
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:3])}... exited {proc.returncode}:\n"
                           f"{(proc.stdout + proc.stderr)[-2000:]}")


def _make_root(root: Path, debs: Path) -> None:
    """The base tree: the packages' files (no maintainer scripts: nothing runs in a chroot),
    pruned, the stdlib and gunicorn byte-compiled (unchecked-hash: no mtimes in the .pyc, and
    no writes needed at run time), the app's user."""
    debs.mkdir(parents=True)
    _run(["apt-get", "download", "-q", *PACKAGES], cwd=debs)
    for deb in sorted(debs.glob("*.deb")):
        _run(["dpkg-deb", "-x", str(deb), str(root)])
    for rel in PRUNE:
        shutil.rmtree(root / rel, ignore_errors=True)
    for rel, src in _gunicorn_files().items():
        dest = root / SITE / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
    (root / "usr/bin/python3").symlink_to("python3.11")
    _run(["python3.11", "-m", "compileall", "-q", "-j0", "--invalidation-mode", "unchecked-hash",
          "-d", "/usr/lib/python3.11", str(root / "usr/lib/python3.11")])
    _run(["python3.11", "-m", "compileall", "-q", "-j0", "--invalidation-mode", "unchecked-hash",
          "-d", f"/{SITE}", str(root / SITE)])
    (root / "etc").mkdir(exist_ok=True)
    (root / "etc/passwd").write_text(PASSWD)
    (root / "etc/group").write_text(GROUP)
    for rel in ("tmp", APP_DIR.lstrip("/")):
        (root / rel).mkdir(exist_ok=True)


def base_layer(say: Callable[[str], None]) -> Layer:
    """The cached base layer, built first if missing (~1 min: downloads ~15 MB of packages)."""
    cache = cache_dir() / "oci"
    key = base_key()
    done = cache / key
    if (done / "layer.tar.gz").exists():
        say(f"oci: cached base layer {done}")
        return Layer(Blob((done / "layer.tar.gz").read_bytes(), OCI_LAYER),
                     (done / "diff_id").read_text())
    work = cache / f"{key}.build-{os.getpid()}"
    try:
        say(f"oci: base layer from {', '.join(PACKAGES[-3:])} and gunicorn (once per recipe)")
        _make_root(work / "root", work / "debs")
        layer = layer_of(work / "root")
        final = work / "final"
        final.mkdir()
        (final / "layer.tar.gz").write_bytes(layer.blob.data)
        (final / "diff_id").write_text(layer.diff_id)
        final.rename(done)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for old in cache.iterdir():  # older recipes' layers are never pushed again
        if old != done and "." not in old.name:
            shutil.rmtree(old)
    say(f"oci: base layer {len(layer.blob.data) / 1e6:.1f} MB compressed, {done}")
    return layer


def app_layer(files: Mapping[str, bytes], work: Path) -> Layer:
    """`files` (path under /app → bytes) as a layer."""
    root = work / "app-layer"
    shutil.rmtree(root, ignore_errors=True)
    for rel, data in files.items():
        path = root / APP_DIR.lstrip("/") / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    try:
        return layer_of(root)
    finally:
        shutil.rmtree(root)


def image(layers: tuple[Layer, ...], port: int = 8000) -> Image:
    """An image of `layers` that runs gunicorn on the example's app as the non-root user;
    gunicorn binds 0.0.0.0:$PORT when PORT is set, as webstack sets it."""
    config = {
        "architecture": "amd64", "os": "linux",
        "config": {"User": f"{UID}:{UID}", "WorkingDir": APP_DIR,
                   "Env": ["PATH=/usr/local/bin:/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE=1",
                           "PYTHONUNBUFFERED=1", f"PORT={port}"],
                   "Cmd": ["python3", "-m", "gunicorn", "--workers", "2", "--no-control-socket",
                           "--access-logfile", "-", "app:application"],
                   "ExposedPorts": {f"{port}/tcp": {}}},
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
    }
    data = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
    return Image(Blob(data, OCI_CONFIG), layers)


def example_image(version: str, work: Path, say: Callable[[str], None],
                  broken: bool = False) -> Image:
    """The container example as version `version` (its VERSION file); `broken`: its app answers
    500 to everything, the health check included."""
    files = {rel: (EXAMPLE / rel).read_bytes() for rel in EXAMPLE_FILES}
    files["VERSION"] = f"{version}\n".encode()
    if broken:
        files["app.py"] = BROKEN_APP
    return image((base_layer(say), app_layer(files, work)))


_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _call(method: str, url: str, data: bytes | None = None,
          headers: Mapping[str, str] | None = None) -> tuple[int, Message]:
    request = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    try:
        with _DIRECT.open(request, timeout=120) as answer:
            return answer.status, answer.headers
    except urllib.error.HTTPError as e:
        with e:
            detail = e.read(2000).decode(errors="replace")
        if method == "HEAD" and e.code == 404:
            return 404, e.headers
        raise RuntimeError(f"{method} {url}: HTTP {e.code} {detail}") from None


def push(registry_url: str, name: str, tag: str, img: Image,
         headers: Mapping[str, str] | None = None) -> str:
    """`img` pushed as `name:tag` by the Registry API v2 (blobs the registry has are not sent
    again); returns the manifest's digest, as the registry computed it. `headers`: e.g. an
    Authorization for a registry with auth."""
    base = f"{registry_url}/v2/{name}"
    auth = dict(headers or {})
    for blob in (*(layer.blob for layer in img.layers), img.config):
        if _call("HEAD", f"{base}/blobs/{blob.digest}", headers=auth)[0] == 200:
            continue
        _, answer = _call("POST", f"{base}/blobs/uploads/", b"", auth)
        location = urllib.parse.urljoin(f"{base}/", answer["Location"])
        glue = "&" if "?" in location else "?"
        _call("PUT", f"{location}{glue}digest={blob.digest}", blob.data,
              {**auth, "Content-Type": "application/octet-stream"})
    _, answer = _call("PUT", f"{base}/manifests/{tag}", img.manifest,
                      {**auth, "Content-Type": OCI_MANIFEST})
    digest = answer.get("Docker-Content-Digest", "")
    if digest != img.digest:
        raise RuntimeError(f"the registry stored {name}:{tag} as {digest!r}, not {img.digest}")
    return digest
