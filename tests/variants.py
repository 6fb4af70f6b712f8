"""The one table of stack variants that every test tier uses: the program under mocks
(tests/unit), the renderer and the real tools, shellcheck, `cloud-init schema`, nginx -t,
systemd-analyze (tests/bootstrap), and the loopback runs, which pick from it. Each variant is a
stack file plus overrides, parsed the way the program parses it, so that what the program plans
is what the tools check; between them the variants take every branch of the program and the
templates."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache

from components import config, sizing
from components.config import PROJECT_DIR, StackConfig
from components.config.settings import SETTINGS
from devtools.mockrun import MockRun, RecordingMocks, run_program, stack_config
from tests.cases import ED25519_KEY, GOOD_ZONE, arr, ssh_key

# Pulumi holds these encrypted (`pulumi config set --secret`); the parser refuses them plain.
DIGEST = "sha256:" + "5e" * 32  # a pinned image: resolved without a registry
SECRET_KEYS = frozenset(s.full_key for s in SETTINGS if s.secret)


@dataclass(frozen=True)
class Variant:
    stack: str  # the Pulumi.<stack>.yaml it starts from
    overrides: Mapping[str, str] = field(default_factory=dict)


def stack_files() -> list[str]:
    """Stack names with a Pulumi.<stack>.yaml in the repo."""
    return sorted(p.name[len("Pulumi."):-len(".yaml")] for p in PROJECT_DIR.glob("Pulumi.*.yaml"))


VARIANTS: dict[str, Variant] = {
    # Each stack file as it is: dev (one server, plain HTTP), prod (ALB, ACM, own VPC).
    **{stack: Variant(stack) for stack in stack_files()},
    # One server, an env var with the loopback run's greeting.
    "plain": Variant("dev", {"webstack:appEnv": arr("APP_GREETING=Hello from the loopback run")}),
    # One server with a self-signed certificate; a body limit of its own.
    "selfsigned": Variant("dev", {"webstack:tlsMode": "selfsigned",
                                  "webstack:appMaxBodyMib": "1"}),
    # One server, Let's Encrypt for two names (certbot, DNS records, an email).
    "letsencrypt": Variant("dev", {**GOOD_ZONE, "webstack:tlsMode": "letsencrypt",
                                   "webstack:domainExtraNames": arr("www.example.com"),
                                   "webstack:tlsEmail": "ops@example.com"}),
    # Let's Encrypt plus SSH from an admin CIDR with a key, and an SSM secret.
    "dev-letsencrypt-ssh-secrets": Variant("dev", {
        **GOOD_ZONE, "webstack:domainExtraNames": arr("www.example.com"),
        "webstack:tlsMode": "letsencrypt", "webstack:tlsEmail": "ops@example.com",
        "webstack:adminCidrs": arr("203.0.113.0/24"),
        "webstack:sshPublicKey": ED25519_KEY,
        "webstack:appSecrets": arr("DATABASE_URL=/hello/dev/database-url")}),
    # A git app behind Let's Encrypt on one server, with an SSM secret.
    "git-letsencrypt": Variant("dev", {
        **GOOD_ZONE, "webstack:tlsMode": "letsencrypt", "webstack:tlsEmail": "ops@example.com",
        "webstack:appRepo": "https://git.example.com/acme/shop.git",
        "webstack:appSecrets": arr("DB_URL=/shop/db")}),
    # A fleet of two behind an ALB over plain HTTP, in the default VPC.
    "dev-two-plain-http": Variant("dev", {"webstack:serverCount": "2"}),
    # A fleet behind an ALB with ACM in a VPC of its own, from the dev stack file.
    "alb-acm": Variant("dev", {**GOOD_ZONE, "webstack:tlsMode": "acm", "webstack:serverCount": "2",
                               "webstack:networkCreateVpc": "true",
                               "webstack:networkCidr": "10.42.0.0/16"}),
    # Everything a server can be given: a git app in a sub-directory with its own WSGI,
    # requirements, workers and no static files, quoted env, SSM secrets, pre-start hooks,
    # Ubuntu, an apt mirror, a pip index, an extra CA, an SSH key.
    "full": Variant("dev", {
        "webstack:appName": "shop",
        "webstack:appRepo": "https://git.example.com/acme/shop.git",
        "webstack:appRef": "v1.2.3",
        "webstack:appPath": "src/site",
        "webstack:appWsgi": "site.wsgi:application",
        "webstack:appRequirements": "requirements/prod.txt",
        "webstack:appStaticUrl": "",
        "webstack:appWorkers": "3",
        "webstack:appEnv": arr("DJANGO_SETTINGS_MODULE=site.settings.prod",
                               "APP_GREETING=it's \"quoted\" $HOME `id` ü"),
        "webstack:appSecrets": arr("DATABASE_URL=/shop/prod/database-url",
                                   "SECRET_KEY=/shop/prod/secret-key"),
        "webstack:appPreStart": arr("python manage.py migrate --noinput",
                                    "python manage.py collectstatic --noinput"),
        "webstack:serverOs": "ubuntu-24.04",
        "webstack:aptMirror": "https://mirror.example.com/ubuntu",
        "webstack:pipIndexUrl": "https://pypi.example.com/simple/",
        "webstack:extraCaCertFiles": arr("tests/bootstrap/data/test-ca.pem"),
        "webstack:sshPublicKey": ssh_key(comment="ops@example"),
    }),
    # prod's fleet growing to four (scaling policies).
    "prod-fleet-acm": Variant("prod", {"webstack:serverMaxCount": "4"}),
    # Ubuntu on arm64, three servers across three AZs.
    "prod-ubuntu-arm-3": Variant("prod", {"webstack:serverOs": "ubuntu-24.04",
                                          "webstack:serverArch": "arm64",
                                          "webstack:serverCount": "3",
                                          "webstack:networkAzCount": "3"}),
    # A pinned git app (a rollout), secrets the stack stores (Pulumi secrets), alert emails,
    # a fleet that scales to four.
    "git-app-secrets-alerts": Variant("prod", {
        "webstack:appRepo": "https://git.example.com/acme/shop.git", "webstack:appRef": "v3.1.0",
        "webstack:appSecretValues": arr("API_KEY=hunter2-plain", "SESSION_KEY=s3ss10n-k3y"),
        "webstack:alertEmails": arr("ops@example.com"), "webstack:serverMaxCount": "4"}),
    # A static site (examples/static-site) on one server: nginx alone, no gunicorn, no venv.
    "static": Variant("dev", {"webstack:appName": "site", "webstack:appKind": "static",
                              "webstack:appSource": "examples/static-site",
                              "webstack:appStaticDir": "public"}),
    # A static site built on the server (a venv for the build), behind an ALB with ACM.
    "static-build-alb": Variant("dev", {
        **GOOD_ZONE, "webstack:tlsMode": "acm", "webstack:serverCount": "2",
        "webstack:appName": "docs", "webstack:appKind": "static",
        "webstack:appSource": "examples/static-site", "webstack:appStaticDir": "site",
        "webstack:appBuild": arr("mkdocs build --site-dir site"),
        "webstack:appHealthPath": "/index.html"}),
    # A database and a cache the stack creates: PostgreSQL with a standby, valkey with a
    # replica, migrations, in prod's VPC behind the ALB.
    "db-postgres-valkey": Variant("prod", {
        "webstack:database": "postgres", "webstack:databaseMultiAz": "true",
        "webstack:cache": "valkey", "webstack:cacheNodes": "2",
        "webstack:appMigrate": arr("python manage.py migrate --noinput")}),
    # MySQL and memcached on one server in a VPC of its own, unprotected (a throwaway stack).
    "db-mysql-memcached": Variant("dev", {
        "webstack:networkCreateVpc": "true", "webstack:database": "mysql",
        "webstack:databaseProtect": "false", "webstack:databaseFinalSnapshot": "false",
        "webstack:databaseMaxStorageGib": "0",
        "webstack:cache": "memcached", "webstack:appMigrate": arr("flask db upgrade")}),
    # A database the user brings: its URL in a secret they name; migrations under its lock.
    "db-byo": Variant("dev", {"webstack:databaseUrlSecret": "shop/prod/database-url",
                              "webstack:appMigrate": arr("python manage.py migrate")}),
    # uWSGI instead of gunicorn, on one server.
    "uwsgi": Variant("dev", {"webstack:appServer": "uwsgi"}),
    # A container built from examples/docker-app's Dockerfile into the stack's ECR repository.
    "docker-build": Variant("dev", {"webstack:appRuntime": "docker",
                                    "webstack:appSource": "examples/docker-app"}),
    # A fleet running a private image of another registry, by digest, with its credentials and
    # migrations run in the new image.
    "docker-image": Variant("prod", {
        "webstack:appRuntime": "docker", "webstack:appImage": f"ghcr.io/acme/shop@{DIGEST}",
        "webstack:appImageCredentialsSecret": "shop/registry", "webstack:appContainerPort": "8080",
        "webstack:appMigrate": arr("python manage.py migrate --noinput")}),
    # An image in another account's ECR repository: the role may pull exactly it.
    "docker-ecr": Variant("dev", {
        "webstack:appRuntime": "docker",
        "webstack:appImage": f"210987654321.dkr.ecr.eu-west-1.amazonaws.com/team/shop@{DIGEST}"}),
}
NAMES = list(VARIANTS)


def raw(name: str) -> dict[str, str]:
    """A variant's settings as the CLI passes them to the program: its stack file's, overridden."""
    variant = VARIANTS[name]
    return stack_config(variant.stack, variant.overrides)


def secret_keys(settings: Mapping[str, str]) -> list[str]:
    """The keys of `settings` that Pulumi would hold as secrets."""
    return sorted(SECRET_KEYS & set(settings))


def make_cfg(settings: Mapping[str, str], stack: str = "dev") -> StackConfig:
    """`settings` parsed as the program parses a stack's (region from `aws:region`, else
    us-east-1; the regions the price table knows; secret settings held as secrets)."""
    return config.parse(settings, project="webstack", stack=stack,
                        region=settings.get("aws:region", "us-east-1"),
                        supported_regions=sizing.PriceTable.load().regions(),
                        secret_keys=frozenset(secret_keys(settings)))


@cache
def cfg(name: str) -> StackConfig:
    """A variant's parsed config: what the program plans and the renderer renders."""
    return make_cfg(raw(name), VARIANTS[name].stack)


def plan(name: str, mocks: RecordingMocks | None = None) -> MockRun:
    """The whole program's run for a variant under mocks; its error, if any, raised."""
    settings = raw(name)
    run = run_program(VARIANTS[name].stack, settings, mocks=mocks,
                      secret_keys=secret_keys(settings))
    if run.error is not None:
        raise run.error
    assert run.resources, f"{name}: nothing registered"
    return run
