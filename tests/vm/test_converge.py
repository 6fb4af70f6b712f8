"""One VM booted from the dev stack's rendered user-data, then every promise checked on it:
converged without errors, served through nginx, TLS as configured, idempotent, and healthy
again after gunicorn is killed and after a reboot (without reinstalling anything).

The tests run in file order and share the VM: the fault tests come last.
"""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from components.bootstrap import GUNICORN_VERSION, UV_VERSION
from components.config import PROJECT_DIR
from deploy.readiness_check import probe_command
from devtools import local_aws
from devtools.localrun import wait_until
from devtools.vm import Vm, get, healthy
from devtools.vm_up import stage, up
from tests.vm.conftest import Booted, load, say, vm_ports

pytestmark = pytest.mark.vm

APP = PROJECT_DIR / "examples" / "hello-app"


# A secret in the local SSM, as `pulumi up` stores appSecretValues: the server reads it at boot
# with its IMDSv2 role credentials, as on EC2.
SECRET_PARAMETER = "/webstack/dev/hello/secrets/SESSION_KEY"
SECRET_VALUE = "local-vm s3cr3t \"quoted\" $HOME"


@pytest.fixture(scope="module")
def booted(accel: str) -> Iterator[Booted]:
    ports = vm_ports()
    vm = Vm.named("test-converge")
    staged = stage(vm, "dev", ports,
                   extra={"webstack:appSecrets": json.dumps([f"SESSION_KEY={SECRET_PARAMETER}"])},
                   parameters={SECRET_PARAMETER: SECRET_VALUE})
    try:
        result = up("test-converge", staged.user_data, "dev-vm", ports, say,
                    staged.cfg.app.health_path, timeout=900, accel=accel)
        yield Booted(result, staged)
    finally:
        vm.stop()


# --- converged ---------------------------------------------------------------------------------

def test_cloud_init_done_without_errors(booted: Booted) -> None:
    status = booted.vm.cloud_init_status()
    assert status["status"] == "done", status
    assert status["errors"] == [], status
    assert not status.get("recoverable_errors"), status  # cloud-init >= 23.4 reports these
    # bookworm's cloud-init (22.4) predates recoverable_errors: they are its WARNING lines.
    warnings = booted.sh("grep -E '\\[(WARNING|ERROR|CRITICAL)\\]' /var/log/cloud-init.log "
                         "|| true")
    assert warnings == "", warnings
    long = booted.sh("cloud-init status --long")
    assert "status: done" in long


def test_artefact_and_secrets_came_from_the_local_s3_and_ssm_through_imdsv2(
        booted: Booted) -> None:
    """The same user-data as EC2's, but for its endpoints: the artefact fetched from S3 and
    checked by its sha256, the secret read from SSM, both signed with the IMDSv2 role's
    credentials, which reach no file."""
    log = booted.sh("cat /var/log/cloud-init-output.log")
    sha = booted.rendered.artefact_sha256
    assert f"of artefact {sha[:12]} under /" in log, log[-2000:]
    boot = booted.sh("cat /usr/local/lib/webstack/hello/boot.env")
    assert f'ARTEFACT_SHA256="{sha}"\n' in boot
    aws = local_aws.running(booted.vm.aws_state)
    assert aws is not None, "the VM's local AWS stopped"
    endpoint = f"http://{local_aws.GUEST_HOST}:{aws.moto_port}"
    assert f'ENDPOINT_S3="{endpoint}"\n' in boot
    # the programs' settings came in the artefact, with the same endpoints
    settings = booted.sh("cat /usr/local/lib/webstack/hello/settings.env")
    assert f'ENDPOINT_SSM="{endpoint}"\n' in settings
    env = booted.sh("cat /run/webstack/hello/secrets.env")
    assert env == 'SESSION_KEY="local-vm s3cr3t \\"quoted\\" \\$HOME"\n', env
    assert booted.sh("stat -c %a /run/webstack/hello/secrets.env").strip() == "600"
    leaked = booted.sh(f"grep -rl {local_aws.CREDENTIALS['SecretAccessKey']} /etc /srv /usr/local "
                       "/var/log /run 2>/dev/null || true")
    assert leaked == "", leaked
    assert SECRET_VALUE not in log


