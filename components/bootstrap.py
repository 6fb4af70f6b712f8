"""Renders a server's first boot: StackConfig → #cloud-config user-data (+ the files it installs).

The templates in cloud-init/ read like the files they become; this module only decides what
goes into them. Every value from the stack's settings crosses into YAML, shell, nginx, systemd
or an EnvironmentFile, and each context has its own quoting: values are quoted for the context
by the filters below, or rejected with `BootstrapError` when the context has no safe quoting
(nginx and systemd words must already be plain). The rendered YAML is parsed back before it is
returned, so a file cloud-init would write differently from what `files` shows is a bug caught
here rather than on a server.

`Target` says where the files land: `SERVER` for real instances; `devtools.localrun` makes
the one for loopback runs (everything under one directory, nginx on unprivileged 127.0.0.1
ports, the developer's venv).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import re
import shlex
import tarfile
from dataclasses import dataclass, field

import jinja2
import yaml

from components import deflate, naming, topology
from components.config import PROJECT_DIR, AppConfig, ConfigError, StackConfig
from components.naming import Paths

EC2_USER_DATA_LIMIT = 16 * 1024  # bytes, before base64
TEMPLATE_DIR = PROJECT_DIR / "cloud-init"
SERVER_DIR = PROJECT_DIR / "server"
# The server programs, as real files in server/ (name on the server -> file): copied verbatim.
FETCHER = "awsclient.py"  # in the user-data; the others come in the artefact and import it
PROGRAMS = {"ssm-get": "ssm_get.py", "probe": "probe.py", "fetch-uv": "fetch_uv.py",
            "setup": "setup.sh", "release": "release.sh", "tls": "tls.sh",
            "release-container": "release-container.sh", "registry-auth": "registry_auth.py",
            "fetch-app": "fetch_app.sh", "fetch-bundle": "fetch_bundle.py",
            "requirements-key": "requirements_key.py", "migrate-once": "migrate.py"}
USER_DATA_BUDGET = 8 * 1024  # bytes: what every variant's user-data stays within (room to grow)
GUNICORN_VERSION = "27.0.1"  # same pin as requirements-dev.txt: the loopback run matches servers
# appServer uwsgi: pyuwsgi, uWSGI as a binary manylinux wheel (nothing compiles on the servers);
# the same pin as requirements-dev.txt's.
UWSGI_VERSION = "2.0.30.post1"
SERVER_CONFIGS = {"gunicorn": "gunicorn.conf.py", "uwsgi": "uwsgi.ini"}  # in <etc>, per server
# uv builds each release's venv: seconds, where `python3 -m venv` + pip take half a minute on a
# small server (ensurepip alone is most of it). Fetched at boot from the stack's package index,
# pinned by each wheel's sha256 (from PyPI); the same version as requirements-dev.txt's.
UV_VERSION = "0.13.8"
UV_WHEELS = {  # server arch -> (wheel, sha256)
    "x86_64": (f"uv-{UV_VERSION}-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
               "e18a57b8b352eb7c8feb317b9f6f533c8f0ad9673fd6cf34bbe3cf1a9f6a8984"),
    "arm64": (f"uv-{UV_VERSION}-py3-none-manylinux_2_17_aarch64.manylinux2014_aarch64."
              "musllinux_1_1_aarch64.whl",
              "0b3e8b1a4f5e405e31e2ff33de8af4744831e9f7338539671efbd8c3c94e791d"),
}
PYPI_SIMPLE = "https://pypi.org/simple/"
# appRuntime docker: the two host ports on 127.0.0.1 the blue/green slots publish the container
# on (`<unit>-container@<port>.service`); nginx proxies to the live one.
CONTAINER_SLOTS = (8001, 8002)
AWS_DEFAULT_VPC_CIDR = "172.31.0.0/16"  # every region's default VPC uses this range
DEFAULT_TOKEN_USER = "x-access-token"  # GitHub's user name for a token (appRepoTokenUser)

class BootstrapError(ConfigError):
    """The rendered user-data cannot be used (a value unsafe for its context, or too big):
    a config problem, reported like the others and before any resource exists."""

    def __init__(self, message: str):
        super().__init__([message])


@dataclass(frozen=True)
class RenderedBootstrap:
    user_data: str
    files: dict[str, str] = field(default_factory=dict)  # path on the server -> content (all)
    modes: dict[str, int] = field(default_factory=dict)  # path on the server -> permission bits
    artefact: bytes = b""  # the files the user-data does not carry, as one tar (see `artefact`)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.user_data.encode()).hexdigest()

    @property
    def artefact_sha256(self) -> str:
        return hashlib.sha256(self.artefact).hexdigest()

    @property
    def ec2_user_data_base64(self) -> str:
        """What EC2 receives: the user-data as it is (config and the fetcher: no gzip)."""
        raw = self.user_data.encode()
        if len(raw) > EC2_USER_DATA_LIMIT:
            raise BootstrapError(
                f"user-data is {len(raw)} bytes, over EC2's {EC2_USER_DATA_LIMIT}-byte limit: "
                "fewer or smaller extraCaCertFiles")
        return base64.b64encode(raw).decode()


@dataclass(frozen=True)
class Endpoints:
    """Where a server reaches AWS; "" = AWS's own for the region (EC2). The one thing a local
    VM changes: its IMDS and S3/SSM/Secrets Manager answer on the host's loopback."""

    imds: str = ""
    s3: str = ""
    ssm: str = ""
    secretsmanager: str = ""
    # host:port of a plain-HTTP image registry the server may pull from (a local VM's, on the
    # host); "" on EC2: every registry over TLS.
    registry: str = ""


