"""The typed, validated settings the components read (`StackConfig` and its sections)."""

from __future__ import annotations

from dataclasses import dataclass, field

from components import naming


@dataclass(frozen=True)
class RepoCredential:
    """A private appRepo's deploy key or token: which setting holds it, and the SSM parameter
    the program stores it in (its value stays in Pulumi's config, never here)."""

    setting: str  # appRepoSshKey or appRepoToken
    parameter: str


@dataclass(frozen=True)
class AppConfig:
    name: str
    source: str  # the bundle's directory (absolute), "" for a git app
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
    build: tuple[str, ...]
    pre_start: tuple[str, ...]
    releases_kept: int
    bundles_kept: int
    repo_credential: RepoCredential | None = None  # None: a public appRepo (or none)
    repo_host_keys: tuple[str, ...] = ()  # known_hosts lines pinning an ssh appRepo's host
    repo_token_user: str = ""  # the user name git sends with the token
    kind: str = "python"  # appKind: python | static
    web_dir: str = ""  # appKind static: the web root, relative to the app directory ("": it)
    migrate: tuple[str, ...] = ()  # appMigrate: once per release across the fleet
    server: str = "gunicorn"  # appServer: gunicorn | uwsgi (appRuntime venv)
    runtime: str = "venv"  # appRuntime: venv | docker
    image: str = ""  # appImage: "" with docker = built from `source`'s dockerfile into ECR
    dockerfile: str = "Dockerfile"  # relative to the app directory
    image_credentials_secret: str = ""  # appImageCredentialsSecret (a non-ECR private registry)
    container_port: int = 8000
    images_kept: int = 10  # the ECR lifecycle rule's count

    @property
    def static(self) -> bool:
        """nginx serves the release's files itself: no app process, no gunicorn."""
        return self.kind == "static"

    @property
    def container(self) -> bool:
        """The app is a container image by digest (appRuntime docker): no venv, no WSGI server
        of ours."""
        return self.runtime == "docker"

    @property
    def builds_image(self) -> bool:
        """The program builds appSource's Dockerfile into the stack's ECR repository."""
        return self.container and not self.image

    @property
    def pulls_from_ecr(self) -> bool:
        """Servers pull the image from ECR (the stack's repository, or appImage's in ECR): the
        one decision behind the ECR credential helper and the role's pull grant."""
        return self.builds_image or (self.container and naming.ecr_registry(self.image)
                                     is not None)

    @property
    def uwsgi(self) -> bool:
        return self.server == "uwsgi" and not self.container and not self.static

    @property
    def venvs(self) -> bool:
        """Releases get venvs (and servers uv): a Python app's always, a static site's only for
        its build commands, a container's never."""
        return not self.container and (not self.static or bool(self.build))

    @property
    def from_git(self) -> bool:
        """Servers fetch the code from appRepo; otherwise it comes as a bundle of appSource."""
        return self.repo != ""


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
    db_connections_percent: int = 80
    db_free_storage_percent: int = 10
    cache_evictions: int = 1000


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
class DatabaseConfig:
    """An RDS instance the stack creates (`engine`), or one the user brings (`url_secret`)."""

    engine: str  # "" (none created) | postgres | mysql
    version: str  # the major version, e.g. "16" or "8.4"
    vcpus: int
    memory_gib: int
    instance_class: str  # "" = the cheapest class that fits vcpus and memory
    storage_gib: int
    max_storage_gib: int  # storage autoscaling ceiling; 0 = none
    multi_az: bool
    backup_days: int
    name: str  # the database created in it
    user: str  # the master user (its password is RDS-managed in Secrets Manager)
    protect: bool  # RDS deletion protection and Pulumi's protect
    final_snapshot: bool  # a snapshot when the instance is deleted
    url_secret: str = ""  # bring your own: a Secrets Manager secret (name or ARN) with the URL

    @property
    def created(self) -> bool:
        return self.engine != ""

    @property
    def enabled(self) -> bool:
        """The app has a database: servers write DATABASE_URL and migrations take its lock."""
        return self.created or self.url_secret != ""

    @property
    def port(self) -> int:
        return 5432 if self.engine == "postgres" else 3306


@dataclass(frozen=True)
class CacheConfig:
    """An ElastiCache cache the stack creates: memcached, or valkey (Redis-compatible)."""

    engine: str  # "" (none) | memcached | valkey
    version: str
    memory_gib: int  # 0 = the smallest node
    node_type: str  # "" = the cheapest node type that fits memory_gib
    nodes: int  # memcached: nodes; valkey: the primary and its replicas

    @property
    def enabled(self) -> bool:
        return self.engine != ""

    @property
    def port(self) -> int:
        return 11211 if self.engine == "memcached" else 6379


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
    database: DatabaseConfig
    cache: CacheConfig
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
        return naming.resource_prefix(self.app.name, self.stack)

    @property
    def tags(self) -> dict[str, str]:
        standard = {
            "webstack:project": self.project,
            "webstack:stack": self.stack,
            "webstack:app": self.app.name,
            "ManagedBy": "pulumi",
        }
        return {**self.extra_tags, **standard}

