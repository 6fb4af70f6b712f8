"""The renderer's contract, without external tools: what the user-data installs and how."""

from __future__ import annotations

import base64
import difflib
import hashlib
import io
import json
import os
import random
import re
import string
import subprocess
import sys
import tarfile
import tempfile
import tomllib
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from components import naming
from components.bootstrap import (
    EC2_USER_DATA_LIMIT,
    GUNICORN_VERSION,
    SERVER_DIR,
    USER_DATA_BUDGET,
    UV_VERSION,
    UV_WHEELS,
    BootstrapError,
    RenderedBootstrap,
    Target,
    pack,
    render,
)
from components.config import PROJECT_DIR, SAMPLE_APP_DIR, ConfigError, StackConfig, parse_stack
from devtools.localrun import local_target, read_env_file
from tests import variants
from tests.bootstrap.stacks import shipped
from tests.variants import make_cfg

UNIT_DIR = "/etc/systemd/system"
NO_RECOMMENDS = 'APT::Install-Recommends "false";\n'


def env_of(rendered: RenderedBootstrap, path: str) -> dict[str, str]:
    """A rendered env file as sh reads it."""
    with tempfile.NamedTemporaryFile("w", suffix=".env") as f:
        f.write(rendered.files[path])
        f.flush()
        return read_env_file(f.name)


def write_files(user_data: str) -> dict[str, dict[str, object]]:
    return {w["path"]: w for w in yaml.safe_load(user_data)["write_files"]}


def test_render_returns_the_cloud_config_and_every_file_it_writes() -> None:
    rendered = render(variants.cfg("plain"))
    assert rendered.user_data.startswith("#cloud-config\n")
    assert rendered.sha256 == hashlib.sha256(rendered.user_data.encode()).hexdigest()
    # The user-data carries the fetcher and the settings; the artefact every other file.
    lib = "/usr/local/lib/webstack/hello"
    entries = write_files(rendered.user_data)
    assert set(entries) == {f"{lib}/awsclient.py", f"{lib}/boot.env"}
    assert entries[f"{lib}/awsclient.py"]["encoding"] == "gz+b64"
    assert shipped(rendered) == rendered.files
    assert {p: int(str(e["permissions"]), 8) for p, e in entries.items()} == {
        f"{lib}/awsclient.py": 0o755, f"{lib}/boot.env": 0o644}
    with tarfile.open(fileobj=io.BytesIO(rendered.artefact)) as tar:
        assert {"/" + m.name: m.mode for m in tar.getmembers()} == {
            p: m for p, m in rendered.modes.items() if p not in entries}
    boot = env_of(rendered, f"{lib}/boot.env")
    assert boot["ARTEFACT_SHA256"] == hashlib.sha256(rendered.artefact).hexdigest()
    assert boot["ARTEFACT_KEY"] == f"artefacts/{rendered.artefact_sha256}.tar"
    # the programs' settings come in the artefact
    assert env_of(rendered, f"{lib}/settings.env")["HEALTH_URL"] == "http://127.0.0.1:80/healthz"
    doc = yaml.safe_load(rendered.user_data)
    assert doc["runcmd"] == [["/usr/bin/python3", f"{lib}/awsclient.py", "fetch"],
                             [f"{lib}/setup"]]
    for name in ("webstack-hello.socket", "webstack-hello.service"):
        assert f"{UNIT_DIR}/{name}" in rendered.files


def test_user_data_goes_to_ec2_as_is() -> None:
    rendered = render(variants.cfg("plain"))
    assert base64.b64decode(rendered.ec2_user_data_base64).decode() == rendered.user_data


@pytest.mark.parametrize("name", variants.NAMES)
def test_every_stack_fits_the_8_kb_budget_uncompressed(name: str) -> None:
    cfg = variants.cfg(name)
    sent = len(base64.b64decode(render(cfg).ec2_user_data_base64))
    assert sent <= USER_DATA_BUDGET < EC2_USER_DATA_LIMIT, (name, sent)


def test_big_app_settings_go_to_the_artefact_not_the_user_data() -> None:
    rng = random.Random(3)
    env = [f"V{i}=" + "".join(rng.choices(string.ascii_letters + string.digits, k=4000))
           for i in range(12)]
    big = render(make_cfg({"webstack:appEnv": json.dumps(env)}))
    assert len(big.user_data) == len(render(make_cfg({})).user_data)
    assert env[0].split("=", 1)[1] in big.files["/etc/webstack/hello/app.env"]


def test_user_data_over_ec2s_limit_is_a_clear_error() -> None:
    ca = (PROJECT_DIR / "tests/bootstrap/data/test-ca.pem").read_text()
    rendered = render(make_cfg({"webstack:extraCaCertFiles": json.dumps(
        ["tests/bootstrap/data/test-ca.pem"])}))
    huge = replace(rendered, user_data=rendered.user_data + ca * 30)
    with pytest.raises(BootstrapError, match=r"over EC2's 16384-byte limit: fewer or smaller "
                                             r"extraCaCertFiles"):
        _ = huge.ec2_user_data_base64