def artefact_key(sha256: str) -> str:
    """Content-addressed: a new artefact is a new object, and the old one stays readable for
    servers that still boot from it (a rollback of an instance refresh)."""
    return f"{naming.ARTEFACT_PREFIX}/{sha256}.tar"


def pack(files: dict[str, str], modes: dict[str, int], root: str) -> bytes:
    """A tar of `files` (paths relative to `root`) that depends on their content alone: sorted,
    ustar, owner root, mtime 0, so the same on any machine and any Python."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:", format=tarfile.USTAR_FORMAT) as tar:
        for path in sorted(files):
            data = files[path].encode()
            info = tarfile.TarInfo(path.removeprefix(root).lstrip("/"))
            info.size, info.mode, info.mtime = len(data), modes[path], 0
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


@dataclass(frozen=True)
class Target:
    """Where the rendered files land, and where nginx listens."""

    root: str = ""  # prefix of every absolute path ("" on a server)
    http_port: int = 80
    https_port: int = 443
    # Where clients reach HTTPS when a port forward differs from https_port (the local VM's
    # 127.0.0.1:8443 → 443): the HTTP → HTTPS redirect names it. 0: https_port.
    public_https_port: int = 0
    listen_hosts: tuple[str, ...] = ("", "[::]")  # "" = every IPv4 address
    venv: str = ""  # "" = <home>/venv, built at boot
    uv: str = ""  # "" = fetched at boot into <lib>/uv
    trusted_proxies: tuple[str, ...] = ()  # () = the VPC's range (load-balanced stacks)
    # The server reaches AWS (its endpoints below): it reads a git app's ref from SSM at release
    # time and keeps a Let's Encrypt certificate there (loopback runs keep the ref inline).
    ec2: bool = True
    # With `ec2`: AWS's SSM and CloudWatch agents, from AWS's regional buckets (which a local VM
    # cannot download from).
    agents: bool = True
    endpoints: Endpoints = Endpoints()
    # Without `ec2`: what the release script releases by default (a bundle's sha256; "": a git
    # app's appRef).
    pointer: str = ""
    container_slots: tuple[int, int] = CONTAINER_SLOTS  # appRuntime docker (see CONTAINER_SLOTS)


SERVER = Target()


# ---------------------------------------------------------------------------------------------
# Quoting, one function per context. Pure, so tests can drive them with hostile values directly.

def yaml_str(value: str) -> str:
    """A YAML double-quoted scalar that parses back to exactly `value` (any Unicode)."""
    out = []
    for ch in value:
        code = ord(ch)
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif 0x20 <= code < 0x7F:
            out.append(ch)
        elif code <= 0xFFFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    return '"' + "".join(out) + '"'


def _block_safe(text: str) -> bool:
    """Whether a literal block scalar (`|`) reproduces `text` exactly."""
    if not text.endswith("\n") or text.endswith("\n\n") or text[0] in " \n":
        return False
    for line in text[:-1].split("\n"):
        if line != line.rstrip() and not line.strip():
            return False  # whitespace-only lines are indistinguishable from blank ones
        if any(not (ch == "\t" or ch.isprintable()) for ch in line):
            return False
    return True


def yaml_block(text: str, indent: int) -> str:
    """File content as a readable `|` block when that is exact, else a quoted scalar."""
    if not _block_safe(text):
        return yaml_str(text)
    pad = " " * indent
    return "|\n" + "\n".join(pad + line if line else "" for line in text[:-1].split("\n"))


def sh_word(value: str) -> str:
    """One literal shell word, whatever `value` holds."""
    return shlex.quote(value)


def env_line(key: str, value: str) -> str:
    """A KEY="value" line that systemd's EnvironmentFile and POSIX sh read the same way."""
    escaped = re.sub(r'([\\"$`])', r"\\\1", value)
    return f'{key}="{escaped}"'


