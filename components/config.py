"""The stack's settings: the only module that knows config key names.

`SETTINGS` is the single source of truth for every key: its type, default and meaning.
`Pulumi.yaml`'s `config:` block and the README's config table are generated from it
(`scripts/docs.py`), and a test keeps them equal.

`parse()` turns raw strings into a typed, validated `StackConfig`, gathering every problem into
one `ConfigError` before any resource exists; `load()` feeds it from `pulumi.Config`.
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.runtime import config as runtime_config

from components import naming

NAMESPACE = "webstack"
PROJECT_DIR = Path(__file__).resolve().parent.parent

OS_CHOICES = ("debian-12", "ubuntu-24.04")
ARCH_CHOICES = ("x86_64", "arm64")
TLS_CHOICES = ("none", "acm", "letsencrypt", "selfsigned")
MAX_SERVERS = 50
MAX_CERT_NAME = 64  # ACM and Let's Encrypt: a certificate's first name (the CN) fits in 64
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096,
                      1827, 2192, 2557, 2922, 3288, 3653)


@dataclass(frozen=True)
class Setting:
    key: str
    type: str  # Pulumi project-config type: string | integer | boolean | array
    default: Any
    description: str
    secret: bool = False  # never echoed in error messages

    @property
    def full_key(self) -> str:
        return f"{NAMESPACE}:{self.key}"


SETTINGS: tuple[Setting, ...] = (
    # --- app ---
    Setting("appName", "string", "hello",
            "App identifier: lowercase letters, digits, '-', 1-32 chars, starting with a letter. "
            "Names the system user, /srv/<name> and AWS resources."),
    Setting("appRepo", "string", "",
            "Git URL of the app (https://, ssh:// or git@host:path). Empty: the bundled sample app "
            "examples/hello-app, shipped inside the user-data."),
    Setting("appRef", "string", "main",
            "Git ref to deploy: tag, branch or commit SHA. Pin a tag or SHA in production."),
    Setting("appPath", "string", "",
            "Sub-directory of the repository that holds the app (relative, no '..'). "
            "Empty: the root."),
    Setting("appWsgi", "string", "app:application",
            "WSGI entry point as module:callable, e.g. mysite.wsgi:application."),
    Setting("appRequirements", "string", "requirements.txt",
            "Requirements file, relative to the app directory."),
    Setting("appHealthPath", "string", "/healthz",
            "Path that answers 200 when the app is healthy; used by nginx, the ALB and readiness."),
    Setting("appStaticUrl", "string", "/static/",
            "URL prefix nginx serves straight from appStaticDir (empty: no static files)."),
    Setting("appStaticDir", "string", "static",
            "Directory of static files, relative to the app directory."),
    Setting("appWorkers", "integer", 0,
            "gunicorn worker processes; 0 derives 2 x vCPU + 1 on the server at boot."),
    Setting("appEnv", "array", [],
            "Plain environment variables as KEY=value (KEY in [A-Z_][A-Z0-9_]*). Never secrets."),
    Setting("appSecrets", "array", [],
            "Secrets as KEY=/ssm/parameter/name: read from SSM Parameter Store at boot; "
            "the instance role may read exactly these parameters."),
    Setting("appPreStart", "array", [],
            "Commands run in the app directory with the venv active before gunicorn starts "
            "(e.g. 'python manage.py migrate --noinput'). One line each."),
    Setting("appSecretValues", "array", [],
            "Secrets the program stores for you as KEY=value, each in an SSM SecureString under "
            "/<project>/<stack>/<app>/secrets/KEY. Set them with `pulumi config set --secret "
            "--path 'appSecretValues[0]' KEY=value`: plaintext values are refused.", secret=True),
    Setting("appReleasesKept", "integer", 5,
            "Releases kept on each server for rollback (1-20)."),
    Setting("appTimeoutSeconds", "integer", 30,
            "Request timeout in seconds for gunicorn workers and nginx's proxy (1-3600)."),
    Setting("appMaxBodyMib", "integer", 10,
            "Largest request body nginx accepts, in MiB (client_max_body_size; 1-1024)."),
    # --- server ---
    Setting("serverVcpus", "integer", 2, "Minimum vCPUs per server (1-192)."),
    Setting("serverMemoryGib", "integer", 4, "Minimum memory per server in GiB (1-1024)."),
    Setting("serverDiskGib", "integer", 20,
            "Encrypted gp3 root volume size in GiB (8-16384)."),
    Setting("serverArch", "string", "x86_64", "CPU architecture: x86_64 or arm64."),
    Setting("serverBurstable", "boolean", True,
            "Allow burstable (t-family) instance types when choosing the cheapest fit."),
    Setting("serverCount", "integer", 1,
            f"Number of servers (1-{MAX_SERVERS}). More than one puts them behind a load "
            "balancer; a change resizes the group in place. With serverMinCount/serverMaxCount "
            "it is the size the group starts with: after that the CPU target moves it between "
            "the bounds and `pulumi up` leaves it there (change the bounds to move it)."),
    Setting("serverMinCount", "integer", 0,
            "Autoscaling floor (0: serverCount). Any of serverCount > 1, serverMinCount or "
            "serverMaxCount puts the servers in an Auto Scaling group."),
    Setting("serverMaxCount", "integer", 0, "Autoscaling ceiling (0: serverCount)."),
    Setting("scalingCpuTarget", "integer", 50,
            "Average CPU percent the Auto Scaling group tracks by adding or removing servers "
            "(10-90)."),
    Setting("refreshMinHealthyPercent", "integer", 90,
            "Share of servers kept in service while a launch-template change replaces them "
            "(0-100)."),
    Setting("serverOs", "string", "debian-12", "Operating system: debian-12 or ubuntu-24.04."),
    Setting("serverImage", "string", "",
            "AMI id the servers run (ami-...), pinned per stack: `python scripts/image.py --stack "
            "<stack>` pins the newest official serverOs image. Empty: the newest official image "
            "when a server is first created, then kept: a newly published image never replaces "
            "servers."),
    Setting("serverInstanceType", "string", "",
            "Pin an instance type (e.g. m7i.large) instead of choosing by spec. Empty: choose."),
    # --- network ---
    Setting("networkCreateVpc", "boolean", False,
            "false: use the region's default VPC. true: create a VPC with public subnets."),
    Setting("networkCidr", "string", "10.42.0.0/16",
            "IPv4 CIDR of the created VPC: a private range, prefix /16 to /24."),
    Setting("networkAzCount", "integer", 2,
            "Availability zones (one public subnet each) of the created VPC: 2-6."),
    # --- access ---
    Setting("adminCidrs", "array", [],
            "CIDRs allowed to SSH (port 22). Empty: no SSH at all; use SSM Session Manager."),
    Setting("sshPublicKey", "string", "",
            "OpenSSH public key installed for the admin user: ssh-ed25519, or ssh-rsa of 2048-4096 "
            "bits (the types EC2 imports). Empty: none (SSM only)."),
    # --- domain ---
    Setting("domainZone", "string", "",
            "Route53 public hosted zone, e.g. example.com. Empty: no DNS records."),
    Setting("domainHostname", "string", "",
            "Fully-qualified name of the app inside domainZone, e.g. app.example.com."),
    Setting("domainExtraNames", "array", [],
            "More names inside domainZone pointing at the app, e.g. www.example.com."),
    # --- tls ---
    Setting("tlsMode", "string", "none",
            "none | acm (ACM certificate on the load balancer) | letsencrypt (certbot on a single "
            "server) | selfsigned (server-made certificate; local runs)."),
    Setting("tlsEmail", "string", "",
            "Contact e-mail for Let's Encrypt (required with tlsMode letsencrypt)."),
    # --- bootstrap sources (private mirrors, corporate proxies, the local VM) ---
    Setting("aptMirror", "string", "",
            "Debian/Ubuntu package mirror URL (http:// or https://). Empty: the image's default."),
    Setting("pipIndexUrl", "string", "",
            "Python package index URL (simple API) for each release's venv and for uv itself. "
            "Empty: PyPI."),
    Setting("extraCaCertFiles", "array", [],
            "PEM files (paths relative to the project) of extra CAs the server must trust, "
            "e.g. a corporate proxy's."),
    # --- readiness gate ---
    Setting("readinessCheck", "boolean", True,
            "`pulumi up` waits until cloud-init is done and the app answers healthy, and fails "
            "with the reason otherwise. false: return as soon as the resources exist."),
    Setting("readinessTimeoutSeconds", "integer", 900,
            "How long `pulumi up` waits for each server and for the public URL (60-7200)."),
    Setting("readinessIntervalSeconds", "integer", 5,
            "First poll interval while waiting, doubled up to 30 s (1-60)."),
    # --- monitoring ---
    Setting("alertEmails", "array", [],
            "E-mail addresses subscribed to the stack's alarm topic (each confirms once)."),
    Setting("alarmCpuPercent", "integer", 80, "CPU alarm threshold, percent (1-100)."),
    Setting("alarmMemoryPercent", "integer", 85, "Memory alarm threshold, percent (1-100)."),
    Setting("alarmDiskPercent", "integer", 85, "Root disk alarm threshold, percent (1-100)."),
    Setting("alarm5xxPercent", "integer", 5,
            "Load balancer 5xx alarm: percent of requests over 5 minutes (1-100)."),
    Setting("alarmCertExpiryDays", "integer", 30,
            "Alarm when the ACM certificate expires within this many days (1-365)."),
    Setting("logRetentionDays", "integer", 30,
            "Retention of the CloudWatch log groups, in days (a value CloudWatch accepts: "
            "1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, ...)."),
    # --- tags ---
    Setting("tags", "array", [],
            "Extra tags as Key=Value, added to every taggable resource beside the standard ones."),
)

SETTINGS_BY_KEY = {s.key: s for s in SETTINGS}


class ConfigError(pulumi.RunError):
    """Every configuration problem at once; a RunError so Pulumi prints it without a traceback."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{len(problems)} configuration problem(s):\n{lines}")


