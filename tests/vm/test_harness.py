"""The VM harness's own logic, without booting anything: what `local_vm.py up` renders, the
seed it writes, how it reads a failed boot, that it refuses taken ports before starting, and how
it publishes the host's database and cache as the stack's."""

from __future__ import annotations

import json
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from components import naming
from components.config import PROJECT_DIR, SAMPLE_APP_DIR, stack_file_settings
from devtools import local_aws
from devtools import vm as vm_module
from devtools.vm import Ports, Vm, VmError, choose_accel, failed_modules, write_seed
from devtools.vm_image import Image
from devtools.vm_up import stage, vm_config
from scripts.bench_converge import floor_user_data
from tests.cases import ssh_key

KEY = ssh_key(comment="harness@test")


def test_vm_config_is_the_stack_with_local_overrides() -> None:
    cfg = vm_config("prod", KEY)  # two servers behind an ALB with ACM: one server in the VM
    assert cfg.server.count == 1 and not cfg.load_balanced
    # a git app's VM deploys the sample app as a bundle (no git server); a bundle app its own
    assert not cfg.app.from_git and cfg.app.path == "" and cfg.app.source == str(SAMPLE_APP_DIR)
    assert vm_config("prod", KEY, {"webstack:appHealthPath": "/up"}).app.health_path == "/up"
    # an example's stack file as overrides cannot undo what the VM needs (HTTPS, one server)
    pinned = vm_config("dev", KEY, {"webstack:tlsMode": "none", "webstack:serverCount": "3"})
    assert pinned.tls.mode == "selfsigned" and pinned.server.count == 1
    assert cfg.tls.mode == "selfsigned"
    assert cfg.access.ssh_public_key == KEY
    assert vm_config("dev", KEY, {"webstack:appName": "other"}).app.name == "other"


def test_seed_is_a_cidata_iso_with_our_user_data(tmp_path: Path) -> None:
    seed = tmp_path / "seed.iso"
    write_seed(seed, "#cloud-config\n{}\n", "dev-vm")
    info = subprocess.run(["isoinfo", "-d", "-i", str(seed)], capture_output=True, text=True,
                          check=True, timeout=30).stdout
    assert "Volume id: cidata" in info
    meta = subprocess.run(["isoinfo", "-R", "-i", str(seed), "-x", "/meta-data"],
                          capture_output=True, text=True, check=True, timeout=30).stdout
    assert yaml.safe_load(meta)["local-hostname"] == "dev-vm"
    user = subprocess.run(["isoinfo", "-R", "-i", str(seed), "-x", "/user-data"],
                          capture_output=True, text=True, check=True, timeout=30).stdout
    assert user == "#cloud-config\n{}\n"


def test_failed_modules_are_read_from_the_console() -> None:
    console = (
        "[  60.1] cloud-init[486]: 2026-11-21 08:08:57,506 - util.py[WARNING]: Running module "
        "package-update-upgrade-install (<module 'cloudinit.config.cc_package_update_upgrade_"
        "install' from '/usr/lib/python3/dist-packages/cloudinit/config/x.py'>) failed\n"
        "[  70.2] cloud-init[486]: util.py[WARNING]: Running module scripts-user (<module "
        "'cloudinit.config.cc_scripts_user'>) failed\n")
    assert failed_modules(console) == ["package-update-upgrade-install", "scripts-user"]
    assert failed_modules("Running module ssh (<module 'x'>) with frequency once") == []


def test_taken_port_is_refused_before_anything_starts(tmp_path: Path) -> None:
    vm = Vm(tmp_path / "vm")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        port = busy.getsockname()[1]
        with pytest.raises(VmError, match=f"port\\(s\\) taken: 127.0.0.1:{port}"):
            vm.start(Image(tmp_path / "no-image"), "#cloud-config\n", "tcg",
                     Ports(http=port, https=port + 1, ssh=port + 2), "dev-vm")
    assert not vm.dir.exists()  # nothing was created, nothing was started


def test_floor_keeps_the_packages_and_nothing_of_ours() -> None:
    apt = {"conf": 'APT::Install-Recommends "false";\n'}
    user_data = "#cloud-config\n" + json.dumps({
        "apt": apt, "package_update": True, "packages": ["nginx", "git"],
        "ssh_authorized_keys": [KEY], "ssh_genkeytypes": ["ed25519"],
        "write_files": [{"path": "/x", "content": "y"}], "runcmd": [["/setup"]]})
    floor = yaml.safe_load(floor_user_data(user_data))
    assert floor == {"apt": apt, "package_update": True, "packages": ["nginx", "git"],
                     "ssh_authorized_keys": [KEY], "ssh_genkeytypes": ["ed25519"]}