def test_root_is_the_apps_greeting_through_nginx(booted: Booted) -> None:
    status, headers, body = booted.get("/")
    assert status == 200
    assert headers.get("X-Served-By") == "hello-app"  # the app, not nginx's default page
    assert body == b"hello from dev\n"  # Pulumi.dev.yaml's APP_GREETING reached the app
    assert headers.get("Server") == "nginx"


def test_plain_http_redirects_to_https(booted: Booted) -> None:
    status, headers, _ = booted.get("/", https=False)
    assert status == 301
    # The port the host forwards to the guest's 443: the redirect is usable from the host.
    assert headers["Location"] == f"https://127.0.0.1:{booted.vm.info.ports.https}/"


def test_static_file_is_served_by_nginx(booted: Booted) -> None:
    status, headers, body = booted.get("/static/hello.css")
    assert status == 200
    assert body == (APP / "static" / "hello.css").read_bytes()
    assert "X-Served-By" not in headers
    assert headers.get("Content-Type") == "text/css"


def test_health_path_answers(booted: Booted) -> None:
    status, headers, body = booted.get("/healthz")
    assert (status, body, headers.get("X-Served-By")) == (200, b"ok\n", "hello-app")


def test_https_serves_the_self_signed_certificate_for_its_name(booted: Booted) -> None:
    pem = booted.sh("cat /etc/webstack/hello/tls/fullchain.pem")
    context = ssl.create_default_context(cadata=pem)  # trust exactly the server's certificate
    context.check_hostname = False  # the name is checked below, against the certificate's SAN
    status, _, body = booted.get("/", context=context)
    assert (status, body) == (200, b"hello from dev\n")
    strict = ssl.create_default_context(cadata=pem)
    status, _, _ = get(booted.vm.url("/").replace("127.0.0.1", "localhost"), context=strict)
    assert status == 200  # verified for the name it was made for (SAN DNS:localhost)
    subject = booted.sh("openssl x509 -noout -subject -in /etc/webstack/hello/tls/fullchain.pem")
    assert subject.strip() == "subject=CN = hello"


def _handshake(booted: Booted, version: ssl.TLSVersion) -> str:
    """The TLS version negotiated, with the client offering exactly `version`."""
    context = ssl._create_unverified_context()
    context.set_ciphers("DEFAULT:@SECLEVEL=0")  # let this client offer old versions at all
    with warnings.catch_warnings():  # TLSv1_1 is deprecated: offering it is the point here
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = context.maximum_version = version
    with socket.create_connection(("127.0.0.1", booted.vm.info.ports.https), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname="localhost") as tls:
        return tls.version() or ""


def test_https_refuses_tls_1_1(booted: Booted) -> None:
    assert _handshake(booted, ssl.TLSVersion.TLSv1_2) == "TLSv1.2"  # the client can do it
    # The server's alert: the refusal is nginx's, not this client's.
    with pytest.raises(ssl.SSLError, match="TLSV1_ALERT_PROTOCOL_VERSION"):
        _handshake(booted, ssl.TLSVersion.TLSv1_1)


def test_gunicorn_runs_as_the_app_user(booted: Booted) -> None:
    users = booted.sh("ps -o user= -C gunicorn | sort -u").split()
    assert users == ["hello"]
    main = booted.sh("ps -o user= -p \"$(systemctl show -p MainPID --value webstack-hello)\"")
    assert main.strip() == "hello"


def test_units_enabled(booted: Booted) -> None:
    out = booted.sh("systemctl is-enabled nginx webstack-hello.socket webstack-hello.service")
    assert out.split() == ["enabled"] * 3


