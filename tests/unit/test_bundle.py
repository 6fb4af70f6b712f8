"""The appSource packer: the same tree gives the same bytes whatever the machine (time zone,
umask, the order files were made in, their mtimes and owners, the compressor a zlib build
would use: none is used), ignore rules as git reads them, and clear errors for what a bundle
cannot hold."""

from __future__ import annotations

import io
import os
import tarfile
import time
import zlib
from pathlib import Path

import pytest

from components import bundle
from components.bundle import BundleError, Ignore, cached, collect, pack
from components.config import SAMPLE_APP_DIR, ConfigError
from tests.variants import make_cfg

FILES = {"app.py": b"print('hi')\n", "requirements.txt": b"django==5.2.19\n",
         "pkg/__init__.py": b"", "pkg/templates/index.html": "<p>é</p>\n".encode(),
         "static/app.3f2a9c1b.css": b"body{}\n", "bin/run.sh": b"#!/bin/sh\n"}


def tree(root: Path, order: list[str], umask: int = 0o022) -> Path:
    old = os.umask(umask)
    try:
        for rel in order:
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(FILES[rel])
        (root / "bin/run.sh").chmod(0o755)
    finally:
        os.umask(old)
    return root


def test_the_same_tree_is_the_same_bytes_on_another_machine(tmp_path: Path,
                                                             monkeypatch) -> None:
    first = pack(tree(tmp_path / "a", sorted(FILES)))
    # another machine: files made in another order with another umask, other mtimes, another
    # time zone, and a zlib that would compress differently (it must not be used at all)
    monkeypatch.setenv("TZ", "Pacific/Chatham")
    time.tzset()
    monkeypatch.setattr(zlib, "compress", lambda *a, **k: pytest.fail("compressed"))
    other = tree(tmp_path / "b", sorted(FILES, reverse=True), umask=0o077)
    for n, rel in enumerate(sorted(FILES)):
        os.utime(other / rel, (1_000_000 + n, 2_000_000_000 - n))
    try:
        second = pack(other)
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    assert second.data == first.data and second.sha256 == first.sha256
    with tarfile.open(fileobj=io.BytesIO(first.data)) as tar:
        members = tar.getmembers()
        page = tar.extractfile("pkg/templates/index.html")
        assert page is not None and page.read() == FILES["pkg/templates/index.html"]
    assert [m.name for m in members] == sorted(FILES, key=str.encode)
    assert {(m.mode, m.mtime, m.uid, m.gid, m.uname, m.type) for m in members} == {
        (0o644, 0, 0, 0, "root", tarfile.REGTYPE)}


def test_new_content_is_a_new_release(tmp_path: Path) -> None:
    root = tree(tmp_path / "a", sorted(FILES))
    before = pack(root).sha256
    (root / "app.py").write_bytes(b"print('bye')\n")
    assert pack(root).sha256 != before


def test_tool_directories_and_the_projects_ignore_patterns_are_left_out(tmp_path: Path) -> None:
    root = tree(tmp_path / "a", sorted(FILES))
    for rel in (".git/HEAD", ".venv/bin/python", "pkg/__pycache__/x.pyc", "node_modules/m.js",
                "data/db.sqlite3", "logs/today.log", "keep.log", "docs/build/index.html",
                "src/docs/build/x", ".env", "notes.tmp", ".webstack/bundles/x.tar"):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    (root / ".gitignore").write_text("# comment\n/data/\n*.log\n!keep.log\n.env\n"
                                     "docs/build/\n")
    (root / ".webstackignore").write_text("*.tmp\n")
    files = collect(root)
    assert files == sorted([*FILES, ".gitignore", ".webstackignore", "keep.log",
                            "src/docs/build/x"], key=str.encode)


def test_gitignore_semantics() -> None:
    rules = Ignore(["*.log", "!important.log", "/build", "docs/**/tmp", "cache/", "a?c",
                    "[Bb]in/", r"\#hash"])
    assert rules.ignored("x/y.log", False) and not rules.ignored("important.log", False)
    assert rules.ignored("build", True) and not rules.ignored("src/build", True)  # anchored
    assert rules.ignored("docs/tmp", True) and rules.ignored("docs/a/b/tmp", False)
    assert rules.ignored("deep/cache", True) and not rules.ignored("deep/cache", False)
    assert rules.ignored("abc", False) and not rules.ignored("abbc", False)
    assert rules.ignored("Bin", True) and rules.ignored("bin", True)
    assert rules.ignored("#hash", False)


def test_what_a_bundle_cannot_hold_is_a_clear_error(tmp_path: Path) -> None:
    root = tree(tmp_path / "a", sorted(FILES))
    (root / "linked").symlink_to(root / "pkg", target_is_directory=True)
    with pytest.raises(BundleError, match=r"linked is a symbolic link to a directory"):
        pack(root)
    (root / "linked").unlink()
    (root / "file-link").symlink_to(root / "app.py")  # a link to a file: packed as the file
    assert "file-link" in pack(root).files
    os.mkfifo(root / "pipe")
    with pytest.raises(BundleError, match=r"pipe is not a regular file"):
        pack(root)
    (root / "pipe").unlink()
    deep = root / ("d" * 120) / ("e" * 140)
    deep.mkdir(parents=True)
    (deep / "f.py").write_text("")
    with pytest.raises(BundleError, match=r"a bundle's paths fit in 255"):
        pack(root)


def test_too_big_or_empty_is_refused(tmp_path: Path, monkeypatch) -> None:
    root = tree(tmp_path / "a", sorted(FILES))
    monkeypatch.setattr(bundle, "MAX_BYTES", 20)
    with pytest.raises(BundleError, match=r"more than 0 MiB of files to deploy"):
        pack(root)
    empty = tmp_path / "empty"
    (empty / ".git").mkdir(parents=True)
    with pytest.raises(BundleError, match=r"has no files to deploy"):
        pack(empty)


def test_a_bad_source_is_a_config_error_naming_the_setting(tmp_path: Path) -> None:
    root = tree(tmp_path / "a", sorted(FILES))
    (root / "linked").symlink_to(root / "pkg", target_is_directory=True)
    with pytest.raises(ConfigError, match=r"webstack:appSource cannot be packed: .*linked"):
        bundle.of_app(make_cfg({"webstack:appSource": str(root)}).app)


def test_the_upload_file_is_content_addressed_and_relative(tmp_path: Path) -> None:
    code = pack(SAMPLE_APP_DIR)
    rel = cached(code, tmp_path)
    assert rel == f".webstack/bundles/{code.sha256}.tar"
    assert (tmp_path / rel).read_bytes() == code.data
    (tmp_path / rel).write_bytes(b"tampered")
    assert (tmp_path / cached(code, tmp_path)).read_bytes() == code.data  # rewritten