def test_the_accelerator_is_probed_once_per_host_boot(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    probes: list[str] = []
    answers = {"kvm": False, "tcg": True}  # what this machine does: /dev/kvm boots nothing

    def guest_runs(accel: str, image: Image, timeout: float) -> bool:
        probes.append(accel)
        return answers[accel]

    monkeypatch.setattr(vm_module, "guest_runs", guest_runs)
    monkeypatch.setattr(vm_module.os, "access", lambda path, mode: True)
    said: list[str] = []
    image = Image(tmp_path / "image-a")
    assert choose_accel(image, said.append) == "tcg"
    assert probes == ["kvm", "tcg"]
    assert choose_accel(image, said.append) == "tcg"
    assert probes == ["kvm", "tcg"]  # not probed again
    assert "probed earlier this host boot" in said[-1] and "TCG" in said[-1]
    # Another image is probed afresh; so is a changed record.
    answers["kvm"] = True
    assert choose_accel(Image(tmp_path / "image-b"), said.append) == "kvm"
    record = tmp_path / "webstack" / "accel.json"
    saved = json.loads(record.read_text())
    record.write_text(json.dumps({**saved, "key": {**saved["key"], "boot_id": "earlier"}}))
    assert choose_accel(Image(tmp_path / "image-b"), said.append) == "kvm"
    assert probes == ["kvm", "tcg", "kvm", "kvm"]
    # A machine that runs no guest at all is not remembered as such.
    answers.update(kvm=False, tcg=False)
    assert choose_accel(Image(tmp_path / "image-c"), said.append) is None
    assert choose_accel(Image(tmp_path / "image-c"), said.append) is None
    assert probes[-4:] == ["kvm", "tcg", "kvm", "tcg"]


@dataclass
class FakeDatabase:
    """Records what stage() asks of the host's database server (tests/services' starts one)."""

    engine: str = "postgres"
    port: int = 54321
    created: list[tuple[str, str, str]] = field(default_factory=list)

    def create(self, user: str, password: str, name: str) -> None:
        self.created.append((user, password, name))


@dataclass(frozen=True)
class FakeCache:
    engine: str
    port: int
    password: str
    ca: str


def _self_signed(where: Path) -> Path:
    cert = where / "cache.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-days", "1", "-subj", "/CN=10.0.2.2",
                    "-keyout", str(where / "cache.key"), "-out", str(cert)],
                   capture_output=True, check=True, timeout=60)
    return cert


def test_the_hosts_database_and_cache_are_published_as_the_stacks(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Django example's stack in a VM: a master user made on the host's database with a
    new password, the endpoints at the guest's address of the host in the stack's SSM
    parameters, the credentials in Secrets Manager only, the cache's certificate trusted."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    settings = stack_file_settings("django", PROJECT_DIR / "examples" / "django-app")
    settings.pop("aws:region")
    database, cert = FakeDatabase(), _self_signed(tmp_path)
    cache = FakeCache("valkey", 16379, "auth-token-value", str(cert))
    vm = Vm(tmp_path / "vm")
    staged = stage(vm, "dev", Ports(), settings, database=database, cache=cache)
    try:
        [(user, password, name)] = database.created
        assert (user, name) == (staged.cfg.database.user, staged.cfg.database.name)
        assert staged.credentials == (password, "auth-token-value") and len(password) >= 24
        ssm, sm = (local_aws.client(staged.info, s) for s in ("ssm", "secretsmanager"))

        def parameter(name: str) -> dict[str, object]:
            found = ssm.get_parameter(Name=name)["Parameter"]
            assert found["Type"] == "String"
            return json.loads(found["Value"])

        db = parameter(naming.database_parameter(staged.cfg))
        assert db == {"engine": "postgres", "host": "10.0.2.2", "port": 54321, "name": "app",
                      "secret": db["secret"]}
        assert json.loads(sm.get_secret_value(SecretId=db["secret"])["SecretString"]) == {
            "username": "webstack", "password": password}
        kv = parameter(naming.cache_parameter(staged.cfg))
        assert kv == {"engine": "valkey", "host": "10.0.2.2", "port": 16379, "tls": True,
                      "nodes": ["10.0.2.2:16379"], "secret": kv["secret"]}
        assert json.loads(sm.get_secret_value(SecretId=kv["secret"])["SecretString"]) == {
            "password": "auth-token-value"}
        assert cert.read_text().strip() in "".join(staged.cfg.sources.extra_ca_certs)
    finally:
        local_aws.stop(vm.aws_state)
    with pytest.raises(VmError, match="webstack:database is postgres but the host's server is "
                                      "mysql: give a postgres server, or none"):
        stage(vm, "dev", Ports(), settings, database=FakeDatabase(engine="mysql"))
    with pytest.raises(VmError, match="webstack:cache is valkey: a local VM needs a valkey "
                                      "server on the host"):
        stage(vm, "dev", Ports(), settings, database=FakeDatabase())
    assert local_aws.running(vm.aws_state) is None  # refused before anything started