def test_artefact_depends_on_the_files_alone() -> None:
    """ustar, sorted, root-owned, mtime 0: the same bytes on any machine (its sha256 is in the
    user-data, so a difference would replace the servers)."""
    rendered = render(variants.cfg("full"))
    again = pack(dict(reversed(list(rendered.files.items()))), rendered.modes, "")
    carried = set(write_files(rendered.user_data))
    mine = pack({p: t for p, t in rendered.files.items() if p not in carried},
                rendered.modes, "")
    assert mine == rendered.artefact and again != mine  # the carried files are not in it
    with tarfile.open(fileobj=io.BytesIO(rendered.artefact)) as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == sorted(m.name for m in members)
    assert {(m.uid, m.gid, m.uname, m.gname, m.mtime) for m in members} == {(0, 0, "root",
                                                                             "root", 0)}


def test_env_values_go_to_a_root_only_file_and_secrets_are_fetched_by_name() -> None:
    cfg = variants.cfg("full")
    rendered = render(cfg)
    assert rendered.modes["/etc/webstack/shop/app.env"] == 0o600
    assert 'DJANGO_SETTINGS_MODULE="site.settings.prod"' in shipped(rendered)[
        "/etc/webstack/shop/app.env"]
    # Secret variables are never in the user-data, only the parameter names to fetch.
    assert "DATABASE_URL=" not in rendered.user_data
    mapping = json.loads(rendered.files["/etc/webstack/shop/secrets.json"])
    assert mapping == {"DATABASE_URL": "/shop/prod/database-url",
                       "SECRET_KEY": "/shop/prod/secret-key"}
    service = rendered.files[f"{UNIT_DIR}/webstack-shop.service"]
    assert "EnvironmentFile=/run/webstack/shop/secrets.env" in service
    assert "Requires=webstack-shop-secrets.service" in service
    secrets_unit = rendered.files[f"{UNIT_DIR}/webstack-shop-secrets.service"]
    assert "ssm-get /etc/webstack/shop/secrets.json" in secrets_unit
    assert "UMask=0077" in secrets_unit


def _gunicorn_settings(rendered: RenderedBootstrap, app: str) -> dict[str, object]:
    scope: dict[str, object] = {}
    exec(rendered.files[f"/etc/webstack/{app}/gunicorn.conf.py"], scope)
    return scope


def test_workers_default_to_two_per_cpu_plus_one_and_can_be_pinned() -> None:
    default = _gunicorn_settings(render(make_cfg({})), "hello")
    assert default["workers"] == 2 * len(os.sched_getaffinity(0)) + 1
    assert (default["worker_class"], default["threads"]) == ("gthread", 4)
    # A worker takes a connection only with a free thread, and closes it after the response.
    assert (default["worker_connections"], default["keepalive"]) == (4, 0)
    assert default["control_socket"] == "/run/hello/gunicorn.ctl"
    pinned = _gunicorn_settings(render(make_cfg({"webstack:appWorkers": "3",
                                                 "webstack:appTimeoutSeconds": "90"})), "hello")
    assert (pinned["workers"], pinned["timeout"]) == (3, 90)


def test_service_is_hardened_restarts_and_reloads_gracefully() -> None:
    service = render(make_cfg({})).files[f"{UNIT_DIR}/webstack-hello.service"]
    for line in ("Restart=always", "ExecReload=/bin/kill -s HUP $MAINPID", "NoNewPrivileges=yes",
                 "ProtectSystem=strict", "PrivateTmp=yes", "User=hello", "Type=notify",
                 "Requires=webstack-hello.socket"):
        assert line in service.splitlines()


def test_load_balanced_nginx_trusts_forwarded_ips_only_from_the_vpc() -> None:
    def site(raw: dict[str, str]) -> str:
        return render(make_cfg(raw)).files["/etc/nginx/conf.d/hello.conf"]

    assert "set_real_ip_from 10.42.0.0/16;" in site(variants.raw("alb-acm"))
    default_vpc = {**variants.raw("alb-acm"), "webstack:networkCreateVpc": "false"}
    assert "set_real_ip_from 172.31.0.0/16;" in site(default_vpc)
    assert "set_real_ip_from" not in site(variants.raw("plain"))
    assert "certbot" not in render(variants.cfg("alb-acm")).user_data


def test_the_code_is_in_neither_user_data_nor_artefact_but_fetched_from_the_bucket() -> None:
    bundled = render(make_cfg({}), bucket="the-bucket")
    app_py = (SAMPLE_APP_DIR / "app.py").read_text()
    assert not any(text == app_py for text in bundled.files.values())
    assert app_py not in bundled.user_data
    lib = "/usr/local/lib/webstack/hello"
    assert f"{lib}/fetch-app" not in bundled.files
    assert bundled.files[f"{lib}/fetch-bundle"] == (SERVER_DIR / "fetch_bundle.py").read_text()
    settings = env_of(bundled, f"{lib}/settings.env")
    assert (settings["APP_SOURCE"], settings["BUNDLE_BUCKET"], settings["BUNDLE_KEY"]) == (
        "bundle", "the-bucket", "bundles/hello.tar")
    assert settings["REF_PARAMETER"] == "/webstack/dev/hello/release-ref"  # the pointer
    git = render(variants.cfg("full"))
    assert not any(p.startswith("/srv/") for p in git.files)
    assert git.files["/usr/local/lib/webstack/shop/fetch-app"] == (
        SERVER_DIR / "fetch_app.sh").read_text()
    assert "/usr/local/lib/webstack/shop/fetch-bundle" not in git.files
    settings = env_of(git, "/usr/local/lib/webstack/shop/settings.env")
    assert (settings["APP_SOURCE"], settings["APP_REPO"], settings["BUNDLE_KEY"]) == (
        "git", "https://git.example.com/acme/shop.git", "")