# ---------------------------------------------------------------------------------------------
# Template context

def unit_name(cfg: StackConfig) -> str:
    """The systemd unit prefix of the app's units."""
    return f"webstack-{cfg.app.name}"


def wsgi_server(app: AppConfig) -> str:
    """The WSGI server of ours releases install and run (appServer): "" for a static site, which
    nginx serves, and for a container, whose image brings its own."""
    return "" if app.static or app.container else app.server


def has_secrets_file(cfg: StackConfig) -> bool:
    """The app gets secrets.env (its secrets unit, fetched before any of its code runs): for
    appSecrets, and for a database's or cache's credentials."""
    return bool(cfg.app.secrets) or cfg.database.enabled or cfg.cache.enabled


def database_clients(cfg: StackConfig) -> list[str]:
    """The OS's clients migrate-once takes the database's lock with: only with migrations. A
    database the user brings has its engine in its secret, read at run time: both clients (8
    and 15 MB), installed with the other packages at boot rather than by a release."""
    if not (cfg.app.migrate and cfg.database.enabled):
        return []
    engines = [cfg.database.engine] if cfg.database.created else ["postgres", "mysql"]
    # default-mysql-client-core: MariaDB's `mysql` on Debian, MySQL's on Ubuntu (no perl)
    return [{"postgres": "postgresql-client", "mysql": "default-mysql-client-core"}[e]
            for e in engines]


def bundle_release(sha256: str) -> str:
    """The release id the release script gives a bundle (releases/<id>)."""
    return f"bundle-{sha256[:12]}"


def container_log(paths: Paths) -> str:
    """Where the container log unit copies the app containers' journal: the file the CloudWatch
    agent ships and logrotate rotates."""
    return f"{paths.logs}/container.log"


def container_packages(app: AppConfig) -> list[str]:
    """appRuntime docker: podman (daemonless, each container a systemd unit's), and the ECR
    credential helper when the image is in ECR (the instance role pulls through IMDSv2)."""
    if not app.container:
        return []
    return ["podman", *["amazon-ecr-credential-helper"] * app.pulls_from_ecr]


def cloudwatch_agent_config(cfg: StackConfig, paths: Paths) -> dict[str, object]:
    """The CloudWatch agent's JSON: memory and root-disk metrics, the log files (a static site
    has no app log) to the groups the program creates (with their retention: the agent is given
    none, so it sets none)."""
    groups = naming.log_groups(cfg)
    files = [(f"{paths.nginx_logs}/{cfg.app.name}.access.log", "nginx-access"),
             (f"{paths.nginx_logs}/{cfg.app.name}.error.log", "nginx-error"),
             *[(f"{paths.logs}/error.log", "app")] * (not cfg.app.static),  # gunicorn's
             # a container's output, from the journal (the agent does not read it)
             *[(container_log(paths), "app")] * cfg.app.container,
             (paths.root + "/var/log/cloud-init-output.log", "cloud-init")]
    return {
        # root: nginx's logs are www-data:adm 0640, the app's its own user's.
        "agent": {"metrics_collection_interval": 60, "run_as_user": "root"},
        "metrics": {
            "namespace": naming.METRICS_NAMESPACE,
            "append_dimensions": {"InstanceId": "${aws:InstanceId}",
                                  "AutoScalingGroupName": "${aws:AutoScalingGroupName}"},
            "aggregation_dimensions": [["AutoScalingGroupName"], ["InstanceId"]],
            "metrics_collected": {
                "mem": {"measurement": ["mem_used_percent"]},
                "disk": {"measurement": ["used_percent"], "resources": ["/"],
                         "drop_device": True},
            },
        },
        "logs": {"logs_collected": {"files": {"collect_list": [
            {"file_path": path, "log_group_name": groups[kind],
             "log_stream_name": "{instance_id}"} for path, kind in files]}}},
    }