def test_only_the_packages_it_needs_and_the_pinned_uv(booted: Booted) -> None:
    installed = set(booted.sh("dpkg-query -W -f='${db:Status-Abbrev} ${Package}\\n' "
                              "| awk '$1 == \"ii\" {print $2}'").split())
    assert {"nginx", "python3", "unattended-upgrades"} <= installed
    # A bundle app needs no git; uv needs no python3-venv; no recommended extras.
    assert not installed & {"git", "perl", "python3-venv", "python3-gi", "libicu72"}
    uv = booted.sh("/usr/local/lib/webstack/hello/uv --version")
    assert uv.startswith(f"uv {UV_VERSION} "), uv
    assert booted.sh("/srv/hello/current/venv/bin/python -c 'import gunicorn; "
                     "print(gunicorn.__version__)'").strip() == GUNICORN_VERSION


# --- idempotence ---------------------------------------------------------------------------

def _state(booted: Booted) -> dict[str, str]:
    """What a re-run must leave alone: packages, apt's history, every installed file, the
    release and its venv, the running processes."""
    files = " ".join(booted.rendered.files)
    script = f"""
        echo "apt-history $(sha256sum < /var/log/apt/history.log)"
        echo "dpkg $(dpkg-query -W -f='${{Package}} ${{Version}}\\n' | sha256sum)"
        echo "files $(sha256sum {files} | sha256sum)"
        echo "release $(readlink /srv/hello/current)"
        echo "venv $(find /srv/hello/current/venv -name '*.dist-info' -printf '%p %T@\\n' \
                     | sort | sha256sum)"
        echo "tls $(sha256sum < /etc/webstack/hello/tls/fullchain.pem)"
        echo "gunicorn-pid $(systemctl show -p MainPID --value webstack-hello)"
        echo "nginx-pid $(systemctl show -p MainPID --value nginx)"
    """
    return dict(line.split(" ", 1) for line in booted.sh(script).splitlines())


def test_running_the_final_modules_again_changes_nothing(booted: Booted) -> None:
    before = _state(booted)
    # package_update_upgrade_install, write_files_deferred and scripts_user (our setup script)
    # as cloud-init runs them, forced past their once-per-instance semaphores.
    out = booted.sh("""
        set -e
        for m in package_update_upgrade_install write_files_deferred scripts_user; do
          cloud-init single --name "$m" --frequency always
        done 2>&1
    """, timeout=300)
    assert "is already serving: nothing to do" in out, out
    assert _state(booted) == before
    assert healthy(booted.vm.url("/healthz"))


# --- the readiness probe and a release on the real server ----------------------------------

def test_readiness_probe_reads_the_real_cloud_init_over_ssh(booted: Booted) -> None:
    """The gate's own probe script (what SSM runs on EC2), here through ssh."""
    ci = probe_command(booted.vm.ssh_argv("sudo", "sh", "-s"), timeout=60)
    assert (ci.source, ci.status, ci.ok, ci.failed_modules) == ("ssh", "done", True, ()), ci


RELEASE = "/usr/local/lib/webstack/hello/release"


def _new_code(booted: Booted, tmp: Path, old: str, new: str) -> str:
    """The sample app with one edit, shipped as `pulumi up` ships new code (a new version of
    the bundle in the local S3, the pointer in the local SSM moved to it): the server's next
    `release` fetches it. Returns the pointer."""
    src = tmp / f"src-{len(list(tmp.iterdir()))}"
    shutil.copytree(APP, src, ignore=shutil.ignore_patterns("__pycache__"))
    text = (src / "app.py").read_text()
    assert old in text, "the sample app changed: update this test"
    (src / "app.py").write_text(text.replace(old, new, 1))
    return booted.staged.release_new_code(src)