def test_the_data_directory_is_the_apps_and_named_in_its_environment() -> None:
    rendered = render(make_cfg({}))
    env = rendered.files["/etc/webstack/hello/app.env"]
    assert 'APP_DATA_DIR="/var/lib/webstack/hello/data"' in env.splitlines()
    settings = env_of(rendered, "/usr/local/lib/webstack/hello/settings.env")
    assert settings["DATA_DIR"] == "/var/lib/webstack/hello/data"
    unit = rendered.files[f"{UNIT_DIR}/webstack-hello.service"]
    assert "StateDirectory=webstack/hello/data" in unit  # writable under ProtectSystem=strict


def test_build_commands_are_a_script_of_their_own_run_per_release() -> None:
    cfg = make_cfg({"webstack:appBuild": '["python manage.py collectstatic --noinput", "echo ok"]'})
    rendered = render(cfg)
    build = rendered.files["/usr/local/lib/webstack/hello/build"]
    assert build.splitlines()[-2:] == ["python manage.py collectstatic --noinput", "echo ok"]
    assert rendered.modes["/usr/local/lib/webstack/hello/build"] == 0o755
    assert env_of(rendered, "/usr/local/lib/webstack/hello/settings.env")["BUILD"] == "1"
    assert "/usr/local/lib/webstack/hello/build" not in render(make_cfg({})).files


def test_migrations_are_a_script_run_through_migrate_once_before_pre_start() -> None:
    cfg = make_cfg({"webstack:appMigrate": '["flask db upgrade", "echo migrated"]',
                    "webstack:appPreStart": '["echo pre"]', "webstack:appBuild": '["echo b"]'})
    rendered = render(cfg)
    lib = "/usr/local/lib/webstack/hello"
    migrate = rendered.files[f"{lib}/migrate"]
    assert migrate.splitlines()[-2:] == ["flask db upgrade", "echo migrated"]
    assert "webstack:appMigrate" in migrate and rendered.modes[f"{lib}/migrate"] == 0o755
    assert rendered.files[f"{lib}/migrate-once"] == (SERVER_DIR / "migrate.py").read_text()
    settings = env_of(rendered, f"{lib}/settings.env")
    assert (settings["MIGRATE"], settings["DATABASE_PARAMETER"]) == ("1", "")  # on each server
    release = rendered.files[f"{lib}/release"]
    # after the build, before the pre-start hooks and the candidate check, as the app's user
    order = [release.index(text) for text in (
        '"$lib/build" "$dir"', '"$lib/migrate-once"', '"$lib/pre-start" "$dir"',
        "  check_candidate\nfi")]
    assert order == sorted(order)
    assert ('migrate=(runuser -u "$user" -- env HOME="$home" /usr/bin/python3 '
            '"$lib/migrate-once"') in release and '(app_env; exec "${migrate[@]}")' in release
    assert "phase migrate" in release
    plain = render(make_cfg({})).files
    assert f"{lib}/migrate" not in plain and f"{lib}/migrate-once" not in plain


@pytest.mark.parametrize(("name", "clients"), [
    ("db-postgres-valkey", ["postgresql-client"]),
    ("db-mysql-memcached", ["default-mysql-client-core"]),
    # a database the user brings: its engine is in its secret, known only at run time
    ("db-byo", ["default-mysql-client-core", "postgresql-client"]),
])
def test_a_database_or_cache_reaches_the_app_through_the_secrets_unit(
        name: str, clients: list[str]) -> None:
    cfg = variants.cfg(name)
    assert not cfg.app.secrets  # no appSecrets: the database or the cache alone asks for it
    rendered = render(cfg)
    lib, unit = "/usr/local/lib/webstack/hello", f"{UNIT_DIR}/webstack-hello"
    settings = env_of(rendered, f"{lib}/settings.env")
    assert settings["SECRETS"] == "1" and settings["MIGRATE"] == "1"
    assert settings["DATABASE_PARAMETER"] == naming.database_parameter(cfg)
    assert settings["CACHE_PARAMETER"] == (naming.cache_parameter(cfg) if cfg.cache.enabled
                                           else "")
    assert json.loads(rendered.files["/etc/webstack/hello/secrets.json"]) == {}
    service = rendered.files[f"{unit}.service"]
    for line in ("Requires=webstack-hello-secrets.service", "After=webstack-hello-secrets.service",
                 "EnvironmentFile=/run/webstack/hello/secrets.env"):
        assert line in service.splitlines()
    secrets = rendered.files[f"{unit}-secrets.service"]
    assert "Description=hello secrets from SSM Parameter Store and Secrets Manager" in secrets
    assert f"{lib}/ssm-get /etc/webstack/hello/secrets.json" in secrets
    # a rotated password: fetched again every 5 minutes, each server at its own moment
    refresh = rendered.files[f"{unit}-secrets-refresh.service"]
    assert f"ExecStart={lib}/release --refresh-secrets" in refresh.splitlines()
    timer = rendered.files[f"{unit}-secrets-refresh.timer"].splitlines()
    assert {"OnActiveSec=5min", "OnUnitInactiveSec=5min", "RandomizedDelaySec=1min"} <= set(timer)
    packages = yaml.safe_load(rendered.user_data)["packages"]
    assert sorted(set(packages) & {"postgresql-client", "default-mysql-client-core"}) == clients
    # without migrations no client; without a database or cache no refresh
    quiet = render(make_cfg({**variants.raw(name), "webstack:appMigrate": "[]"}, cfg.stack))
    assert not {"postgresql-client", "default-mysql-client-core"} & set(
        yaml.safe_load(quiet.user_data)["packages"])
    assert f"{unit}-secrets-refresh.timer" not in render(variants.cfg("full")).files