def context(cfg: StackConfig, target: Target = SERVER) -> dict[str, object]:
    """Everything the templates see; derived values are computed here, not in Jinja."""
    app, shape = cfg.app, topology.derive(cfg)
    paths = Paths(target.root, app.name)
    app_dir = f"{paths.src}/{app.path}" if app.path else paths.src
    fetch_uv = not target.uv and app.venvs
    venv = target.venv or f"{paths.current}/venv"
    if shape.load_balanced:
        proxies = target.trusted_proxies or (
            cfg.network.cidr if cfg.network.create_vpc else AWS_DEFAULT_VPC_CIDR,)
    else:
        proxies = ()
    https = shape.tls == "server"  # nginx terminates TLS itself
    # No python3-venv: uv makes the venvs. git only for an app that comes from a repository.
    packages = ["ca-certificates", "logrotate", "nginx", "python3", "unattended-upgrades"]
    if app.from_git:
        packages.append("git")
    if https:
        packages.append("openssl")
    if shape.certificate == "letsencrypt":
        packages.append("certbot")
    packages += database_clients(cfg)
    packages += container_packages(app)
    # Ubuntu's images carry the SSM agent (snap); Debian's do not, and without it there is no
    # Session Manager shell and no Run Command. AWS publishes the .deb in each region's bucket.
    ssm_agent_url = ""
    if target.ec2 and target.agents and not cfg.server.os.startswith("ubuntu"):
        arch = {"x86_64": "amd64", "arm64": "arm64"}[cfg.server.arch]
        ssm_agent_url = (f"https://s3.{cfg.region}.amazonaws.com/amazon-ssm-{cfg.region}"
                         f"/latest/debian_{arch}/amazon-ssm-agent.deb")
    cw_agent_url = ""
    if target.ec2 and target.agents:
        arch = {"x86_64": "amd64", "arm64": "arm64"}[cfg.server.arch]
        # AWS publishes no debian/arm64 build; Ubuntu's arm64 .deb is the same static agent
        distro = ("ubuntu" if cfg.server.os.startswith("ubuntu") or cfg.server.arch == "arm64"
                  else "debian")
        cw_agent_url = (f"https://s3.{cfg.region}.amazonaws.com/amazoncloudwatch-agent-"
                        f"{cfg.region}/{distro}/{arch}/latest/amazon-cloudwatch-agent.deb")
    if ssm_agent_url or cw_agent_url:
        packages.append("curl")
    return {
        "cfg": cfg,
        "app": app,
        "unit": unit_name(cfg),
        "paths": paths,
        "app_dir": app_dir,
        # a container's: copied out of its image into the release at each release
        "static_dir": f"{paths.current}/static" if app.container else f"{app_dir}/{app.static_dir}",
        # appKind static: nginx's root, through `current` (followed per request: a release's
        # switch needs no reload)
        "static": app.static,
        "container_log": container_log(paths),
        "web_root": f"{app_dir}/{app.web_dir}" if app.web_dir else app_dir,
        "fetch_uv": fetch_uv,
        "venv": venv,
        "uv": target.uv or f"{paths.lib}/uv",
        "target": target,
        "tls": cfg.tls.mode,
        "https": https,
        "redirect_port": target.public_https_port or target.https_port,
        "server_names": " ".join(cfg.domain.names) or "_",
        "cert_name": cfg.domain.hostname or app.name,
        "alt_names": ",".join(f"DNS:{n}" for n in cfg.domain.names) or "DNS:localhost,IP:127.0.0.1",
        "health_url": (f"https://127.0.0.1:{target.https_port}{app.health_path}" if https
                       else f"http://127.0.0.1:{target.http_port}{app.health_path}"),
        "proxies": proxies,
        # behind the load balancer nginx must outlive its idle connections, or the ALB reuses
        # one nginx already closed and answers 502 (AWS: target keep-alive > ALB idle timeout)
        "keepalive_seconds": cfg.lb_idle_timeout + 15 if shape.load_balanced else 0,
        "packages": sorted(packages),
        "ssm_agent_url": ssm_agent_url,
        "cw_agent_url": cw_agent_url,
        "cloudwatch_config": json.dumps(cloudwatch_agent_config(cfg, paths), indent=1),
        # The release pointer on EC2 lives in SSM, not in the user-data: new code is a release
        # on the running servers, never new servers.
        "ref_parameter": naming.release_ref_parameter(cfg) if target.ec2 else "",
        "ubuntu": cfg.server.os.startswith("ubuntu"),
        "env_lines": [env_line(k, v) for k, v in sorted(
            {**app.env, naming.DATA_DIR_VARIABLE: paths.data}.items())],
        "secrets_json": json.dumps(dict(sorted(app.secrets.items())), indent=2) + "\n",
        "secrets_file": has_secrets_file(cfg),
        "credentials": cfg.database.enabled or cfg.cache.enabled,  # from Secrets Manager
    }


