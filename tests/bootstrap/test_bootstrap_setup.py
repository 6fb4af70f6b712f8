"""The setup script end to end on this machine, twice: the second run must change nothing.

It runs against a live loopback stack (its health check must pass through nginx), with the
privileged commands (systemctl, runuser, usermod, chown, install's -o/-g) replaced by stubs that
log what they were asked and keep a little state, and uv barred from any index.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from components.bundle import pack
from components.config import SAMPLE_APP_DIR
from devtools.localrun import LocalRun, run_local, stage_bundle
from tests import variants
from tests.stubs import INSTALL_WITHOUT_OWNER, write_stubs

pytestmark = pytest.mark.realtools

STUBS = {
    "systemctl": """
echo "systemctl $*" >> "$STUB_LOG"
case "$1 $*" in
  is-active*) [ -e "$STUB_STATE/app-active" ]; exit ;;
  is-enabled*) [ -e "$STUB_STATE/enabled-$3" ]; exit ;;
  "enable "*) for u in "$@"; do touch "$STUB_STATE/enabled-$u"; done ;;
  "show "*NeedDaemonReload*) [ -e "$STUB_STATE/units-changed" ] && echo yes || echo no ;;
  "start "*.service*) touch "$STUB_STATE/app-active" ;;
esac
""",
    "runuser": 'echo "runuser $*" >> "$STUB_LOG"; shift 3; exec "$@"',
    "usermod": 'echo "usermod $*" >> "$STUB_LOG"; touch "$STUB_STATE/in-group"',
    "id": 'if [ -e "$STUB_STATE/in-group" ]; then echo "www-data hello"; else echo www-data; fi',
    "chown": 'echo "chown $*" >> "$STUB_LOG"',
    "nginx": 'echo "nginx $*" >> "$STUB_LOG"',
    # The release's candidate gunicorn: setpriv would switch to the app's user.
    "setpriv": 'echo "setpriv $*" >> "$STUB_LOG"; shift 5; exec "$@"',
    # install as root would chown to the app's user, which does not exist here.
    "install": INSTALL_WITHOUT_OWNER,
}


@pytest.fixture
def live() -> Iterator[LocalRun]:
    for tool in ("nginx", "systemd-socket-activate"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed: scripts/setup-system.sh (make system) does it")
    root = Path(tempfile.mkdtemp(prefix="wssetup-", dir="/tmp"))
    try:
        with run_local(variants.cfg("plain"), root, venv=Path(sys.prefix)) as run:
            yield run
    finally:
        shutil.rmtree(root)


def snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    """Every installed file's bytes and mtime (logs and the run's own files aside)."""
    skip = ("nginx-run", "var/log", "gunicorn.log", "nginx.log", "stub")
    return {str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in root.rglob("*")
            if p.is_file() and not str(p.relative_to(root)).startswith(skip)
            and "__pycache__" not in p.parts}


def test_setup_converges_and_a_second_run_changes_nothing(live: LocalRun) -> None:
    root = Path(live.target.root)
    stubs = root / "stub"
    (stubs / "state").mkdir(parents=True)
    write_stubs(stubs, STUBS)
    log = stubs / "log"
    env = {"PATH": f"{stubs}:/usr/bin:/bin", "HOME": str(root), "UV_NO_INDEX": "1",
           "STUB_LOG": str(log), "STUB_STATE": str(stubs / "state")}
    setup = [f"{live.paths.lib}/setup"]

    def run_setup() -> tuple[str, list[str]]:
        log.write_text("")
        proc = subprocess.run(setup, capture_output=True, text=True, timeout=120, env=env,
                              check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout, log.read_text().splitlines()

    out, calls = run_setup()
    assert "systemctl start webstack-hello.service" in calls
    assert "usermod -a -G hello www-data" in calls and "systemctl restart nginx" in calls
    assert "nginx -t -q" in calls
    # nginx is enabled once; ours without a reload (systemd has not loaded them yet).
    assert "systemctl enable --quiet nginx" in calls
    assert ("systemctl enable --quiet --no-reload webstack-hello.socket webstack-hello.service"
            in calls)
    assert "systemctl daemon-reload" not in calls
    # run_local staged the bundle exactly as the release script names it: nothing to release.
    current = Path(live.paths.current).resolve()
    assert f"release: serving bundle ({current.name.removeprefix('bundle-')}) as {current}" in out
    assert "is already serving: nothing to do" in out
    settings = Path(live.paths.state) / "settings"
    assert settings.read_text().strip()
    before = snapshot(root)

    out, calls = run_setup()
    assert "is already serving: nothing to do" in out
    assert not [c for c in calls if c.startswith(("usermod", "systemctl restart",
                                                 "systemctl reload", "systemctl daemon-reload",
                                                 "systemctl enable --quiet nginx"))]
    assert snapshot(root) == before

    # New code: a new bundle, fetched (here: staged as fetch-bundle leaves it) and named by the
    # pointer, which setup releases.
    src = root / "new-src"
    shutil.copytree(SAMPLE_APP_DIR, src, ignore=shutil.ignore_patterns("__pycache__"))
    (src / "app.py").write_text((src / "app.py").read_text() + "# a new release\n")
    code = pack(src)
    stage_bundle(live.paths, code, serving=False)
    settings_env = Path(live.paths.lib) / "settings.env"
    settings_env.write_text(settings_env.read_text().replace(
        f'APP_REF="{live.target.pointer}"', f'APP_REF="{code.sha256}"'))
    out, calls = run_setup()
    assert "systemctl restart webstack-hello.service" in calls  # the release, not a HUP
    assert not [c for c in calls if c.startswith("systemctl reload webstack-hello")]
    new = Path(live.paths.current).resolve()
    assert new != current and new.parent == current.parent
    assert (new / "src/app.py").read_text().endswith("# a new release\n")
    assert f"release: serving bundle ({new.name.removeprefix('bundle-')}) as {new}" in out
    assert current.is_dir()  # the previous release is kept for rollback

    gunicorn_conf = Path(live.paths.etc) / "gunicorn.conf.py"
    gunicorn_conf.write_text(gunicorn_conf.read_text() + "# tuned\n")
    out, calls = run_setup()
    assert "restarting webstack-hello (settings changed)" in out
    assert "systemctl restart webstack-hello.service" in calls

    # A unit file changed since systemd loaded it (a repair run after a new user-data): reload.
    (stubs / "state" / "units-changed").touch()
    out, calls = run_setup()
    assert calls.count("systemctl daemon-reload") == 1