def test_a_git_apps_ref_is_read_from_ssm_on_ec2_and_inline_locally() -> None:
    """A new ref must not change the user-data (that would replace the servers)."""
    raw = {**variants.raw("full"), "webstack:appRef": "release-2031-07-unique"}
    cfg = make_cfg(raw)
    server = render(cfg)
    assert "release-2031-07-unique" not in server.user_data
    assert not any("release-2031-07-unique" in text for text in server.files.values())
    other = render(make_cfg({**raw, "webstack:appRef": "v9.9.9"}))
    assert other.user_data == server.user_data
    release = server.files["/usr/local/lib/webstack/shop/release"]
    settings = env_of(server, "/usr/local/lib/webstack/shop/settings.env")
    assert naming.release_ref_parameter(cfg) == "/webstack/dev/shop/release-ref"
    assert settings["REF_PARAMETER"] == "/webstack/dev/shop/release-ref"
    assert ('"$lib/ssm-get" --get "$REF_PARAMETER"' in release
            and "/usr/local/lib/webstack/shop/ssm-get" in server.files)
    local = render(cfg, local_target(Path("/tmp/x"), 8080, 8443, Path("/opt/venv")))
    local_settings = env_of(local, "/tmp/x/usr/local/lib/webstack/shop/settings.env")
    assert (local_settings["REF_PARAMETER"], local_settings["APP_REF"]) == (
        "", "release-2031-07-unique")
    assert "ref=${ref:-$APP_REF}" in release
    # A bundle's release is its pointer (sha256@version), never appRef.
    bundled = render(make_cfg({"webstack:appRef": "release-2031-07-unique"}))
    assert not any("release-2031-07-unique" in text for text in bundled.files.values())
    local_bundle = render(make_cfg({}), local_target(Path("/tmp/x"), 8080, 8443))
    assert env_of(local_bundle, "/tmp/x/usr/local/lib/webstack/hello/settings.env")[
        "APP_REF"] == ""


def test_letsencrypt_keeps_its_certificate_in_ssm_and_retries_from_a_timer() -> None:
    cfg = variants.cfg("letsencrypt")
    files = render(cfg).files
    lib, units = "/usr/local/lib/webstack/hello", UNIT_DIR
    tls = files[f"{lib}/tls"]
    assert naming.tls_parameter(cfg) == "/webstack/dev/hello/tls/letsencrypt"
    assert "slot=$TLS_PARAMETER\n" in tls
    assert 'TLS_PARAMETER="/webstack/dev/hello/tls/letsencrypt"\n' in files[f"{lib}/settings.env"]
    assert 'ssm=("$lib/ssm-get")' in tls
    assert '--deploy-hook "$lib/tls deployed"' in tls
    ssm_get = files[f"{lib}/ssm-get"]
    assert '"Type": "SecureString",\n                           "Tier": conf["TLS_TIER"]' in ssm_get
    assert 'TLS_TIER="Advanced"\n' in files[f"{lib}/settings.env"]
    # setup asks once and goes on: the timer retries, no boot fails for a certificate
    setup = files[f"{lib}/setup"]
    assert "certbot" not in setup.replace("certbot.timer", "")
    assert '"$lib/tls" issue || log ' in setup
    assert 'systemctl enable --now --quiet certbot.timer "$unit-tls.timer"' in setup
    service = files[f"{units}/webstack-hello-tls.service"]
    assert f"ExecStart={lib}/tls issue\n" in service and "TimeoutStartSec=10min" in service
    timer = files[f"{units}/webstack-hello-tls.timer"]
    assert re.findall(r"^OnActiveSec=(\d+)min$", timer, re.M) == [str(m) for m in range(2, 31, 2)]
    assert re.findall(r"^On\w+=.*$", timer, re.M)[-1] == "OnCalendar=hourly"
    assert "WantedBy=timers.target" in timer
    assert not [p for p in files if "certbot-deploy-hook" in p]