@dataclass(frozen=True)
class _File:
    path: str
    template: str = ""  # a Jinja template in cloud-init/, else:
    program: str = ""  # a file of server/, copied as it is
    mode: int = 0o644
    extra: tuple[tuple[str, object], ...] = ()  # template context beyond `context`'s


def _hooks(name: str, key: str, what: str, when: str, commands: tuple[str, ...],
           p: Paths, container: bool = False) -> _File:
    """A hook script: on the server in the release's venv, or run inside the release's image."""
    hook = {"key": f"webstack:{key}", "what": what, "when": when, "commands": commands}
    template = "files/container-hooks.sh.j2" if container else "files/hooks.sh.j2"
    return _File(f"{p.lib}/{name}", template, mode=0o755, extra=(("hook", hook),))


def _file_list(cfg: StackConfig, p: Paths, target: Target) -> list[_File]:
    """Every file the artefact carries, with its source."""
    unit, units, app = unit_name(cfg), p.units, cfg.app.name
    venvs = cfg.app.venvs
    programs = ["setup", "release", "probe"] + ["requirements-key"] * venvs
    programs += ["fetch-uv"] * (not target.uv and venvs)
    if cfg.app.container:  # its code is the image: pulled, never fetched
        programs += ["release-container", "registry-auth"]
    else:
        programs.append("fetch-app" if cfg.app.from_git else "fetch-bundle")
    # secrets, a private repository's credential, the release pointer, or the Let's Encrypt
    # certificate kept in SSM
    secrets = has_secrets_file(cfg)
    if secrets or cfg.app.repo_credential or target.ec2:
        programs.append("ssm-get")
    if cfg.app.migrate:
        programs.append("migrate-once")
    files = [
        *(_File(p.program(name), program=PROGRAMS[name], mode=0o755) for name in programs),
        # Rendered for every target so local checks see it; only EC2's setup starts the agent.
        _File(f"{p.etc}/cloudwatch-agent.json", "files/cloudwatch-agent.json.j2"),
        _File(f"{p.etc}/app.env", "files/app.env.j2", mode=0o600),
        _File(f"{p.nginx}/conf.d/{app}.conf", "files/nginx-site.conf.j2"),
        _File(p.root + "/etc/apt/apt.conf.d/20auto-upgrades", "files/20auto-upgrades.j2"),
    ]
    if venvs:
        files.append(_File(f"{p.etc}/uv.toml", "files/uv.toml.j2"))
    if cfg.app.container:  # the blue/green slots' unit, its journal copied to a file
        files += [_File(f"{units}/{unit}-container@.service", "files/container@.service.j2"),
                  _File(f"{units}/{unit}-container-log.service",
                        "files/container-log.service.j2"),
                  # nginx's upstream: the first slot until a release rewrites it (the artefact
                  # is unpacked once, at first boot)
                  _File(f"{p.state}/upstream.conf", "files/container-upstream.conf.j2"),
                  _File(p.root + f"/etc/logrotate.d/webstack-{app}", "files/logrotate.j2")]
    elif not cfg.app.static:  # the app process: its server on the socket unit's socket, its log
        conf = SERVER_CONFIGS[cfg.app.server]
        files += [_File(f"{p.etc}/{conf}", f"files/{conf}.j2"),
                  _File(p.root + f"/etc/logrotate.d/webstack-{app}", "files/logrotate.j2"),
                  _File(f"{units}/{unit}.socket", "files/app.socket.j2"),
                  _File(f"{units}/{unit}.service", "files/app.service.j2")]
    if cfg.app.repo_host_keys:  # the only host keys ssh trusts for the app's repository
        files.append(_File(f"{p.etc}/known_hosts", "files/known_hosts.j2"))
    if secrets:
        files += [_File(f"{p.etc}/secrets.json", "files/secrets.json.j2", mode=0o600),
                  _File(f"{units}/{unit}-secrets.service", "files/secrets.service.j2")]
    if cfg.database.enabled or cfg.cache.enabled:  # a rotated password reaches the app
        files += [_File(f"{units}/{unit}-secrets-refresh.service",
                        "files/secrets-refresh.service.j2"),
                  _File(f"{units}/{unit}-secrets-refresh.timer", "files/secrets-refresh.timer.j2")]
    if cfg.app.build:
        files.append(_hooks("build", "appBuild", "build commands", "The release script runs "
                            "them once per release, before its health check.", cfg.app.build, p))
    container = cfg.app.container
    if cfg.app.migrate:
        files.append(_hooks("migrate", "appMigrate", "migrations", "The release script runs "
                            "them before pre-start, through migrate-once (with a database: once "
                            "across the fleet).", cfg.app.migrate, p, container))
    if cfg.app.pre_start and container:
        files.append(_hooks("pre-start", "appPreStart", "pre-start hooks", f"{unit}-container@"
                            "<slot>.service runs them before each start of the container (a "
                            "release's candidate, each boot).", cfg.app.pre_start, p, container))
    elif cfg.app.pre_start:
        files += [_hooks("pre-start", "appPreStart", "pre-start hooks", "The release script runs "
                         f"them before a release takes traffic; {unit}-prestart.service at "
                         "boot.", cfg.app.pre_start, p),
                  _File(f"{units}/{unit}-prestart.service", "files/prestart.service.j2")]
    if cfg.tls.mode in ("selfsigned", "letsencrypt"):
        files.append(_File(p.program("tls"), program=PROGRAMS["tls"], mode=0o755))
    if cfg.tls.mode == "letsencrypt":
        files += [_File(f"{units}/{unit}-tls.service", "files/tls.service.j2"),
                  _File(f"{units}/{unit}-tls.timer", "files/tls.timer.j2")]
    return files


