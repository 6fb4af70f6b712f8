"""Bring a stack up in a local VM: its user-data with local overrides, then boot and converge.

Shared by `scripts/local_vm.py`, the VM test tier and `scripts/bench_converge.py`, so the
three exercise one path: the image (cached), the accelerator, the seed, the boot, the watch.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

from components import naming
from components.bootstrap import Endpoints, RenderedBootstrap, Target, render
from components.bundle import pack
from components.config import StackConfig, parse
from components.registry import ImageRef
from components.registry import parse as parse_image
from devtools import local_aws
from devtools.mockrun import stack_config
from devtools.registry import Registry
from devtools.vm import Converged, Ports, Vm, VmError, choose_accel, ensure_key, watch
from devtools.vm_image import Recipe, ensure_image, host_cas, host_mirror


def local_vm_target(https_port: int, endpoints: Endpoints) -> Target:
    """A server in every way (paths, ports 80/443 on every address, venv built at boot, the
    artefact and parameters from S3 and SSM with IMDSv2 credentials) except where it reaches
    AWS (`endpoints`, on the host), that it gets no SSM or CloudWatch agent (AWS's download
    buckets are not on the host) and that clients reach its HTTPS on the host's forwarded
    `https_port`, which its HTTP → HTTPS redirect names."""
    return Target(agents=False, public_https_port=https_port, endpoints=endpoints)


class NoGuest(VmError):
    """qemu runs no guest on this machine, under any accelerator."""


def vm_config(stack: str, ssh_public_key: str, extra: dict[str, str] | None = None) -> StackConfig:
    """The stack's settings for one server of it in a local VM, with what the VM needs instead
    of AWS: its appSource bundle (a git app: the sample app, there is no git server), a
    self-signed certificate, the harness's SSH key, the image's OS and arch, one server (no
    load balancer). The host's CAs are in the image, so extraCaCertFiles stays the stack's own;
    every other setting (health path, build, hooks, environment) is the stack's."""
    own = stack_config(stack, extra or {})
    git = {"webstack:appRepo": "", "webstack:appPath": ""} if own.get("webstack:appRepo") else {}
    # the VM's own needs last: `extra` (a test's or an example's settings) cannot undo them
    raw = stack_config(stack, {
        **(extra or {}), **git, "webstack:tlsMode": "selfsigned",
        "webstack:sshPublicKey": ssh_public_key, "webstack:serverOs": "debian-12",
        "webstack:serverArch": "x86_64", "webstack:serverCount": "1",
        "webstack:serverMinCount": "0", "webstack:serverMaxCount": "0"})
    region = raw.get("aws:region")
    return parse(raw, project="webstack", stack=stack, region=region,
                 supported_regions=(region,) if region else ())


class HostDatabase(Protocol):
    """A database server on the host's loopback standing in for the stack's RDS instance (as
    tests/services starts one): `create` makes a user with a password and a database it owns,
    as RDS makes the master user's."""

    @property
    def engine(self) -> str: ...  # postgres | mysql
    @property
    def port(self) -> int: ...
    def create(self, user: str, password: str, name: str) -> None: ...


class HostCache(Protocol):
    """A cache server on the host's loopback standing in for the stack's ElastiCache."""

    @property
    def engine(self) -> str: ...  # memcached | valkey
    @property
    def port(self) -> int: ...
    @property
    def password(self) -> str: ...  # valkey's AUTH token ("" for memcached)
    @property
    def ca(self) -> str: ...  # with TLS, the PEM file the guest must trust; "": plain TCP


@dataclass(frozen=True)
class Staged:
    cfg: StackConfig
    rendered: RenderedBootstrap
    info: local_aws.LocalAwsInfo
    bucket: str
    pointer: str  # the release pointer the server reads at boot
    credentials: tuple[str, ...] = ()  # the database's and cache's, for checks they never leak
    registry: str = ""  # appRuntime docker: host:port of the host's registry, as the guest has it

    @property
    def user_data(self) -> str:
        return self.rendered.user_data

    def release_new_code(self, source: Path) -> str:
        """What `pulumi up` does when appSource changed: the new bundle in the bucket and the
        pointer moved to it (the server's `release` then picks it up). Returns the pointer."""
        return local_aws.publish_bundle(self.info, self.bucket, self.cfg.app.name, pack(source),
                                        naming.release_ref_parameter(self.cfg))

    def release_image(self, name: str, digest: str) -> str:
        """What `pulumi up` does when a container app's image has a new digest: the pointer
        moved to it, pinned, in the registry the guest pulls from. Returns the pointer."""
        pointer = f"{self.registry}/{name}@{digest}"
        local_aws.client(self.info, "ssm").put_parameter(
            Name=naming.release_ref_parameter(self.cfg), Value=pointer, Type="String",
            Overwrite=True)
        return pointer


def guest_registry(registry: Registry) -> str:
    """The host's registry as the guest reaches it: qemu's user network maps GUEST_HOST to the
    host's loopback, where it listens (plain HTTP, hence INSECURE_REGISTRY)."""
    return f"{local_aws.GUEST_HOST}:{registry.port}"


def image_settings(settings: dict[str, str], registry: Registry,
                   pinned: str) -> dict[str, str]:
    """A container stack's `settings` with its build (appSource's Dockerfile) replaced by the
    image `pulumi up` would have built, pushed to the host's registry: `pinned` is
    name@sha256:..."""
    own = {k: v for k, v in settings.items()
           if k not in ("webstack:appSource", "webstack:appDockerfile")}
    return {**own, "webstack:appImage": f"{guest_registry(registry)}/{pinned}"}