def test_ssm_get_is_the_server_program_as_it_is() -> None:
    lib = "/usr/local/lib/webstack"
    le = render(variants.cfg("letsencrypt")).files[f"{lib}/hello/ssm-get"]
    assert le == (SERVER_DIR / "ssm_get.py").read_text()
    # a local run has no SSM: nothing to read or write the certificate with
    local = render(variants.cfg("letsencrypt"),
                   local_target(Path("/tmp/x"), 8080, 8443, Path("/opt/venv")))
    assert f"/tmp/x{lib}/hello/ssm-get" not in local.files


def test_release_script_and_the_service_agree_on_the_layout() -> None:
    files = render(make_cfg({"webstack:appReleasesKept": "3"})).files
    release = files["/usr/local/lib/webstack/hello/release"]
    service = files[f"{UNIT_DIR}/webstack-hello.service"]
    settings = files["/usr/local/lib/webstack/hello/settings.env"]
    assert "keep=$RELEASES_KEPT\n" in release and 'RELEASES_KEPT="3"\n' in settings
    assert 'CURRENT="/srv/hello/current"\n' in settings
    assert 'RELEASES="/srv/hello/releases"\n' in settings
    assert '"gunicorn==$GUNICORN_VERSION"' in release
    assert ("ExecStart=/srv/hello/current/venv/bin/gunicorn "
            "--config /etc/webstack/hello/gunicorn.conf.py") in service
    assert "WorkingDirectory=/srv/hello/current/src" in service.splitlines()
    # A release restarts gunicorn (new venv) instead of a HUP from the old interpreter.
    assert 'systemctl restart "$unit.service"' in release
    assert 'systemctl reload "' not in release


def test_gunicorn_logs_to_a_file_the_cloudwatch_agent_ships() -> None:
    rendered = render(make_cfg({}))
    conf = _gunicorn_settings(rendered, "hello")
    assert (conf["errorlog"], conf["capture_output"]) == (
        "/var/log/webstack/hello/error.log", True)
    service = rendered.files[f"{UNIT_DIR}/webstack-hello.service"]
    assert "LogsDirectory=webstack/hello" in service.splitlines()
    assert "/var/log/webstack/hello/*.log {" in rendered.files[
        "/etc/logrotate.d/webstack-hello"]


def test_sources_use_cloud_init_modules() -> None:
    cfg = variants.cfg("full")
    doc = yaml.safe_load(render(cfg).user_data)
    mirror = [{"arches": ["default"], "uri": "https://mirror.example.com/ubuntu"}]
    assert doc["apt"] == {"conf": NO_RECOMMENDS, "preserve_sources_list": False,
                          "primary": mirror, "security": mirror}
    assert doc["ca_certs"] == {"trusted": list(cfg.sources.extra_ca_certs)}
    uv_toml = tomllib.loads(render(cfg).files["/etc/webstack/shop/uv.toml"])
    assert uv_toml["pip"] == {"index-url": "https://pypi.example.com/simple/"}
    assert uv_toml["system-certs"] is True  # the extra CAs are in the system's store
    debian = yaml.safe_load(render(make_cfg({"webstack:aptMirror": "http://deb.example/debian"}))
                            .user_data)
    assert set(debian["apt"]) == {"conf", "preserve_sources_list", "primary"}
    default = yaml.safe_load(render(make_cfg({})).user_data)
    # No mirror: the image's sources stay (Debian's cloud.cfg preserves them; no key to undo it).
    assert "ca_certs" not in debian and default["apt"] == {"conf": NO_RECOMMENDS}
    assert "pip" not in tomllib.loads(render(make_cfg({})).files["/etc/webstack/hello/uv.toml"])


def test_packages_are_what_the_app_needs_and_no_recommended_extras() -> None:
    bundled = yaml.safe_load(render(make_cfg({}), Target(ec2=False)).user_data)["packages"]
    assert bundled == ["ca-certificates", "logrotate", "nginx", "python3", "unattended-upgrades"]
    ec2 = yaml.safe_load(render(make_cfg({})).user_data)["packages"]
    assert set(ec2) - set(bundled) == {"curl"}  # for the SSM and CloudWatch agents
    from_git = yaml.safe_load(render(make_cfg({"webstack:appRepo": "https://git.example.com/a.git"}),
                                     Target(ec2=False)).user_data)["packages"]
    assert set(from_git) - set(bundled) == {"git"}  # and no python3-venv: uv makes the venvs