def _endpoint_settings(cfg: StackConfig, target: Target) -> dict[str, str]:
    ends = target.endpoints
    return {"REGION": cfg.region, "ROOT": target.root, "ENDPOINT_IMDS": ends.imds,
            "ENDPOINT_S3": ends.s3, "ENDPOINT_SSM": ends.ssm,
            "ENDPOINT_SECRETSMANAGER": ends.secretsmanager}


def boot_settings(cfg: StackConfig, target: Target, bucket: str,
                  artefact_sha256: str) -> dict[str, str]:
    """boot.env, in the user-data: what the fetcher needs to get and check the artefact."""
    return {**_endpoint_settings(cfg, target), "ARTEFACT_BUCKET": bucket,
            "ARTEFACT_KEY": artefact_key(artefact_sha256), "ARTEFACT_SHA256": artefact_sha256}


def server_settings(cfg: StackConfig, target: Target, ctx: dict[str, object],
                    bucket: str) -> dict[str, str]:
    """settings.env, in the artefact: every per-stack value the server programs read (sourced by
    the shell ones, parsed by awsclient for the Python ones), so the programs are plain files.
    `ctx`: the templates' context, whose derived values the programs share."""
    app, tls = cfg.app, cfg.tls.mode
    paths = Paths(target.root, app.name)
    wheel, digest = UV_WHEELS[cfg.server.arch]
    server = wsgi_server(app)
    flag = {True: "1", False: ""}
    return {
        **_endpoint_settings(cfg, target),
        "APP": app.name, "UNIT": unit_name(cfg),
        # where things are (components.naming.Paths: the one place server paths are spelled)
        "HOME_DIR": paths.home, "RELEASES": paths.releases, "CURRENT": paths.current,
        "LIB": paths.lib, "ETC": paths.etc, "STATE": paths.state, "NGINX_DIR": paths.nginx,
        "SECRETS_ENV": f"{paths.secrets_dir}/secrets.env", "VENVS": paths.venvs,
        "DATA_DIR": paths.data,
        "GIT_CACHE": f"{paths.home}/.git-cache", "TLS_DIR": f"{paths.etc}/tls",
        # the app and its releases
        "APP_SOURCE": "image" if app.container else "git" if app.from_git else "bundle",
        "APP_REPO": app.repo,
        "BUNDLE_BUCKET": bucket if not app.from_git else "",
        "BUNDLE_KEY": naming.bundle_key(app.name) if not app.from_git else "",
        # where servers read the pointer from SSM, it is not here: new code is a release, never
        # a new artefact (whose hash is in the user-data: new servers). A local run without
        # AWS releases a git app's appRef, or the bundle its target names.
        "APP_REF": "" if ctx["ref_parameter"] else (app.ref if app.from_git else target.pointer),
        "REF_PARAMETER": str(ctx["ref_parameter"]), "APP_PATH": app.path,
        # a private repository: where its credential is (the value only ever in SSM), the
        # host keys ssh pins
        **_repo_settings(app, paths),
        "APP_REQUIREMENTS": app.requirements, "RELEASES_KEPT": str(app.releases_kept),
        "SECRETS": flag[has_secrets_file(cfg)], "PRE_START": flag[bool(app.pre_start)],
        "BUILD": flag[bool(app.build)], "MIGRATE": flag[bool(app.migrate)],
        # where ssm-get finds the database and the cache (JSON without credentials)
        "DATABASE_PARAMETER": naming.database_parameter(cfg) if cfg.database.enabled else "",
        "CACHE_PARAMETER": naming.cache_parameter(cfg) if cfg.cache.enabled else "",
        # appKind static: no gunicorn in a build's venv; nginx serves WEB_DIR of the app directory
        "KIND": app.kind, "WEB_DIR": app.web_dir,
        # the WSGI server each release's venv gets, and its settings (setup restarts it when
        # they change)
        "APP_SERVER": server,
        "SERVER_CONFIG": f"{paths.etc}/{SERVER_CONFIGS[server]}" if server else "",
        "GUNICORN_VERSION": GUNICORN_VERSION * (server == "gunicorn"),
        "UWSGI_VERSION": UWSGI_VERSION * (server == "uwsgi"), "VENV_SHARED": target.venv,
        "HEALTH_PATH": app.health_path, "HEALTH_URL": str(ctx["health_url"]),
        "PROBE_TIMEOUT": str(app.timeout_seconds + 5),
        # uv, fetched by fetch-uv unless the target brings its own
        "UV": str(ctx["uv"]), "UV_VERSION": UV_VERSION,
        "UV_INDEX": cfg.sources.pip_index_url or PYPI_SIMPLE, "UV_WHEEL": wheel,
        "UV_SHA256": digest, "FETCH_UV": flag[bool(ctx["fetch_uv"])],
        # TLS on the server (selfsigned, letsencrypt) and the certificate kept in SSM
        "TLS_MODE": tls, "HTTPS": flag[bool(ctx["https"])], "CERT_NAME": str(ctx["cert_name"]),
        "ALT_NAMES": str(ctx["alt_names"]), "DOMAIN_NAMES": " ".join(cfg.domain.names),
        "TLS_EMAIL": cfg.tls.email, "TLS_PARAMETER": naming.tls_parameter(cfg),
        "TLS_TIER": naming.TLS_PARAMETER_TIER,
        **_container_settings(cfg, target, paths),
        # EC2's agents (empty: none to install)
        "SSM_AGENT_URL": str(ctx["ssm_agent_url"]), "CW_AGENT_URL": str(ctx["cw_agent_url"]),
    }