@dataclass(frozen=True)
class AppConfig:
    name: str
    repo: str
    ref: str
    path: str
    wsgi: str
    requirements: str
    health_path: str
    static_url: str
    static_dir: str
    workers: int
    timeout_seconds: int
    max_body_mib: int
    env: dict[str, str]
    secrets: dict[str, str]  # env var name -> SSM parameter name (both kinds below)
    stored_secrets: tuple[str, ...]  # keys of appSecretValues: the program stores these
    pre_start: tuple[str, ...]
    releases_kept: int

    @property
    def bundled(self) -> bool:
        return self.repo == ""


@dataclass(frozen=True)
class ServerConfig:
    vcpus: int
    memory_gib: int
    disk_gib: int
    arch: str
    burstable: bool
    count: int
    os: str
    instance_type: str
    image: str = ""  # "" = the newest official image at first create, then kept
    min_count: int = 0
    max_count: int = 0

    @property
    def autoscaling(self) -> bool:
        """Several servers, or bounds to scale between: an Auto Scaling group runs them."""
        return self.count > 1 or self.min_count > 0 or self.max_count > 0

    @property
    def floor(self) -> int:
        return self.min_count or self.count

    @property
    def ceiling(self) -> int:
        return self.max_count or self.count


@dataclass(frozen=True)
class ScalingConfig:
    cpu_target: int
    refresh_min_healthy_percent: int