def test_uv_is_fetched_during_the_package_installs_and_again_by_setup() -> None:
    rendered = render(make_cfg({}))
    lib = "/usr/local/lib/webstack/hello"
    [bootcmd] = yaml.safe_load(rendered.user_data)["bootcmd"]
    # Started now, run once cloud-config is done (the script and the CAs exist by then); its
    # failure never fails the boot, since setup fetches again (waiting on the same lock).
    # bootcmd runs on every boot; the early fetch only on the first (a reboot keeps the files)
    assert bootcmd.startswith("cloud-init-per instance webstack-hello-early systemd-run --quiet "
                              "--no-block --collect --unit=webstack-hello-uv ")
    assert bootcmd.endswith(
        f" --property=After=cloud-config.service /bin/sh -c '/usr/bin/python3 {lib}/awsclient.py"
        f" fetch --only {lib} && /usr/bin/python3 {lib}/fetch-uv' || true")
    assert ' || "$lib/fetch-uv"\n' in rendered.files[f"{lib}/setup"]
    assert 'fcntl.flock' in rendered.files[f"{lib}/fetch-uv"]
    local = render(make_cfg({}), local_target(Path("/tmp/x"), 8080, 8443, Path("/opt/v")))
    assert "bootcmd" not in yaml.safe_load(local.user_data)  # local runs bring their own uv


def test_uv_is_pinned_per_arch_to_the_development_version() -> None:
    pins = (PROJECT_DIR / "requirements-dev.txt").read_text().splitlines()
    assert f"uv=={UV_VERSION}" in pins
    for arch, machine in (("x86_64", "x86_64"), ("arm64", "aarch64")):
        settings = env_of(render(make_cfg({"webstack:serverArch": arch})),
                          "/usr/local/lib/webstack/hello/settings.env")
        wheel, sha = UV_WHEELS[arch]
        assert wheel.startswith(f"uv-{UV_VERSION}-py3-none-manylinux") and machine in wheel
        assert re.fullmatch(r"[0-9a-f]{64}", sha)
        assert (settings["UV_WHEEL"], settings["UV_SHA256"]) == (wheel, sha)
    assert UV_WHEELS["x86_64"][1] != UV_WHEELS["arm64"][1]


def test_server_installs_the_same_gunicorn_as_the_loopback_run() -> None:
    pins = (PROJECT_DIR / "requirements-dev.txt").read_text().splitlines()
    assert f"gunicorn=={GUNICORN_VERSION}" in pins
    assert f'GUNICORN_VERSION="{GUNICORN_VERSION}"\n' in render(make_cfg({})).files[
        "/usr/local/lib/webstack/hello/settings.env"]


def test_unattended_security_upgrades_are_enabled() -> None:
    rendered = render(make_cfg({}))
    assert "unattended-upgrades" in yaml.safe_load(rendered.user_data)["packages"]
    periodic = rendered.files["/etc/apt/apt.conf.d/20auto-upgrades"]
    assert 'APT::Periodic::Unattended-Upgrade "1";' in periodic


@pytest.mark.parametrize(("raw", "message"), [
    ({"webstack:appName": "www-data"}, "webstack:appName = 'www-data': expected a name"),
    ({"webstack:appName": "root"}, "webstack:appName = 'root'"),
    ({"webstack:appPath": "src"}, "webstack:appPath = 'src': expected a directory inside"),
])
def test_settings_the_server_cannot_honour_are_refused(raw: dict[str, str], message: str) -> None:
    """Refused with the other settings' problems, before anything is rendered."""
    with pytest.raises(ConfigError, match=message):
        make_cfg(raw)


def test_render_script_writes_the_user_data_and_every_file(tmp_path: Path) -> None:
    stack = tmp_path / "Pulumi.review.yaml"
    stack.write_text(yaml.safe_dump({"config": {
        "aws:region": "us-east-1", "webstack:appName": "review", "webstack:serverCount": 1,
        "webstack:networkCreateVpc": False, "webstack:appEnv": ["A=1", "B=two words"]}}))
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, str(PROJECT_DIR / "scripts" / "render.py"),
                           "--stack", "review", "--out", str(out),
                           "--project-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    expected = render(parse_stack("review", project_dir=tmp_path))
    assert (out / "user-data").read_text() == expected.user_data
    written = {"/" + str(p.relative_to(out / "files")): p.read_text()
               for p in (out / "files").rglob("*") if p.is_file()}
    assert written == expected.files
    assert 'B="two words"' in expected.files["/etc/webstack/review/app.env"]
    assert (out / "files/etc/webstack/review/app.env").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("name", variants.NAMES)