def _container_settings(cfg: StackConfig, target: Target, paths: Paths) -> dict[str, str]:
    """appRuntime docker: how the release script and the slots' unit run the image."""
    app = cfg.app
    return {"RUNTIME": app.runtime,
            "CONTAINER_PORT": str(app.container_port) if app.container else "",
            "CONTAINER_SLOTS": " ".join(map(str, target.container_slots)) if app.container else "",
            # podman's --env-file: app.env and secrets.env, one KEY=VALUE a line (see release)
            "CONTAINER_ENV": f"{paths.secrets_dir}/container.env" if app.container else "",
            "CONTAINER_LOG": container_log(paths) if app.container else "",
            "IMAGE_CREDENTIALS_SECRET": app.image_credentials_secret,
            "INSECURE_REGISTRY": target.endpoints.registry,
            # appStaticUrl's files: a directory of the image, copied out at each release
            "STATIC_DIR": app.static_dir if app.container and app.static_url else ""}


def _repo_settings(app: AppConfig, paths: Paths) -> dict[str, str]:
    credential = app.repo_credential
    ssh = credential is not None and credential.setting == "appRepoSshKey"
    return {"REPO_SSH_KEY_PARAMETER": credential.parameter if credential and ssh else "",
            "REPO_TOKEN_PARAMETER": credential.parameter if credential and not ssh else "",
            "REPO_TOKEN_USER": app.repo_token_user or DEFAULT_TOKEN_USER,
            "KNOWN_HOSTS": f"{paths.etc}/known_hosts" if app.repo_host_keys else ""}


