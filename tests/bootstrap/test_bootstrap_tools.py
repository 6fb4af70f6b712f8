"""The rendered output checked by the real tools: cloud-init's schema validator, nginx -t,
shellcheck and systemd-analyze verify, for every variant of the one table (tests/variants.py),
the stack files among them: what the program plans is what these check."""

from __future__ import annotations

import py_compile
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from components.bootstrap import Target, render
from components.config import StackConfig
from devtools.localrun import install, local_target, nginx_main_conf
from tests import variants
from tests.bootstrap.stacks import shell_scripts, shipped, sourced_files, user_data_commands

pytestmark = pytest.mark.realtools


def require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not installed: scripts/setup-system.sh (make system) installs it")
    return path


def run(argv: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


def local_install(cfg: StackConfig, root: Path) -> tuple[Target, dict[str, str]]:
    """The rendered files written under root, as the loopback run uses them."""
    target = local_target(root, 8080, 8443, Path(sys.prefix))
    rendered = render(cfg, target)
    install(rendered, target)
    return target, rendered.files


@pytest.mark.parametrize("name", variants.NAMES)
def test_cloud_init_schema_accepts_the_user_data(name: str, tmp_path: Path) -> None:
    tool = require("cloud-init")
    user_data = tmp_path / "user-data"
    user_data.write_text(render(variants.cfg(name)).user_data)
    proc = run([tool, "schema", "--config-file", str(user_data)])
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert f"Valid cloud-config: {user_data}" in proc.stdout
    assert "deprecat" not in output.lower() and "warn" not in output.lower(), output


@pytest.mark.parametrize("name", variants.NAMES)
def test_nginx_accepts_the_site_in_the_distro_config(name: str, tmp_path: Path) -> None:
    nginx = require("nginx")
    cfg = variants.cfg(name)
    target, files = local_install(cfg, tmp_path / "root")
    lib = f"{target.root}/usr/local/lib/webstack/{cfg.app.name}"
    if f"{lib}/tls" in files:  # the rendered script makes the certificate nginx loads
        require("openssl")
        proc = run([f"{lib}/tls"])
        assert proc.returncode == 0, proc.stderr
    prefix = tmp_path / "nginx"
    prefix.mkdir()
    site = f"{target.root}/etc/nginx/conf.d/{cfg.app.name}.conf"
    main = prefix / "nginx.conf"
    main.write_text(nginx_main_conf(site, prefix, Path("/etc/nginx/nginx.conf").read_text()))
    Path(f"{target.root}/var/log/nginx").mkdir(parents=True)
    proc = run([nginx, "-t", "-c", str(main), "-p", str(prefix), "-e", str(prefix / "error.log")])
    assert proc.returncode == 0, proc.stderr
    assert f"configuration file {main} test is successful" in proc.stderr
    assert "[warn]" not in proc.stderr and "[emerg]" not in proc.stderr, proc.stderr


@pytest.mark.parametrize("name", variants.NAMES)
def test_shellcheck_finds_nothing_in_the_scripts(name: str, tmp_path: Path) -> None:
    shellcheck = require("shellcheck")
    rendered = render(variants.cfg(name))
    files = shipped(rendered)  # as the server gets them
    scripts = shell_scripts(files)
    assert scripts, "every stack has at least the setup script"
    sourced = sourced_files(files)
    assert sourced, "the scripts read their settings from a sourced file"
    for path, text in sourced.items():  # as bash reads it; the scripts use what it assigns
        scripts[path] = f"#!/bin/bash\n# shellcheck disable=SC2034\n{text}"
    scripts["user-data"] = "#!/bin/sh\n" + "".join(f"{c}\n" for c in user_data_commands(
        rendered.user_data))  # the commands cloud-init hands to a shell
    paths = []
    for i, (path, text) in enumerate(sorted(scripts.items())):
        out = tmp_path / f"{i}-{Path(path).name}"
        out.write_text(text)
        paths.append(str(out))
    proc = run([shellcheck, "--severity=style", "--format=gcc", *paths])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout + proc.stderr == ""


@pytest.mark.parametrize("name", variants.NAMES)
def test_python_files_compile(name: str, tmp_path: Path) -> None:
    files = shipped(render(variants.cfg(name)))
    python = {p: t for p, t in files.items()
              if p.endswith(".py") or t.startswith("#!/usr/bin/env python3")}
    for i, (path, text) in enumerate(sorted(python.items())):
        src = tmp_path / f"{i}-{Path(path).stem}.py"
        src.write_text(text)
        py_compile.compile(str(src), doraise=True)  # raises with the file and line


def _systemd_analyze_usable(tool: str, tmp_path: Path) -> str:
    """'' when `systemd-analyze verify` works here, else why not."""
    probe = tmp_path / "webstack-probe.service"
    probe.write_text("[Service]\nExecStart=/bin/true\n")
    proc = run([tool, "verify", str(probe)])
    return "" if proc.returncode == 0 else (proc.stdout + proc.stderr).strip()


@pytest.mark.parametrize("name", variants.NAMES)
def test_systemd_analyze_verifies_the_units(name: str, tmp_path: Path) -> None:
    tool = require("systemd-analyze")
    why_not = _systemd_analyze_usable(tool, tmp_path)
    if why_not:
        pytest.skip(f"systemd-analyze verify does not work on this machine ({why_not}); "
                    "a host or VM booted with systemd runs it")
    cfg = variants.cfg(name)
    target, files = local_install(cfg, tmp_path / "root")
    units = sorted(p for p in files if p.startswith(f"{target.root}/etc/systemd/system/"))
    if cfg.app.static:  # nginx serves the files: no app process, so no units (no secrets here)
        assert units == []
        return
    app_units = ({f"webstack-{cfg.app.name}-container@.service"} if cfg.app.container else
                 {f"webstack-{cfg.app.name}.service", f"webstack-{cfg.app.name}.socket"})
    assert {Path(u).name for u in units} >= app_units
    proc = run([tool, "verify", *units])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout + proc.stderr == ""