def test_local_runs_use_the_server_files_but_for_root_ports_and_venv(
        name: str, tmp_path: Path) -> None:
    """What nginx -t, systemd-analyze and the loopback run check is what servers get."""
    cfg = variants.cfg(name)
    server = render(cfg)
    local = render(cfg, local_target(tmp_path, 8080, 8443, Path("/opt/dev-venv")))
    root = str(tmp_path)
    # EC2 alone reads a git app's ref from SSM (local runs keep it inline); servers fetch uv,
    # local runs use the developer's.
    lib = f"/usr/local/lib/webstack/{cfg.app.name}"
    ec2_only_files = {f"{lib}/ssm-get"} - {p.removeprefix(root) for p in local.files}
    server_only_files = {*ec2_only_files, f"{lib}/fetch-uv"}
    assert {p.removeprefix(root) for p in local.files} == set(server.files) - server_only_files
    assert not cfg.app.secrets or not ec2_only_files
    allowed = re.compile(r"^[-+]\s*(listen |set_real_ip_from |return 301 https://\$host|"
                         r"url = \"https?://127\.0\.0\.1:|venv_shared=|"  # pre-start's
                         # settings: the artefact, uv, the agents and the ref (SSM) are EC2's
                         r"(ARTEFACT_KEY|ARTEFACT_SHA256|UV|ROOT|FETCH_UV|VENV_SHARED|"
                         r"HEALTH_URL|APP_REF|REF_PARAMETER|SSM_AGENT_URL|CW_AGENT_URL)=)")
    for path, text in server.files.items():
        if path in server_only_files:
            continue
        other = (local.files[root + path].replace(root, "")
                 .replace("/opt/dev-venv", f"/srv/{cfg.app.name}/current/venv"))
        changed = [line for line in difflib.unified_diff(text.splitlines(), other.splitlines(),
                                                         lineterm="", n=0)
                   if line[:1] in "+-" and not line.startswith(("+++", "---"))]
        assert all(allowed.match(line) for line in changed), (path, changed)


@pytest.mark.parametrize(("os_name", "arch", "expected"), [
    ("debian-12", "x86_64", "/latest/debian_amd64/amazon-ssm-agent.deb"),
    ("debian-12", "arm64", "/latest/debian_arm64/amazon-ssm-agent.deb"),
    ("ubuntu-24.04", "x86_64", None),  # Ubuntu's images ship the agent
])
def test_ssm_agent_on_ec2_images_that_lack_it(os_name: str, arch: str,
                                              expected: str | None) -> None:
    cfg = make_cfg({"webstack:serverOs": os_name, "webstack:serverArch": arch})
    rendered = render(cfg)
    url = env_of(rendered, "/usr/local/lib/webstack/hello/settings.env")["SSM_AGENT_URL"]
    if expected is None:
        assert url == ""
    else:
        assert url == f"https://s3.us-east-1.amazonaws.com/amazon-ssm-us-east-1{expected}"
        assert "curl" in rendered.user_data
    setup = rendered.files["/usr/local/lib/webstack/hello/setup"]
    assert 'install_deb amazon-ssm-agent "$SSM_AGENT_URL" 120 ' in setup
    local = render(cfg, local_target(Path("/tmp/x"), 8080, 8443, Path("/opt/venv")))
    assert env_of(local, "/tmp/x/usr/local/lib/webstack/hello/settings.env")["SSM_AGENT_URL"] == ""
    vm = render(cfg, Target(agents=False))  # the local VM: no agent downloads
    assert env_of(vm, "/usr/local/lib/webstack/hello/settings.env")["SSM_AGENT_URL"] == ""


# --- CloudWatch agent (EC2 only) ----------------------------------------------------------------

# The keys the agent's schema (amazon-cloudwatch-agent translator/config/schema.json) allows
# where ours sit; it rejects unknown keys in `metrics`, a collect_list item and `logs`.
_CW_METRICS_KEYS = {"namespace", "aggregation_dimensions", "append_dimensions",
                    "metrics_collected", "force_flush_interval", "credentials",
                    "endpoint_override", "metrics_destinations"}
_CW_FILE_KEYS = {"file_path", "log_group_name", "log_stream_name", "log_group_class",
                 "multi_line_start_pattern", "timestamp_format", "timezone", "encoding",
                 "auto_removal", "blacklist", "publish_multi_logs", "retention_in_days",
                 "filters", "trim_timestamp", "backpressure_mode"}


def _cw(cfg_name: str) -> tuple[dict[str, object], dict[str, str], StackConfig]:
    cfg = variants.cfg(cfg_name)
    files = render(cfg).files
    return json.loads(files[f"/etc/webstack/{cfg.app.name}/cloudwatch-agent.json"]), files, cfg


def _app_log(cfg: StackConfig, files: dict[str, str]) -> str:
    """The app's log file as its server's own configuration names it."""
    app = cfg.app.name
    if cfg.app.container:
        return _container_log(files, app)
    if cfg.app.uwsgi:
        ini = files[f"/etc/webstack/{app}/uwsgi.ini"]
        return next(line.split("=", 1)[1].strip() for line in ini.splitlines()
                    if line.startswith("logto"))
    return str(_gunicorn_settings(render(cfg), app)["errorlog"])


def _container_log(files: dict[str, str], app: str) -> str:
    """The file the container log unit appends the containers' journal to."""
    unit = files[f"/etc/systemd/system/webstack-{app}-container-log.service"]
    return unit.split("StandardOutput=append:", 1)[1].split("\n", 1)[0]