def env_file(values: dict[str, str]) -> str:
    return "".join(env_line(k, v) + "\n" for k, v in values.items())


_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
    undefined=jinja2.StrictUndefined,
    autoescape=False,  # none of the outputs is HTML; each value is quoted by its own filter
    keep_trailing_newline=True,
    trim_blocks=True,
    lstrip_blocks=True,
)
_ENV.filters.update(yaml=yaml_str, yaml_block=yaml_block, sh=sh_word, json=json.dumps)


def render(cfg: StackConfig, target: Target = SERVER, bucket: str = "") -> RenderedBootstrap:
    """The user-data for `cfg` and the artefact it fetches from `bucket`: the user-data carries
    the per-stack settings and the fetcher, the artefact every other file. Checked to parse
    back to exactly the files it lists."""
    ctx = context(cfg, target)
    paths = Paths(target.root, cfg.app.name)
    specs = _file_list(cfg, paths, target)
    files = {f.path: (_ENV.get_template(f.template).render(ctx, **dict(f.extra)) if f.template
                      else (SERVER_DIR / f.program).read_text(encoding="utf-8")) for f in specs}
    files[f"{paths.lib}/settings.env"] = env_file(server_settings(cfg, target, ctx, bucket))
    specs.append(_File(f"{paths.lib}/settings.env"))
    modes = {f.path: f.mode for f in specs}
    artefact = pack(files, modes, target.root)
    boot = boot_settings(cfg, target, bucket, hashlib.sha256(artefact).hexdigest())
    fetcher = (SERVER_DIR / FETCHER).read_text(encoding="utf-8")
    carried = {f"{paths.lib}/{FETCHER}": (fetcher, 0o755),
               f"{paths.lib}/boot.env": (env_file(boot), 0o644)}
    # The fetcher travels gzipped (cloud-init's gz+b64, our deterministic encoder): a third of
    # its size, and the settings stay readable.
    writes = [{"path": path, "mode": f"{mode:04o}", "encoding": "gz+b64" * (path.endswith(".py")),
               "content": (base64.b64encode(deflate.gzip_bytes(text.encode())).decode() + "\n"
                           if path.endswith(".py") else text)}
              for path, (text, mode) in carried.items()]
    user_data = _ENV.get_template("user-data.yaml.j2").render(ctx, writes=writes)
    _check_round_trip(user_data, {path: text for path, (text, _) in carried.items()})
    files.update({path: text for path, (text, _) in carried.items()})
    modes.update({path: mode for path, (_, mode) in carried.items()})
    return RenderedBootstrap(user_data=user_data, files=files, modes=modes, artefact=artefact)


def _check_round_trip(user_data: str, files: dict[str, str]) -> None:
    """What cloud-init will parse must be what `files` says: proves the quoting, every time."""
    if not user_data.startswith("#cloud-config\n"):
        raise BootstrapError("user-data must start with '#cloud-config'")
    try:
        parsed = yaml.safe_load(user_data)
    except yaml.YAMLError as err:
        raise BootstrapError(f"rendered user-data is not valid YAML: {err}") from err
    written = {w["path"]: (gzip.decompress(base64.b64decode(w["content"])).decode()
                           if w.get("encoding") == "gz+b64" else w["content"])
               for w in parsed.get("write_files", [])}
    if written != files:
        bad = sorted(p for p in set(written) | set(files) if written.get(p) != files.get(p))
        raise BootstrapError(f"rendered user-data would write different files: {bad}")