def test_release_switch_under_load_then_automatic_rollback(booted: Booted,
                                                           tmp_path: Path) -> None:
    first = booted.sh("readlink /srv/hello/current").strip()
    pointer = _new_code(booted, tmp_path, '("X-Served-By", "hello-app")]',
                        '("X-Served-By", "hello-app"), ("X-Release", "B")]')
    with load(booted.vm.url("/")) as results:
        started = time.monotonic()
        out = booted.sh(RELEASE, timeout=600)  # no ref: the pointer, from SSM as on EC2
        took = time.monotonic() - started
        time.sleep(2)  # and after it
    failed = [r for r in results if r[0] != 200]
    say(f"release B in {took:.0f}s on the VM under load: {len(results)} requests, "
        f"{len(failed)} failed, {sum(r[1] == 'B' for r in results)} answered by B")
    assert failed == [] and len(results) > 20, (failed[:5], out)
    assert results[0][1] == "A" and results[-1][1] == "B"
    second = booted.sh("readlink /srv/hello/current").strip()
    assert second != first and second == f"releases/bundle-{pointer[:12]}"
    assert out.strip().splitlines()[-1].startswith("release: serving bundle")
    # the same requirements: B's venv is A's, reused rather than rebuilt
    assert "(the same requirements: reused)" in out
    say(out.strip().splitlines()[-2])  # the release's phases

    # C answers /healthz with 500: the release must refuse it and keep B serving throughout.
    with load(booted.vm.url("/healthz")) as health:
        _new_code(booted, tmp_path, '"200 OK", b"ok\\n")',
                  '"500 Internal Server Error", b"broken\\n")')
        broken = booted.vm.ssh(RELEASE, timeout=600, check=False)
    say(f"broken release C: exit {broken.returncode}, {len(health)} health checks meanwhile, "
        f"{sum(h[0] != 200 for h in health)} failed")
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert "release: FAILED" in broken.stderr
    assert all(h[0] == 200 for h in health) and len(health) > 5
    assert booted.sh("readlink /srv/hello/current").strip() == second
    status, headers, _ = booted.get("/")
    assert (status, headers.get("X-Release")) == (200, "B")
    # the pointer back to B, as a rollback of appSource in `pulumi up` would leave it: B's
    # release is still on the server, so the next boot or release serves it without a fetch
    booted.staged.release_new_code(tmp_path / "src-0")
    again = booted.sh(RELEASE, timeout=600)
    assert "is already serving: nothing to do" in again, again


# --- faults --------------------------------------------------------------------------------

def test_killed_gunicorn_is_healthy_again_within_5s(booted: Booted) -> None:
    booted.sh("kill -KILL \"$(systemctl show -p MainPID --value webstack-hello)\"")
    killed = time.monotonic()
    # Waits past the bound only to say how long it took.
    back = wait_until(lambda: healthy(booted.vm.url("/healthz")), timeout=60, interval=0.1)
    took = time.monotonic() - killed
    say(f"healthy again {took:.1f}s after gunicorn was killed")
    assert back and took <= 5, (f"healthy again after {took:.1f}s" if back else "not healthy "
                                "within 60s") + "\n" + booted.sh(
        "journalctl -u webstack-hello -u webstack-hello.socket --no-pager -n 30 -o short-precise")


def test_reboot_comes_back_healthy_without_reinstalling(booted: Booted) -> None:
    before = _state(booted)
    setup_runs = booted.sh("grep -c 'webstack-setup: done' /var/log/cloud-init-output.log")
    boot_id = booted.sh("cat /proc/sys/kernel/random/boot_id")
    booted.vm.ssh("systemctl reboot", check=False, timeout=30)
    started = time.monotonic()
    url = booted.vm.url("/healthz")
    assert wait_until(lambda: not healthy(url), timeout=60), "the VM did not go down"
    assert wait_until(lambda: healthy(url), timeout=300, interval=1), "not healthy after reboot"
    say(f"healthy again {time.monotonic() - started:.0f}s after the reboot")
    assert wait_until(booted.vm.ssh_ready, timeout=120)
    assert booted.sh("cat /proc/sys/kernel/random/boot_id") != boot_id  # it did reboot
    after = _state(booted)
    changed = {k for k in before if before[k] != after[k]}
    assert changed == {"gunicorn-pid", "nginx-pid"}, (before, after)
    status = booted.vm.cloud_init_status(wait=120)
    assert (status["status"], status["errors"]) == ("done", []), json.dumps(status)
    # Per-instance modules did not run again: no second setup, no second package install.
    assert booted.sh("grep -c 'webstack-setup: done' /var/log/cloud-init-output.log") == \
        setup_runs
