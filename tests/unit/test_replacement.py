"""A no-op `pulumi up` stays a no-op: the program, run again on another machine, on a later day
or after a newer OS image is published, registers the same resources with the same inputs
(devtools/provider.py models which inputs would replace a resource). Mocks compute no diff, so
this is where a replacement nobody asked for is caught."""

from __future__ import annotations

import ast
import gzip
import os
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest

from devtools.mockrun import PROJECT_DIR, MockRun, RecordingMocks, run_program
from devtools.provider import REPLACES, diff
from tests import variants
from tests.cases import arr

# Replayed under each circumstance (a cold replay takes seconds): one server, a scaling fleet,
# a git app with Let's Encrypt, and the largest (its CA file read from disk).
REPLAYED = ["dev", "prod-fleet-acm", "git-letsencrypt", "full"]


@pytest.fixture(scope="module")
def baseline(aws_env_module) -> dict[str, MockRun]:
    """Every variant's first run (every type it registers needs a replacement row)."""
    return {key: variants.plan(key) for key in variants.NAMES}


def _other_compressor(mp: pytest.MonkeyPatch) -> None:
    """Another zlib build (zlib-ng, Apple's): other deflate bytes, another OS byte."""
    real_gzip, real_compress, real_obj = gzip.compress, zlib.compress, zlib.compressobj

    def other_gzip(data: bytes, compresslevel: int = 9, *, mtime: float | None = None) -> bytes:
        out = real_gzip(data, 1, mtime=0)
        return out[:9] + bytes([19]) + out[10:]  # OS byte 19: macOS
    mp.setattr(gzip, "compress", other_gzip)
    mp.setattr(zlib, "compress", lambda data, level=-1, wbits=15: real_compress(data, 1, wbits))
    mp.setattr(zlib, "compressobj", lambda level=-1, *a, **k: real_obj(1, *a, **k))


@contextmanager
def _another_machine(mp: pytest.MonkeyPatch, tmp: Path) -> Iterator[None]:
    _other_compressor(mp)
    mp.setenv("HOME", str(tmp / "elsewhere"))
    mp.setenv("XDG_CACHE_HOME", str(tmp / "cold-cache"))  # nothing cached from the first run
    mp.setenv("TZ", "Pacific/Chatham")
    mp.setenv("LC_ALL", "tr_TR.UTF-8")
    mp.chdir(tmp)  # the program must not depend on where it is started from
    time.tzset()
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)


@contextmanager
def _later_day(mp: pytest.MonkeyPatch, tmp: Path) -> Iterator[None]:
    real = time.time
    mp.setattr(time, "time", lambda: real() + 400 * 86400)
    mp.setenv("XDG_CACHE_HOME", str(tmp / "later-cache"))
    yield


@contextmanager
def _newer_image(mp: pytest.MonkeyPatch, tmp: Path) -> Iterator[None]:
    yield  # the mocks publish it, below


CIRCUMSTANCES: dict[str, Callable[[pytest.MonkeyPatch, Path], AbstractContextManager[None]]] = {
    "another-machine": _another_machine,
    "a-later-day": _later_day,
    "a-newer-image-published": _newer_image,
}


@pytest.mark.parametrize("circumstance", list(CIRCUMSTANCES))
@pytest.mark.parametrize("key", REPLAYED)
def test_a_second_run_changes_nothing(baseline, key, circumstance, tmp_path):
    mocks = RecordingMocks(region="us-east-1")
    if circumstance == "a-newer-image-published":
        mocks.images = 2
    try:
        with pytest.MonkeyPatch.context() as mp, CIRCUMSTANCES[circumstance](mp, tmp_path):
            again = variants.plan(key, mocks)
    finally:
        time.tzset()  # TZ is restored by now: the process's zone follows it again
    deleted, created, changes = diff(baseline[key], again)
    assert not deleted and not created, (deleted, created)
    assert not changes, [f"{c.type} {c.prop}{' (REPLACES it)' if c.replaces else ''}"
                         for c in changes]


def test_every_type_has_a_replacement_row(baseline):
    types = {r.type for run in baseline.values() for r in run.resources if r.custom}
    assert types <= set(REPLACES), types - set(REPLACES)


def test_the_model_sees_a_real_change(baseline, aws_env_module):
    """The comparison itself works: a new disk size replaces the single server, a new CIDR
    for SSH only adds a rule."""
    dev = variants.raw("dev")
    bigger = run_program("dev", {**dev, "webstack:serverDiskGib": "30"})
    _, _, changes = diff(baseline["dev"], bigger)
    assert [(c.type, c.prop, c.replaces) for c in changes] == [
        ("aws:ec2/instance:Instance", "rootBlockDevice", False)]  # EBS grows in place
    ssh = run_program("dev", {**dev, "webstack:adminCidrs": arr("203.0.113.0/24")})
    _, created, changes = diff(baseline["dev"], ssh)
    assert [u.rsplit("::", 1)[1] for u in created] == ["hello-dev-web-ingress-22-203-0-113-0-24"]
    assert not [c for c in changes if c.replaces]


def _program_modules() -> list[Path]:
    return [PROJECT_DIR / "__main__.py", *sorted((PROJECT_DIR / "components").glob("*.py"))]


def test_program_files_are_read_with_an_explicit_encoding():
    """The locale's encoding differs by machine (cp1252 on Windows): a text read without
    `encoding=` can turn the same file into other user-data."""
    offenders = []
    for path in _program_modules():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("read_text", "write_text")
                    and not any(k.arg == "encoding" for k in node.keywords)):
                offenders.append(f"{path.name}:{node.lineno}")
    assert not offenders, offenders