def _pinned_in(cfg: StackConfig, registry: Registry | None) -> ImageRef:
    """A container app's appImage: pinned, in the host's registry (the only one a VM reaches)."""
    if registry is None:
        raise VmError("webstack:appRuntime is docker: a local VM pulls from a registry on the "
                      "host (vm_up.stage's registry, as tests/vm/test_docker.py gives); "
                      "scripts/local_vm.py starts none")
    ref = parse_image(cfg.app.image)
    if ref.host != guest_registry(registry) or not ref.digest:
        raise VmError(f"webstack:appImage = {cfg.app.image!r}: expected an image pushed to the "
                      f"host's registry, pinned: {guest_registry(registry)}/<name>@sha256:...")
    return ref


def _check_engine(setting: str, wanted: str, host: HostDatabase | HostCache | None) -> None:
    """The stack's database or cache and the host's server for it agree, or neither is."""
    if host is None and wanted:
        raise VmError(f"webstack:{setting} is {wanted}: a local VM needs a {wanted} server on "
                      "the host for it (vm_up.stage's database/cache, as tests/vm/test_django.py "
                      "gives); scripts/local_vm.py starts none")
    if host is not None and host.engine != wanted:
        raise VmError(f"webstack:{setting} is {wanted or 'not set'} but the host's server is "
                      f"{host.engine}: give a {wanted} server, or none")


def stage(vm: Vm, stack: str, ports: Ports, extra: dict[str, str] | None = None,
          parameters: dict[str, str] | None = None, database: HostDatabase | None = None,
          cache: HostCache | None = None, registry: Registry | None = None) -> Staged:
    """What `pulumi up` does before a server boots, against the VM's own local AWS (started
    here, stopped with the VM): the user-data rendered for it, its artefact and the app's
    bundle in the stack's bucket, the release pointer and `parameters` (name → value) in SSM;
    with `database`, its master user (a new password) and database made as RDS makes them and
    published as the stack's; with `cache`, published as the stack's ElastiCache (its TLS
    certificate trusted by the guest through extraCaCertFiles, the one VM-only setting); a
    container app's image (appImage, pinned) pulled from `registry` on the host, which the
    guest reaches over plain HTTP."""
    if vm.running():
        raise VmError(f"VM {vm.dir.name} is already running: `down` it first")
    key = ensure_key().with_suffix(".pub").read_text().strip()
    extra = dict(extra or {})
    if cache is not None and cache.ca:
        own = json.loads(stack_config(stack, extra).get("webstack:extraCaCertFiles") or "[]")
        extra["webstack:extraCaCertFiles"] = json.dumps([*own, cache.ca])
    cfg = vm_config(stack, key, extra)
    if cfg.database.url_secret:
        raise VmError("webstack:databaseUrlSecret: a local VM cannot reach the database you "
                      "bring; set webstack:database for a server on the host instead")
    _check_engine("database", cfg.database.engine, database)
    _check_engine("cache", cfg.cache.engine, cache)
    image = _pinned_in(cfg, registry) if cfg.app.container else None
    info = local_aws.start(vm.aws_state, cfg.region)
    bucket = naming.artefact_bucket(cfg.prefix, local_aws.ACCOUNT, cfg.region)
    endpoints = local_aws.guest_endpoints(info)
    if image is not None:
        endpoints = replace(endpoints, registry=image.host)
    rendered = render(cfg, local_vm_target(ports.https, endpoints), bucket)
    local_aws.publish(info, bucket, rendered, parameters or {})
    credentials: list[str] = []
    if database is not None:
        password = secrets.token_urlsafe(24)
        database.create(cfg.database.user, password, cfg.database.name)
        local_aws.publish_database(info, cfg, database.port, password)
        credentials.append(password)
    if cache is not None:
        local_aws.publish_cache(info, cfg, cache.port, bool(cache.ca), cache.password)
        credentials += [cache.password] if cache.password else []
    staged = Staged(cfg, rendered, info, bucket, "", tuple(credentials), endpoints.registry)
    pointer = (staged.release_image(image.name, image.digest) if image is not None else
               staged.release_new_code(Path(cfg.app.source)))
    return replace(staged, pointer=pointer)


@dataclass(frozen=True)
class UpResult:
    vm: Vm
    accel: str
    converged: Converged
    status: dict[str, object]  # `cloud-init status --format json` once it finished


def up(name: str, user_data: str, hostname: str, ports: Ports, say: Callable[[str], None],
       health_path: str | None, timeout: float = 900.0, accel: str | None = None) -> UpResult:
    """Boot a fresh VM on `user_data` and wait until the app answers 200 at `health_path` (the
    stack's appHealthPath; None: no app to wait for) and cloud-init is done.

    VmError when it does not converge (the VM is left running for `logs`/`ssh`); NoGuest
    when qemu cannot run a guest here at all. `accel`: skip the probe (the caller made it).
    """
    image = ensure_image(Recipe(host_mirror(), host_cas()), say)
    accel = accel or choose_accel(image, say)
    if accel is None:
        raise NoGuest("qemu boots no guest on this machine (neither under KVM nor TCG)")
    vm = Vm.named(name)
    info = vm.start(image, user_data, accel, ports, hostname)
    say(f"boot: powered on ({accel}); console: {vm.console}")
    health_url = vm.url(health_path) if health_path else None
    converged = watch(vm, health_url, say, timeout, info.started)
    remaining = max(60.0, timeout - (time.time() - info.started))
    status = vm.cloud_init_status(wait=remaining)
    say(f"cloud-init: {status.get('status')} at {time.time() - info.started:.0f}s")
    if status.get("status") != "done" or status.get("errors"):
        raise VmError(f"cloud-init status: {json.dumps(status, indent=2)}")
    return UpResult(vm, accel, converged, status)
