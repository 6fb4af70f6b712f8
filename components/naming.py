"""Names both sides must agree on: what the program creates in AWS and what the server's
first boot reads or writes (SSM parameters, log groups, metric dimensions).

Pure functions of the config, so the renderer (before any resource exists) and the components
compute the same strings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from components.aws_names import fit, rule_for

if TYPE_CHECKING:  # config imports this module: names only, no cycle at run time
    from components.config import StackConfig

METRICS_NAMESPACE = "CWAgent"  # the CloudWatch agent's default
# Let's Encrypt's default ECDSA chain (leaf, intermediate, cross-signed roots) and its P-256 key
# measure about 5 KB (a chain like it, two names: 4.9 KB): over the Standard tier's 4 KB,
# within the Advanced tier's 8 KB.
TLS_PARAMETER_TIER = "Advanced"
ARTEFACT_PREFIX = "artefacts"  # in the stack's bucket: what the instance role may read
DATA_DIR_VARIABLE = "APP_DATA_DIR"  # where the app finds its writable directory (Paths.data)
# What the servers' secrets program (server/ssm_get.py) sets for a database and a cache
DATABASE_VARIABLES = ("DATABASE_URL", "DB_ENGINE", "DB_HOST", "DB_PORT", "DB_NAME", "DB_USER",
                      "DB_PASSWORD")
CACHE_VARIABLES = ("CACHE_URL", "CACHE_ENGINE", "CACHE_HOST", "CACHE_PORT", "CACHE_TLS",
                   "CACHE_PASSWORD")
BUNDLE_PREFIX = "bundles"  # the app's code bundles (appSource), beside the artefacts
MAX_APP_NAME = 32
# An app name: it names the system user, /srv/<name> and AWS resources (config checks the
# setting with it, the deploy tools their --app).
APP_NAME = rf"^[a-z][a-z0-9-]{{0,{MAX_APP_NAME - 1}}}$"


def resource_prefix(app: str, stack: str) -> str:
    """What every AWS name of one app and stack starts with (config.prefix; the ci stack scopes
    the deploy role's IAM writes to it)."""
    return f"{app}-{stack}"


def app_path(project: str, stack: str, app: str) -> str:
    """Every SSM parameter and log group of one app and stack lives under this path."""
    return f"/{project}/{stack}/{app}"


def secret_parameter(project: str, stack: str, app: str, key: str) -> str:
    """Where a secret set with `appSecretValues` is stored (SecureString)."""
    return f"{app_path(project, stack, app)}/secrets/{key}"


def repo_parameter(project: str, stack: str, app: str, kind: str) -> str:
    """Where the program stores a private appRepo's credential (SecureString): `kind` is
    ssh-key (appRepoSshKey) or token (appRepoToken)."""
    return f"{app_path(project, stack, app)}/repo/{kind}"


def release_ref_parameter(cfg: StackConfig) -> str:
    """The release pointer: what servers deploy, a git ref (appRepo) or `<sha256>@<version>` of
    the app's bundle (appSource). Read at each release, so new code needs no new servers."""
    return f"{app_path(cfg.project, cfg.stack, cfg.app.name)}/release-ref"


def database_parameter(cfg: StackConfig) -> str:
    """Where servers find the app's database (String, JSON without credentials: engine, host,
    port, name and the secret's ARN, or the secret of one the user brings): read at each app
    start, so a new endpoint or secret needs no new servers."""
    return f"{app_path(cfg.project, cfg.stack, cfg.app.name)}/database"


def cache_parameter(cfg: StackConfig) -> str:
    """Where servers find the app's cache (String, JSON: engine, host, port, tls and the AUTH
    token's secret ARN), read like `database_parameter`."""
    return f"{app_path(cfg.project, cfg.stack, cfg.app.name)}/cache"


def tls_parameter(cfg: StackConfig) -> str:
    """Holds the server's Let's Encrypt certificate and key (SecureString, written by the server
    after each issue): a replacement restores it instead of asking for a duplicate (5 a week)."""
    return f"{app_path(cfg.project, cfg.stack, cfg.app.name)}/tls/letsencrypt"


def bundle_key(app: str) -> str:
    """One key per app, so S3's versioning keeps the previous bundles and a lifecycle rule can
    keep a count of them; the pointer names the version and the sha256 its content must have."""
    return f"{BUNDLE_PREFIX}/{app}.tar"


def artefact_bucket(prefix: str, account: str, region: str) -> str:
    """The stack's own bucket for its server artefacts: S3 names are global, so the account and
    region make it ours; the prefix part is shortened (stably) when the whole would pass 63."""
    tail = f"-{account}-{region}"
    rule = rule_for("aws:s3/bucket:Bucket", "bucket")
    head = fit(prefix.lower(), replace(rule, limit=rule.limit - len(tail)))
    return head + tail


# A private ECR registry's host (commercial, GovCloud, China; FIPS endpoints): account, region.
_ECR_HOST = re.compile(r"^(\d{12})\.dkr\.ecr(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?$")


@dataclass(frozen=True)
class EcrRepository:
    account: str
    region: str
    name: str


def ecr_registry(image: str) -> EcrRepository | None:
    """The ECR repository an image reference names (servers pull it with the instance role, and
    the role may pull exactly it), or None for another registry."""
    host, sep, rest = image.partition("/")
    if not sep or not (m := _ECR_HOST.match(host)):
        return None
    name = re.split(r"[:@]", rest, maxsplit=1)[0]
    return EcrRepository(m.group(1), m.group(2), name)


def image_repository(cfg: StackConfig) -> str:
    """The stack's ECR repository, which an appSource build pushes to (lowercase: ECR's rule)."""
    return fit(cfg.prefix.lower(), rule_for("aws:ecr/repository:Repository", "name"))


def log_groups(cfg: StackConfig) -> dict[str, str]:
    """CloudWatch log groups by kind, created with retention by the program: the agent ships
    the first four; `run` holds Run Command's output of `webstack run` (the SSM agent writes it,
    one stream per command and server)."""
    base = app_path(cfg.project, cfg.stack, cfg.app.name)
    return {kind: f"{base}/{kind}" for kind in ("nginx-access", "nginx-error", "app",
                                                "cloud-init", "run")}


@dataclass(frozen=True)
class Paths:
    """Every server path the templates use, relative to the target's root."""

    root: str
    app: str

    def _at(self, path: str) -> str:
        return self.root + path

    @property
    def home(self) -> str:
        return self._at(f"/srv/{self.app}")

    @property
    def releases(self) -> str:
        return f"{self.home}/releases"

    @property
    def current(self) -> str:
        """Symlink to the release that serves (releases/<id>): switched by the release script."""
        return f"{self.home}/current"

    @property
    def src(self) -> str:
        """The serving release's code."""
        return f"{self.current}/src"

    @property
    def venvs(self) -> str:
        """Venvs by requirements hash, shared by the releases that have the same requirements."""
        return f"{self.home}/venvs"

    @property
    def logs(self) -> str:
        return self._at(f"/var/log/webstack/{self.app}")

    @property
    def etc(self) -> str:
        return self._at(f"/etc/webstack/{self.app}")

    @property
    def lib(self) -> str:
        return self._at(f"/usr/local/lib/webstack/{self.app}")

    def program(self, name: str) -> str:
        """A server program (setup, release, ...), where the artefact puts it."""
        return f"{self.lib}/{name}"

    @property
    def state(self) -> str:
        return self._at(f"/var/lib/webstack/{self.app}")

    @property
    def data(self) -> str:
        """The app's own writable directory (APP_DATA_DIR), kept across releases."""
        return f"{self.state}/data"

    @property
    def secrets_dir(self) -> str:
        return self._at(f"/run/webstack/{self.app}")

    @property
    def socket(self) -> str:
        return self._at(f"/run/webstack/{self.app}.sock")

    @property
    def runtime(self) -> str:
        return self._at(f"/run/{self.app}")

    @property
    def units(self) -> str:
        return self._at("/etc/systemd/system")

    @property
    def nginx(self) -> str:
        return self._at("/etc/nginx")

    @property
    def nginx_logs(self) -> str:
        return self._at("/var/log/nginx")