@pytest.mark.parametrize("name", variants.NAMES)
def test_cloudwatch_agent_config_has_the_metrics_and_logs_the_alarms_and_groups_expect(
        name: str) -> None:
    conf, files, cfg = _cw(name)
    assert set(conf) == {"agent", "metrics", "logs"}
    agent = conf["agent"]
    assert isinstance(agent, dict) and agent["run_as_user"] == "root"  # reads nginx's 0640 logs
    assert 1 <= agent["metrics_collection_interval"] <= 172800
    metrics = conf["metrics"]
    assert isinstance(metrics, dict) and set(metrics) <= _CW_METRICS_KEYS
    assert metrics["namespace"] == naming.METRICS_NAMESPACE
    assert metrics["append_dimensions"] == {"InstanceId": "${aws:InstanceId}",
                                            "AutoScalingGroupName": "${aws:AutoScalingGroupName}"}
    assert metrics["aggregation_dimensions"] == [["AutoScalingGroupName"], ["InstanceId"]]
    assert metrics["metrics_collected"] == {
        "mem": {"measurement": ["mem_used_percent"]},
        "disk": {"measurement": ["used_percent"], "resources": ["/"], "drop_device": True}}
    logs = conf["logs"]
    assert isinstance(logs, dict) and set(logs) == {"logs_collected"}
    collect = logs["logs_collected"]["files"]["collect_list"]
    for item in collect:
        assert set(item) <= _CW_FILE_KEYS and item["file_path"].startswith("/")
        # The program creates the groups with their retention: the agent must leave it alone.
        assert "retention_in_days" not in item and item["log_stream_name"] == "{instance_id}"
    by_group = {item["log_group_name"]: item["file_path"] for item in collect}
    groups = naming.log_groups(cfg)
    app = cfg.app.name
    site = files[f"/etc/nginx/conf.d/{app}.conf"]
    # a static site has no app process, so no app log (nginx's logs are the site's)
    app_log = {} if cfg.app.static else {
        groups["app"]: _app_log(cfg, files)}
    assert by_group == {
        groups["nginx-access"]: f"/var/log/nginx/{app}.access.log",
        groups["nginx-error"]: f"/var/log/nginx/{app}.error.log",
        **app_log,
        groups["cloud-init"]: "/var/log/cloud-init-output.log"}
    # ... and those are the files nginx and gunicorn really write.
    assert f"access_log /var/log/nginx/{app}.access.log " in site
    assert f"error_log /var/log/nginx/{app}.error.log;" in site


@pytest.mark.parametrize(("os_name", "arch", "path"), [
    ("debian-12", "x86_64", "debian/amd64"),
    ("debian-12", "arm64", "ubuntu/arm64"),  # AWS builds no debian/arm64 package
    ("ubuntu-24.04", "x86_64", "ubuntu/amd64"),
    ("ubuntu-24.04", "arm64", "ubuntu/arm64"),
])
def test_cloudwatch_agent_is_installed_and_started_on_ec2_only(os_name: str, arch: str,
                                                               path: str) -> None:
    cfg = make_cfg({"webstack:serverOs": os_name, "webstack:serverArch": arch})
    rendered = render(cfg)
    setup = rendered.files["/usr/local/lib/webstack/hello/setup"]
    url = (f"https://s3.us-east-1.amazonaws.com/amazoncloudwatch-agent-us-east-1/{path}/latest/"
           "amazon-cloudwatch-agent.deb")
    assert env_of(rendered, "/usr/local/lib/webstack/hello/settings.env")["CW_AGENT_URL"] == url
    assert ("amazon-cloudwatch-agent-ctl -a fetch-config -m ec2 -s \\\n"
            '    -c "file:$etc/cloudwatch-agent.json"') in setup
    # installed and configured only when the settings name a download
    assert 'install_deb amazon-cloudwatch-agent "$CW_AGENT_URL" 300 ' in setup
    assert 'if [ -n "$CW_AGENT_URL" ] && [ "$agent_conf" != ' in setup
    local = render(cfg, local_target(Path("/tmp/x"), 8080, 8443, Path("/opt/venv")))
    assert env_of(local, "/tmp/x/usr/local/lib/webstack/hello/settings.env")["CW_AGENT_URL"] == ""


def test_no_script_can_echo_a_secret_into_a_log() -> None:
    """No `set -x` anywhere; secret values are only in /run, never in the user-data; the
    release script's messages pass through the redactor (see tests/release)."""
    cfg = variants.cfg("full")
    rendered = render(cfg)
    for path, text in rendered.files.items():
        assert not re.search(r"^\s*set\s+-[a-wyz]*x", text, re.M), path
        assert "bash -x" not in text and "xtrace" not in text, path
    release = rendered.files["/usr/local/lib/webstack/shop/release"]
    assert '"$lib/probe" redact "${redact[@]}"' in release
    assert 'redact=(--redact "$SECRETS_ENV")' in release
    assert 'SECRETS_ENV="/run/webstack/shop/secrets.env"\n' in rendered.files[
        "/usr/local/lib/webstack/shop/settings.env"]


def test_the_https_redirect_names_the_port_clients_reach() -> None:
    cfg = variants.cfg("selfsigned")
    site = "/etc/nginx/conf.d/hello.conf"
    assert "return 301 https://$host$request_uri;" in render(cfg).files[site]
    # The local VM: nginx listens on 443, the host forwards 127.0.0.1:8443 to it.
    forwarded = render(cfg, Target(ec2=False, public_https_port=8443)).files[site]
    assert "return 301 https://$host:8443$request_uri;" in forwarded
    assert "listen 443 ssl" in forwarded