@dataclass(frozen=True)
class MonitoringConfig:
    alert_emails: tuple[str, ...]
    cpu_percent: int
    memory_percent: int
    disk_percent: int
    http_5xx_percent: int
    cert_expiry_days: int
    log_retention_days: int


@dataclass(frozen=True)
class NetworkConfig:
    create_vpc: bool
    cidr: str
    az_count: int


@dataclass(frozen=True)
class AccessConfig:
    admin_cidrs: tuple[str, ...]
    ssh_public_key: str


@dataclass(frozen=True)
class DomainConfig:
    zone: str
    hostname: str
    extra_names: tuple[str, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return (self.hostname, *self.extra_names) if self.hostname else ()


@dataclass(frozen=True)
class TlsConfig:
    mode: str
    email: str


@dataclass(frozen=True)
class ReadinessConfig:
    enabled: bool
    timeout_seconds: int
    interval_seconds: int


@dataclass(frozen=True)
class SourcesConfig:
    apt_mirror: str
    pip_index_url: str
    extra_ca_certs: tuple[str, ...]  # PEM texts, read at load time


@dataclass(frozen=True)
class StackConfig:
    project: str
    stack: str
    region: str
    app: AppConfig
    server: ServerConfig
    network: NetworkConfig
    access: AccessConfig
    domain: DomainConfig
    tls: TlsConfig
    sources: SourcesConfig
    readiness: ReadinessConfig
    scaling: ScalingConfig
    monitoring: MonitoringConfig
    extra_tags: dict[str, str] = field(default_factory=dict)

    @property
    def load_balanced(self) -> bool:
        """An ALB fronts the servers when there are several, or when ACM terminates TLS."""
        return self.server.autoscaling or self.tls.mode == "acm"

    @property
    def lb_idle_timeout(self) -> int:
        """Seconds the load balancer keeps an idle connection: longer than a request may run."""
        return max(60, self.app.timeout_seconds + 5)

    @property
    def https(self) -> bool:
        return self.tls.mode != "none"

    @property
    def prefix(self) -> str:
        """Resource-name prefix, unique per app and stack."""
        return f"{self.app.name}-{self.stack}"

    @property
    def tags(self) -> dict[str, str]:
        standard = {
            "webstack:project": self.project,
            "webstack:stack": self.stack,
            "webstack:app": self.app.name,
            "ManagedBy": "pulumi",
        }
        return {**self.extra_tags, **standard}


# ---------------------------------------------------------------------------------------------
# Validation helpers: each returns the cleaned value or records a problem and returns None.

_APP_NAME = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_WSGI = re.compile(rf"^{_IDENT}(\.{_IDENT})*:{_IDENT}(\.{_IDENT})*$")
_ENV_KEY = re.compile(r"^[A-Z_][A-Z0-9_]*$")
_SSM_NAME = re.compile(r"^(/[A-Za-z0-9_.\-]+)+$|^[A-Za-z0-9_.\-]+$")
_GIT_HTTPS = re.compile(r"^https://[A-Za-z0-9.\-]+(:\d+)?(/[A-Za-z0-9._~%+\-]+)+/?$")
_GIT_SSH = re.compile(r"^(ssh://[A-Za-z0-9._\-]+@[A-Za-z0-9.\-]+(:\d+)?|"
                      r"[A-Za-z0-9._\-]+@[A-Za-z0-9.\-]+:)[A-Za-z0-9._~/\-]+$")
_GIT_REF_BAD = re.compile(r"(^[-/.])|(\.\.)|([\s~^:?*\[\\\x00-\x1f\x7f'\"`$;&|<>(){}])|(@\{)|"
                          r"(/\.)|(\.lock$)|(/$)|(\.$)|(//)")
_REL_PATH = re.compile(r"^[A-Za-z0-9._\-]+(/[A-Za-z0-9._\-]+)*$")
_URL_PATH = re.compile(r"^/([A-Za-z0-9._~\-]+/?)*$")
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_EMAIL = re.compile(r"^[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}$")
_SSH_KEY = re.compile(r"^(ssh-ed25519|ssh-rsa) ([A-Za-z0-9+/]+={0,3})( [^\n\r]{0,200})?$")
_AMI = re.compile(r"^ami-([0-9a-f]{8}|[0-9a-f]{17})$")
RSA_BITS = (2048, 4096)  # EC2 imports RSA and ED25519 only; RSA below 2048 bits is weak
_TAG_TEXT = re.compile(r"^[\w .:/=+\-@]*$", re.UNICODE)
_HTTP_URL = re.compile(r"^https?://[A-Za-z0-9.\-]+(:\d+)?(/[A-Za-z0-9._~%+\-/]*)?$")
_PEM_BLOCK = re.compile(r"-----BEGIN CERTIFICATE-----\r?\n[A-Za-z0-9+/=\r\n]+"
                        r"-----END CERTIFICATE-----")
_MAX_VALUE = 4096


def _shown(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return repr(text if len(text) <= 80 else text[:77] + "...")


class _Collector:
    def __init__(self, raw: Mapping[str, str | None]):
        self.raw = raw
        self.problems: list[str] = []

    def bad(self, key: str, value: Any, expected: str) -> None:
        full = f"{NAMESPACE}:{key}" if ":" not in key else key
        setting = SETTINGS_BY_KEY.get(key)
        shown = "(value hidden)" if setting and setting.secret else _shown(value)
        self.problems.append(f"{full} = {shown}: expected {expected}")

    # -- typed readers (types as Pulumi's CLI would pass them: strings) --

    def _raw(self, key: str) -> str | None:
        return self.raw.get(SETTINGS_BY_KEY[key].full_key)

    def string(self, key: str) -> str:
        raw = self._raw(key)
        value = SETTINGS_BY_KEY[key].default if raw is None else raw
        if len(value) > _MAX_VALUE:
            self.bad(key, value, f"at most {_MAX_VALUE} characters")
            return SETTINGS_BY_KEY[key].default
        return value.strip()

    def integer(self, key: str, low: int, high: int) -> int:
        raw = self._raw(key)
        default = SETTINGS_BY_KEY[key].default
        if raw is None:
            return default
        try:
            value = int(raw.strip())
        except ValueError:
            self.bad(key, raw, f"a whole number from {low} to {high}")
            return default
        if not low <= value <= high:
            self.bad(key, raw, f"a whole number from {low} to {high}")
            return default
        return value

    def boolean(self, key: str) -> bool:
        raw = self._raw(key)
        if raw is None:
            return SETTINGS_BY_KEY[key].default
        lowered = raw.strip().lower()
        if lowered in ("true", "false"):
            return lowered == "true"
        self.bad(key, raw, "true or false")
        return SETTINGS_BY_KEY[key].default

    def array(self, key: str) -> list[str]:
        raw = self._raw(key)
        if raw is None:
            return list(SETTINGS_BY_KEY[key].default)
        try:
            value = json.loads(raw)
        except ValueError:
            value = None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.bad(key, raw, "a list of strings, e.g. ['a', 'b'] in the stack file")
            return []
        return [v.strip() for v in value]

    def choice(self, key: str, choices: tuple[str, ...]) -> str:
        value = self.string(key)
        if value not in choices:
            self.bad(key, value, "one of " + ", ".join(choices))
            return SETTINGS_BY_KEY[key].default
        return value

    def matching(self, key: str, pattern: re.Pattern[str], expected: str,
                 allow_empty: bool = False) -> str:
        value = self.string(key)
        if allow_empty and value == "":
            return value
        if not pattern.match(value):
            self.bad(key, value, expected)
        return value

    def pairs(self, key: str, check_value: Callable[[str], bool], expected: str) -> dict[str, str]:
        """KEY=value list → dict; keys must be env-var names and unique."""
        out: dict[str, str] = {}
        for item in self.array(key):
            name, sep, value = item.partition("=")
            if not sep or not _ENV_KEY.match(name):
                self.bad(key, item, f"KEY=value with KEY matching [A-Z_][A-Z0-9_]* ({expected})")
            elif name in out:
                self.bad(key, item, f"each KEY once; {name} is given twice")
            elif not check_value(value):
                self.bad(key, item, expected)
            else:
                out[name] = value
        return out


def _is_private_cidr(text: str) -> bool:
    try:
        net = ipaddress.ip_network(text, strict=True)
    except ValueError:
        return False
    return isinstance(net, ipaddress.IPv4Network) and net.is_private and 16 <= net.prefixlen <= 24


def _check_cidr(c: _Collector, key: str, text: str) -> None:
    try:
        net = ipaddress.ip_network(text, strict=True)
    except ValueError as err:
        hint = ""
        with contextlib.suppress(ValueError):
            hint = f"; did you mean {ipaddress.ip_network(text, strict=False)}?"
        c.bad(key, text, f"an IPv4 or IPv6 CIDR such as 203.0.113.0/24 ({err}{hint})")
        return
    if net.prefixlen == 0:
        c.bad(key, text, "a specific network: SSH from the whole internet is never allowed "
                         "(use SSM Session Manager, or your office/VPN CIDR)")
    elif (net.version == 4 and net.prefixlen < 8) or (net.version == 6 and net.prefixlen < 16):
        c.bad(key, text, "at most /8 (IPv4) or /16 (IPv6) wide for SSH access")


def _read_pem(path: str, base_dir: Path) -> str | None:
    """The certificate blocks of a PEM file, normalised; None when unreadable or not PEM."""
    try:
        text = (base_dir / path).read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError):
        return None
    blocks = [b.replace("\r\n", "\n") for b in _PEM_BLOCK.findall(text)]
    return "\n".join(blocks) + "\n" if blocks else None


def _importable_key(line: str) -> bool:
    """An ed25519 or RSA public key whose blob says the same type (what ImportKeyPair checks)."""
    match = _SSH_KEY.match(line)
    if not match:
        return False
    try:
        blob = base64.b64decode(match.group(2), validate=True)
    except ValueError:
        return False
    fields: list[bytes] = []
    while blob and len(fields) < 4:
        size = int.from_bytes(blob[:4], "big")
        if len(blob) < 4 + size:
            return False
        fields.append(blob[4:4 + size])
        blob = blob[4 + size:]
    if blob or not fields or fields[0].decode("ascii", "replace") != match.group(1):
        return False
    if match.group(1) == "ssh-ed25519":
        return len(fields) == 2 and len(fields[1]) == 32
    if len(fields) != 3:  # ssh-rsa: exponent, modulus
        return False
    bits = int.from_bytes(fields[2], "big").bit_length()
    return RSA_BITS[0] <= bits <= RSA_BITS[1]


def _dns_name(name: str) -> bool:
    if len(name) > 253 or "." not in name:
        return False
    return all(_LABEL.match(label) for label in name.split("."))


def _in_zone(name: str, zone: str) -> bool:
    return name == zone or name.endswith("." + zone)


def _lower_dns(text: str) -> str:
    return text.lower().rstrip(".")


def _secret_keys(c: _Collector) -> list[str]:
    """The KEYs of appSecretValues; problems name the entry by position, never its value."""
    keys: list[str] = []
    for i, item in enumerate(c.array("appSecretValues")):
        key, sep, value = item.partition("=")
        where = f"{NAMESPACE}:appSecretValues[{i}]"
        if not sep or not _ENV_KEY.match(key):
            c.problems.append(f"{where} (value hidden): expected KEY=value with KEY matching "
                              "[A-Z_][A-Z0-9_]*")
        elif key in keys:
            c.problems.append(f"{where}: expected each KEY once; {key} is given twice")
        elif not 0 < len(value) <= 4096:
            c.problems.append(f"{where} ({key}): expected a value of 1-4096 characters")
        else:
            keys.append(key)
    return keys


def stored_secret_values(raw_items: list[str]) -> dict[str, str]:
    """KEY → value of appSecretValues, for the one place that stores them (already validated)."""
    return {key: value for key, _, value in (item.partition("=") for item in raw_items)}


def parse(raw: Mapping[str, str | None], *, project: str, stack: str,
          region: str | None, supported_regions: tuple[str, ...],
          base_dir: Path = PROJECT_DIR, secret_keys: frozenset[str] = frozenset()
          ) -> StackConfig:
    """Validate raw config strings (`namespace:key` → string as Pulumi stores it).

    `secret_keys` are the keys Pulumi holds encrypted; secret values are checked for form here
    but never kept in the result (see `stored_secret_values`)."""
    c = _Collector(raw)

    unknown = sorted(k for k in raw if k.startswith(f"{NAMESPACE}:")
                     and k.split(":", 1)[1] not in SETTINGS_BY_KEY)
    for key in unknown:
        c.problems.append(f"{key} is not a setting of this project: expected one of "
                          + ", ".join(s.key for s in SETTINGS))

    if not region:
        c.problems.append("aws:region is not set: expected one of " + ", ".join(supported_regions)
                          + " (pulumi config set aws:region us-east-1)")
    elif region not in supported_regions:
        c.bad("aws:region", region, "one of " + ", ".join(supported_regions)
              + " (the regions the shipped price table covers)")

    # --- app ---
    name = c.matching("appName", _APP_NAME,
                      "1-32 chars of a-z, 0-9 and '-', starting with a letter")
    repo = c.string("appRepo")
    if repo and not (_GIT_HTTPS.match(repo) or _GIT_SSH.match(repo)):
        c.bad("appRepo", repo, "a git URL: https://host/path, ssh://user@host/path or "
                               "user@host:path (no spaces, quotes or shell characters)")
    ref = c.string("appRef")
    if not ref or len(ref) > 200 or _GIT_REF_BAD.search(ref):
        c.bad("appRef", ref, "a git tag, branch or commit SHA (no spaces, '..', shell or "
                             "control characters; not starting with '-')")
    app_path = c.matching("appPath", _REL_PATH, "a relative path without '..', e.g. src/app",
                          allow_empty=True)
    if ".." in app_path.split("/"):
        c.bad("appPath", app_path, "a relative path without '..'")
    wsgi = c.matching("appWsgi", _WSGI, "module:callable, e.g. mysite.wsgi:application")
    reqs = c.matching("appRequirements", _REL_PATH, "a relative file path, e.g. requirements.txt")
    if ".." in reqs.split("/"):
        c.bad("appRequirements", reqs, "a relative file path without '..'")
    health = c.matching("appHealthPath", _URL_PATH, "a URL path such as /healthz")
    static_url = c.matching("appStaticUrl", _URL_PATH, "a URL path ending in '/', e.g. /static/",
                            allow_empty=True)
    if static_url and (not static_url.endswith("/") or static_url == "/"):
        c.bad("appStaticUrl", static_url, "a URL path ending in '/', other than '/' itself")
    static_dir = c.matching("appStaticDir", _REL_PATH, "a relative path, e.g. static")
    if ".." in static_dir.split("/"):
        c.bad("appStaticDir", static_dir, "a relative path without '..'")
    workers = c.integer("appWorkers", 0, 64)
    timeout = c.integer("appTimeoutSeconds", 1, 3600)
    max_body = c.integer("appMaxBodyMib", 1, 1024)

    def printable(v: str) -> bool:
        return v.isprintable() and len(v) <= _MAX_VALUE

    env = c.pairs("appEnv", printable, "a value of printable characters on one line")
    secrets = c.pairs("appSecrets", lambda v: bool(_SSM_NAME.match(v)) and len(v) <= 1011,
                      "KEY=/ssm/parameter/name (letters, digits, _ . - and /)")
    stored = _secret_keys(c)
    if stored and f"{NAMESPACE}:appSecretValues" not in secret_keys:
        c.problems.append(f"{NAMESPACE}:appSecretValues is stored in plaintext: expected it set "
                          "with `pulumi config set --secret --path 'appSecretValues[0]' "
                          "KEY=value` (and the plaintext removed from the stack file)")
    for key in stored:
        if key in secrets:
            c.problems.append(f"{NAMESPACE}:appSecrets and {NAMESPACE}:appSecretValues both set "
                              f"{key}: expected each variable in one of them")
        else:
            secrets[key] = naming.secret_parameter(project, stack, name, key)
    for dup in sorted(set(env) & set(secrets)):
        c.problems.append(f"{NAMESPACE}:appEnv and {NAMESPACE}:appSecrets/appSecretValues both "
                          f"set {dup}: expected each variable in one of them")
    pre_start = []
    for cmd in c.array("appPreStart"):
        if not cmd or not cmd.isprintable():
            c.bad("appPreStart", cmd, "one non-empty command line per entry")
        else:
            pre_start.append(cmd)

    # --- server ---
    vcpus = c.integer("serverVcpus", 1, 192)
    memory = c.integer("serverMemoryGib", 1, 1024)
    disk = c.integer("serverDiskGib", 8, 16384)
    arch = c.choice("serverArch", ARCH_CHOICES)
    burstable = c.boolean("serverBurstable")
    count = c.integer("serverCount", 1, MAX_SERVERS)
    min_count = c.integer("serverMinCount", 0, MAX_SERVERS)
    max_count = c.integer("serverMaxCount", 0, MAX_SERVERS)
    if min_count and min_count > count:
        c.problems.append(f"{NAMESPACE}:serverMinCount = {min_count} is above serverCount = "
                          f"{count}: expected serverMinCount <= serverCount")
    if max_count and max_count < max(count, min_count):
        c.problems.append(f"{NAMESPACE}:serverMaxCount = {max_count} is below serverCount = "
                          f"{count}: expected serverMaxCount >= serverCount")
    scaled = count > 1 or min_count > 0 or max_count > 0
    cpu_target = c.integer("scalingCpuTarget", 10, 90)
    min_healthy = c.integer("refreshMinHealthyPercent", 0, 100)
    os_name = c.choice("serverOs", OS_CHOICES)
    image = c.matching("serverImage", _AMI, "an AMI id such as ami-0123456789abcdef0 "
                       "(python scripts/image.py --stack <stack> pins the newest)",
                       allow_empty=True)
    itype = c.matching("serverInstanceType", re.compile(r"^[a-z][a-z0-9\-]*\.[a-z0-9]+$"),
                       "an EC2 instance type such as m7i.large", allow_empty=True)

    # --- network ---
    create_vpc = c.boolean("networkCreateVpc")
    cidr = c.string("networkCidr")
    if create_vpc and not _is_private_cidr(cidr):
        c.bad("networkCidr", cidr, "a private IPv4 CIDR (10/8, 172.16/12, 192.168/16) with "
                                   "prefix /16 to /24 and no host bits, e.g. 10.42.0.0/16")
    az_count = c.integer("networkAzCount", 2, 6)

    # --- access ---
    admin = c.array("adminCidrs")
    for item in admin:
        _check_cidr(c, "adminCidrs", item)
    ssh_key = c.string("sshPublicKey")
    if ssh_key and not _importable_key(ssh_key):
        c.bad("sshPublicKey", ssh_key, "an OpenSSH public key line EC2 can import: ssh-ed25519, "
                                       f"or ssh-rsa of {RSA_BITS[0]}-{RSA_BITS[1]} bits, e.g. "
                                       "'ssh-ed25519 AAAA... me@host'")

    # --- domain ---
    zone = _lower_dns(c.string("domainZone"))
    hostname = _lower_dns(c.string("domainHostname"))
    extra = [_lower_dns(n) for n in c.array("domainExtraNames")]
    if zone and not _dns_name(zone):
        c.bad("domainZone", zone, "a DNS zone such as example.com")
    if (hostname or extra) and not zone:
        c.problems.append(f"{NAMESPACE}:domainZone is empty but names are set: expected the "
                          "Route53 hosted zone that holds domainHostname")
    for key, names in (("domainHostname", [hostname] if hostname else []),
                       ("domainExtraNames", extra)):
        for n in names:
            if not _dns_name(n):
                c.bad(key, n, "a fully-qualified DNS name such as app.example.com")
            elif zone and not _in_zone(n, zone):
                c.bad(key, n, f"a name inside the zone {zone} (e.g. app.{zone})")
    if extra and not hostname:
        c.problems.append(f"{NAMESPACE}:domainExtraNames is set without domainHostname: "
                          "expected domainHostname as the main name")
    if len(set(extra) | {hostname}) != len(extra) + 1 and hostname:
        c.bad("domainExtraNames", extra, "names that differ from each other and domainHostname")

    # --- tls ---
    tls = c.choice("tlsMode", TLS_CHOICES)
    email = c.matching("tlsEmail", _EMAIL, "an e-mail address", allow_empty=True)
    if tls in ("acm", "letsencrypt") and not hostname:
        c.problems.append(f"{NAMESPACE}:tlsMode = {tls!r} needs a name: expected "
                          "domainZone and domainHostname to be set")
    if tls in ("acm", "letsencrypt") and len(hostname) > MAX_CERT_NAME:
        c.bad("domainHostname", hostname, f"at most {MAX_CERT_NAME} characters with tlsMode "
              f"{tls} (a certificate's first name is its subject CN; put longer names in "
              "domainExtraNames)")
    servers = f"serverCount = {count}" + (
        f", serverMinCount = {min_count}, serverMaxCount = {max_count}"
        if min_count or max_count else "")
    if tls == "selfsigned" and scaled:
        c.problems.append(f"{NAMESPACE}:tlsMode = 'selfsigned' with {servers}: "
                          "expected serverCount 1 and no autoscaling (a load balancer cannot "
                          "present a server's self-signed certificate); use tlsMode acm")
    if tls == "letsencrypt":
        if scaled:
            c.problems.append(f"{NAMESPACE}:tlsMode = 'letsencrypt' with {servers}: "
                              "expected serverCount 1 and no autoscaling (each server would "
                              "fight for the same certificate); use tlsMode acm behind the "
                              "load balancer")
        if not email:
            c.problems.append(f"{NAMESPACE}:tlsEmail is empty: expected a contact e-mail "
                              "for Let's Encrypt when tlsMode is letsencrypt")

    # --- sources ---
    mirror = c.matching("aptMirror", _HTTP_URL, "an http:// or https:// URL", allow_empty=True)
    index = c.matching("pipIndexUrl", _HTTP_URL, "an http:// or https:// URL", allow_empty=True)
    pems = []
    for path in c.array("extraCaCertFiles"):
        pem = _read_pem(path, base_dir)
        if pem is None:
            c.bad("extraCaCertFiles", path, "a readable PEM file holding one or more "
                                            "'-----BEGIN CERTIFICATE-----' blocks")
        else:
            pems.append(pem)

    # --- readiness ---
    gate = c.boolean("readinessCheck")
    gate_timeout = c.integer("readinessTimeoutSeconds", 60, 7200)
    gate_interval = c.integer("readinessIntervalSeconds", 1, 60)

    # --- monitoring ---
    emails = c.array("alertEmails")
    for item in emails:
        if not _EMAIL.match(item):
            c.bad("alertEmails", item, "an e-mail address")
    cpu_alarm = c.integer("alarmCpuPercent", 1, 100)
    memory_alarm = c.integer("alarmMemoryPercent", 1, 100)
    disk_alarm = c.integer("alarmDiskPercent", 1, 100)
    http_alarm = c.integer("alarm5xxPercent", 1, 100)
    cert_days = c.integer("alarmCertExpiryDays", 1, 365)
    retention = c.integer("logRetentionDays", 1, 3653)
    if retention not in LOG_RETENTION_DAYS:
        c.bad("logRetentionDays", str(retention),
              "one of " + ", ".join(map(str, LOG_RETENTION_DAYS)))
    releases_kept = c.integer("appReleasesKept", 1, 20)

    # --- tags ---
    tags: dict[str, str] = {}
    for item in c.array("tags"):
        key, sep, value = item.partition("=")
        if (not sep or not key or len(key) > 128 or len(value) > 256
                or not _TAG_TEXT.match(key) or not _TAG_TEXT.match(value)):
            c.bad("tags", item, "Key=Value (key 1-128, value 0-256 chars of letters, digits, "
                                "spaces and _ . : / = + - @)")
        elif key.lower().startswith(("aws:", "webstack:")) or key == "ManagedBy":
            c.bad("tags", item, "a key not starting with aws: or webstack: and not ManagedBy "
                                "(those are reserved)")
        else:
            tags[key] = value

    if c.problems:
        raise ConfigError(c.problems)

    return StackConfig(
        project=project, stack=stack, region=region or "",
        app=AppConfig(name=name, repo=repo, ref=ref, path=app_path, wsgi=wsgi, requirements=reqs,
                      health_path=health, static_url=static_url, static_dir=static_dir,
                      workers=workers, timeout_seconds=timeout, max_body_mib=max_body,
                      env=env, secrets=secrets, stored_secrets=tuple(stored),
                      pre_start=tuple(pre_start), releases_kept=releases_kept),
        server=ServerConfig(vcpus=vcpus, memory_gib=memory, disk_gib=disk, arch=arch,
                            burstable=burstable, count=count, os=os_name, instance_type=itype,
                            image=image, min_count=min_count, max_count=max_count),
        scaling=ScalingConfig(cpu_target=cpu_target, refresh_min_healthy_percent=min_healthy),
        monitoring=MonitoringConfig(
            alert_emails=tuple(emails), cpu_percent=cpu_alarm, memory_percent=memory_alarm,
            disk_percent=disk_alarm, http_5xx_percent=http_alarm, cert_expiry_days=cert_days,
            log_retention_days=retention),
        network=NetworkConfig(create_vpc=create_vpc, cidr=cidr, az_count=az_count),
        access=AccessConfig(admin_cidrs=tuple(admin), ssh_public_key=ssh_key),
        domain=DomainConfig(zone=zone, hostname=hostname, extra_names=tuple(extra)),
        tls=TlsConfig(mode=tls, email=email),
        readiness=ReadinessConfig(enabled=gate, timeout_seconds=gate_timeout,
                                  interval_seconds=gate_interval),
        sources=SourcesConfig(apt_mirror=mirror, pip_index_url=index, extra_ca_certs=tuple(pems)),
        extra_tags=tags,
    )


def load(supported_regions: tuple[str, ...]) -> StackConfig:
    """Read this stack's settings from the Pulumi runtime and validate them."""
    # Every key the engine passed in, so that typos such as `serverCpus` are reported too. Read
    # raw: validation needs a secret's form (never its value in a message), not an Output.
    passed = set(runtime_config.CONFIG.get()) | set(runtime_config.get_config_env() or {})
    keys = {s.full_key for s in SETTINGS} | {k for k in passed if k.startswith(f"{NAMESPACE}:")}
    raw = {key: runtime_config.get_config(key) for key in keys}
    secret = frozenset(k for k in keys if runtime_config.is_config_secret(k))
    return parse(raw, project=pulumi.get_project(), stack=pulumi.get_stack(),
                 region=pulumi.Config("aws").get("region"), supported_regions=supported_regions,
                 secret_keys=secret)


def load_secret_values() -> dict[str, pulumi.Output[str]]:
    """appSecretValues as Pulumi secrets, KEY → value (validated by `load`, never logged)."""
    raw = runtime_config.get_config(f"{NAMESPACE}:appSecretValues")
    items = json.loads(raw) if raw else []
    return {k: pulumi.Output.secret(v) for k, v in stored_secret_values(items).items()}


def stack_file_settings(stack: str, project_dir: Path = PROJECT_DIR) -> dict[str, str]:
    """Pulumi.<stack>.yaml's `config:` as the CLI passes it to the program: every value a
    string, lists and maps as JSON. For offline tools (render, demo, tests), not `pulumi up`."""
    path = project_dir / f"Pulumi.{stack}.yaml"
    doc = yaml.safe_load(path.read_text(encoding="utf-8")) if path.exists() else None
    raw: dict[str, str] = {}
    for key, value in ((doc or {}).get("config") or {}).items():
        if isinstance(value, bool):
            raw[key] = "true" if value else "false"
        elif isinstance(value, list | dict):
            raw[key] = json.dumps(value)
        elif value is not None:
            raw[key] = str(value)
    return raw


def parse_stack(stack: str, overrides: Mapping[str, str] | None = None, *,
                project_dir: Path = PROJECT_DIR,
                supported_regions: tuple[str, ...] | None = None) -> StackConfig:
    """A stack file's validated settings, offline. Region support is sizing's concern, so by
    default the file's own region is accepted."""
    raw = {**stack_file_settings(stack, project_dir), **(overrides or {})}
    region = raw.get("aws:region")
    return parse(raw, project="webstack", stack=stack, region=region,
                 supported_regions=supported_regions or ((region,) if region else ()),
                 base_dir=project_dir)


def markdown_table() -> str:
    """The README's config reference, generated so it cannot drift from SETTINGS."""
    rows = ["| key | type | default | description |", "|---|---|---|---|"]
    for st in SETTINGS:
        default = json.dumps(st.default) if not isinstance(st.default, str) else (
            f"`{st.default}`" if st.default else '`""`')
        if not isinstance(st.default, str):
            default = f"`{default}`"
        rows.append(f"| `{st.key}` | {st.type} | {default} | {st.description} |")
    return "\n".join(rows)


def project_schema() -> dict[str, dict[str, Any]]:
    """`Pulumi.yaml`'s config block: every setting declared with type, default, description."""
    out: dict[str, dict[str, Any]] = {}
    for st in SETTINGS:
        entry: dict[str, Any] = {"type": st.type, "description": st.description,
                                 "default": st.default}
        if st.type == "array":
            entry["items"] = {"type": "string"}
        out[st.key] = entry
    return out
