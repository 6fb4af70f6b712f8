"""Every key as one record: its type, default, bounds, choices or form, and meaning.

The checks (`reader`) and the docs (the README table and `Pulumi.yaml`, through `Setting.doc`)
both read these records, so a range or a list of choices is written once, here.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components import gitref, gitremote, naming, registry
from components.naming import MAX_APP_NAME

NAMESPACE = "webstack"
PROJECT_DIR = Path(__file__).resolve().parents[2]
SAMPLE_APP_DIR = PROJECT_DIR / "examples" / "hello-app"  # the default appSource

OS_CHOICES = ("debian-12", "ubuntu-24.04")
ARCH_CHOICES = ("x86_64", "arm64")
TLS_CHOICES = ("none", "acm", "letsencrypt", "selfsigned")
KIND_CHOICES = ("python", "static")
RUNTIME_CHOICES = ("venv", "docker")
SERVER_CHOICES = ("gunicorn", "uwsgi")
DATABASE_CHOICES = ("", "postgres", "mysql")
DATABASE_VERSIONS = {"postgres": ("14", "15", "16", "17"), "mysql": ("8.4",)}  # RDS majors
DATABASE_DEFAULT_VERSION = {"postgres": "17", "mysql": "8.4"}
CACHE_CHOICES = ("", "memcached", "valkey")
CACHE_VERSIONS = {"memcached": ("1.6.22",), "valkey": ("7.2", "8.0")}
CACHE_DEFAULT_VERSION = {"memcached": "1.6.22", "valkey": "8.0"}
SECRET_NAME = re.compile(r"^[A-Za-z0-9/_+=.@\-]{1,512}$")
SECRET_ARN = re.compile(r"^arn:aws[a-z\-]*:secretsmanager:[a-z0-9\-]+:\d{12}:secret:"
                        r"[A-Za-z0-9/_+=.@\-]{1,512}$")


def secret_reference(value: str) -> bool:
    """A Secrets Manager secret's name or ARN."""
    return bool(SECRET_NAME.match(value) or SECRET_ARN.match(value))


SECRET_NAME_FORM = ("a Secrets Manager secret's name (1-512 of letters, digits and / _ + = . @ -) "
                    "or ARN (arn:aws:secretsmanager:<region>:<account>:secret:<name>)")
MAX_SERVERS = 50
MAX_CERT_NAME = 64  # ACM and Let's Encrypt: a certificate's first name (the CN) fits in 64
MAX_VALUE = 4096  # any one string setting
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096,
                      1827, 2192, 2557, 2922, 3288, 3653)
RSA_BITS = (2048, 4096)  # EC2 imports RSA and ED25519 only; RSA below 2048 bits is weak
VPC_PREFIX = (16, 24)  # prefix lengths of a created VPC's CIDR
PAIR_FORM = "KEY=value with KEY matching [A-Z_][A-Z0-9_]*"
TOKEN_FORM = "1-1024 printable ASCII characters without spaces"

_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_SEGMENT = r"[A-Za-z0-9._\-]+"
_REL_PATH = re.compile(rf"^(?!(.*/)?\.\.(/|$)){_SEGMENT}(/{_SEGMENT})*$")  # no '..' segment
_URL_SEGMENT = r"[A-Za-z0-9._~\-]+"
_GIT_HTTPS = r"^https://[A-Za-z0-9.\-]+(:\d+)?(/[A-Za-z0-9._~%+\-]+)+/?$"
_GIT_SSH = (r"^(ssh://[A-Za-z0-9._\-]+@[A-Za-z0-9.\-]+(:\d+)?|"
            r"[A-Za-z0-9._\-]+@[A-Za-z0-9.\-]+:)[A-Za-z0-9._~/\-]+$")
EMAIL = re.compile(r"^[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}$")


def image_reference(value: str) -> bool:
    """An image reference as Docker reads it (components.registry's grammar)."""
    try:
        registry.parse(value)
    except registry.RegistryError:
        return False
    return True


IMAGE_FORM = ("an image reference: [registry[:port]/]name[:tag][@sha256:<64 hex>], lowercase name, "
              "e.g. ghcr.io/acme/shop:1.4.2 or 123456789012.dkr.ecr.eu-west-1.amazonaws.com/shop"
              "@sha256:...")
_HTTP_URL = re.compile(r"^https?://[A-Za-z0-9.\-]+(:\d+)?(/[A-Za-z0-9._~%+\-/]*)?$")


@dataclass(frozen=True)
class Setting:
    """One key. `valid`/`form` check a string's shape (and name it in errors and docs);
    `low`/`high` bound an integer; `choices` list the only values allowed."""

    key: str
    type: str  # Pulumi project-config type: string | integer | boolean | array
    default: Any
    description: str
    low: int | None = None
    high: int | None = None
    choices: tuple[str | int, ...] = ()
    valid: Callable[[str], object] | None = None
    form: str = ""
    empty_ok: bool = False  # "" is allowed besides what `valid` accepts
    plain: bool = False  # reaches nginx/systemd unquoted: must also be a plain word
    secret: bool = False  # never echoed in error messages

    @property
    def full_key(self) -> str:
        return f"{NAMESPACE}:{self.key}"

    @property
    def expected(self) -> str:
        """The accepted values, as an error message names them."""
        if self.choices:
            return "one of " + ", ".join(map(str, self.choices))
        if self.low is not None:
            return f"a whole number from {self.low} to {self.high}"
        return self.form

    def allows(self, number: int) -> bool:
        """An integer setting's bounds or choices admit `number`."""
        if self.choices:
            return number in self.choices
        return self.low is not None and self.high is not None and self.low <= number <= self.high

    @property
    def doc(self) -> str:
        """The description with the constraints appended, for the README and Pulumi.yaml."""
        if self.choices:
            rule = "One of: " + ", ".join(map(str, self.choices))
        elif self.low is not None:
            rule = f"Range: {self.low}-{self.high}"
        elif self.form:
            rule = "Form: " + self.form
        else:
            return self.description
        return f"{self.description} {rule}."


def _number(key: str, default: int, low: int, high: int, description: str) -> Setting:
    return Setting(key, "integer", default, description, low=low, high=high)


def _percent(key: str, default: int, description: str, low: int = 1) -> Setting:
    return _number(key, default, low, 100, description)


def _shaped(key: str, default: str, description: str, pattern: str | re.Pattern[str], form: str,
            *, empty_ok: bool = False, plain: bool = False) -> Setting:
    return Setting(key, "string", default, description, valid=re.compile(pattern).match,
                   form=form, empty_ok=empty_ok, plain=plain)


SETTINGS: tuple[Setting, ...] = (
    # --- app ---
    _shaped("appName", "hello",
            "App identifier: names the system user, /srv/<name> and AWS resources (so not a "
            "system account such as root or www-data).",
            naming.APP_NAME,
            f"1-{MAX_APP_NAME} chars of a-z, 0-9 and '-', starting with a letter", plain=True),
    Setting("appSource", "string", "",
            "Local directory of the app's code, relative to the project (or absolute): packed "
            "into a bundle (`.git`, `.venv`, `__pycache__` and the patterns of its "
            "`.webstackignore` and `.gitignore` left out), uploaded to the stack's bucket and "
            "released from there. Empty (and appRepo empty): the sample app examples/hello-app.",
            valid=lambda v: v.isprintable() and len(v) <= MAX_VALUE,
            form="a directory path on one line", empty_ok=True),
    Setting("appKind", "string", "python",
            "What the app is: python (a WSGI app, gunicorn behind nginx) or static (a directory "
            "of HTML/CSS/JS nginx serves itself: no gunicorn, no venv unless appBuild has a "
            "requirements file; see README, Static sites).", choices=KIND_CHOICES),
    Setting("appRuntime", "string", "venv",
            "How the app runs: venv (its code and requirements in a venv on the server, "
            "gunicorn or uWSGI behind nginx) or docker (a container image by digest, run by "
            "podman under systemd on 127.0.0.1 behind nginx: built from appSource's "
            "appDockerfile into the stack's ECR repository, or appImage; see README, "
            "Containers).", choices=RUNTIME_CHOICES),
    Setting("appServer", "string", "gunicorn",
            "The WSGI server of appRuntime venv: gunicorn (threaded workers, HTTP over the unix "
            "socket) or uwsgi (a strict uWSGI master, nginx's uwsgi_pass over the unix socket); "
            "see README, Choosing a server.", choices=SERVER_CHOICES),
    Setting("appImage", "string", "",
            "appRuntime docker: the image to run, from any registry, instead of building "
            "appSource. A tag is resolved to its digest when the program runs (preview and "
            "up), so servers run exactly what was planned; a new digest is a release.",
            valid=image_reference, form=IMAGE_FORM, empty_ok=True),
    _shaped("appDockerfile", "Dockerfile",
            "appRuntime docker without appImage: the Dockerfile, relative to the app directory "
            "(appSource/appPath), built for the servers' architecture and pushed to the "
            "stack's ECR repository.", _REL_PATH,
            "a relative file path without '..', e.g. Dockerfile or docker/Dockerfile"),
    Setting("appImageCredentialsSecret", "string", "",
            "appImage in a private registry other than ECR: a Secrets Manager secret (name or "
            "ARN) whose value is JSON {\"username\": ..., \"password\": ...}; servers read it at "
            "each pull, the instance role may read exactly it. ECR needs none (the instance "
            "role pulls).", valid=secret_reference,
            form=SECRET_NAME_FORM,
            empty_ok=True),
    _number("appContainerPort", 8000, 1, 65535,
            "appRuntime docker: the port the app listens on inside the container (it also gets "
            "PORT); published on 127.0.0.1 only."),
    _number("appImagesKept", 10, 1, 1000,
            "appRuntime docker with a build: images the ECR repository's lifecycle rule keeps "
            "(older ones expire). Servers keep appReleasesKept images for instant rollback."),
    _shaped("appRepo", "",
            "Git URL of the app, instead of appSource: servers fetch appRef from it at each "
            "release.", f"{_GIT_HTTPS}|{_GIT_SSH}",
            "a git URL: https://host/path, ssh://user@host/path or user@host:path (no spaces, "
            "quotes or shell characters)", empty_ok=True),
    Setting("appRef", "string", "main",
            "Git ref to deploy. Pin a tag or SHA in production.",
            valid=gitref.valid, form=gitref.EXPECTED),
    Setting("appRepoSshKey", "string", "",
            "Deploy key of an ssh appRepo (private repositories): the program stores it as an "
            "SSM SecureString under /<project>/<stack>/<app>/repo/ssh-key, which only the "
            "servers read, at release time. Set it with `pulumi config set --secret "
            "webstack:appRepoSshKey -- \"$(cat deploy_key)\"`: a plaintext value is refused.",
            form=gitremote.DEPLOY_KEY_FORM, secret=True),
    Setting("appRepoHostKeys", "array", [],
            "The ssh appRepo host's public keys, pinned (ssh runs with StrictHostKeyChecking "
            "yes and no other known_hosts): the lines `ssh-keyscan <host>` prints, checked "
            "against a fingerprint the host publishes. Required with an ssh appRepo.",
            form=gitremote.HOST_KEY_FORM),
    Setting("appRepoToken", "string", "",
            "Access token of an https appRepo (private repositories), stored like "
            "appRepoSshKey (under .../repo/token) and given to git by a credential helper, "
            "never in a URL, a command line or a file. Set it with `pulumi config set "
            "--secret webstack:appRepoToken`: a plaintext value is refused.",
            form=TOKEN_FORM, secret=True),
    _shaped("appRepoTokenUser", "",
            "User name git sends with appRepoToken. Empty: x-access-token (GitHub); GitLab: "
            "oauth2 (or a deploy token's user name); Bitbucket: x-token-auth.",
            r"^[A-Za-z0-9._+@\-]{1,100}$", "1-100 letters, digits and . _ + @ -",
            empty_ok=True),
    _shaped("appPath", "",
            "Sub-directory of the source (appSource or appRepo) that holds the app. Empty: "
            "its root.", _REL_PATH, "a relative path without '..', e.g. src/app",
            empty_ok=True, plain=True),
    _shaped("appWsgi", "app:application",
            "WSGI entry point (a module-level callable: gunicorn and uWSGI load no attribute "
            "path).", rf"^{_IDENT}(\.{_IDENT})*:{_IDENT}$",
            "module:callable, e.g. mysite.wsgi:application", plain=True),
    _shaped("appRequirements", "requirements.txt",
            "Requirements file, relative to the app directory.", _REL_PATH,
            "a relative file path without '..', e.g. requirements.txt", plain=True),
    _shaped("appHealthPath", "/healthz",
            "Path that answers 200 when the app is healthy; used by nginx, the ALB and readiness. "
            "appKind static: a file of the web root (a directory: its index.html), default /.",
            rf"^/({_URL_SEGMENT}/?)*$", "a URL path such as /healthz", plain=True),
    _shaped("appStaticUrl", "/static/",
            "URL prefix nginx serves straight from appStaticDir (empty: no static files).",
            rf"^/({_URL_SEGMENT}/)+$",
            "a URL path ending in '/', other than '/' itself, e.g. /static/",
            empty_ok=True, plain=True),
    _shaped("appStaticDir", "static",
            "Directory of static files, relative to the app directory. appKind static: the web "
            "root when set (e.g. dist, made by appBuild), else the app directory itself.",
            _REL_PATH, "a relative path without '..', e.g. static", plain=True),
    _number("appWorkers", 0, 0, 64,
            "Worker processes of gunicorn or uWSGI; 0 derives 2 x vCPU + 1 on the server at "
            "start."),
    Setting("appEnv", "array", [],
            f"Plain environment variables, each {PAIR_FORM}. Never secrets."),
    Setting("appSecrets", "array", [],
            "Secrets as KEY=/ssm/parameter/name: read from SSM Parameter Store at boot; "
            "the instance role may read exactly these parameters."),
    Setting("appBuild", "array", [],
            "Build commands run once per release, in its app directory with its venv and the "
            "app's environment, before its health check (e.g. 'python manage.py collectstatic "
            "--noinput'). One that fails stops the release; the current one keeps serving. "
            "One line each."),
    Setting("appMigrate", "array", [],
            "Migration commands (e.g. 'python manage.py migrate --noinput'), run once per release "
            "across all servers before it takes traffic: under the database's advisory lock "
            "(pg_advisory_lock / GET_LOCK) when there is a database, so servers releasing "
            "together migrate once and the rest wait. One that fails stops the release; the "
            "current one keeps serving. One line each."),
    Setting("appPreStart", "array", [],
            "Commands run in the app directory with the venv active (appRuntime docker: in the "
            "image) before the app starts, at each boot and each release (e.g. 'python "
            "manage.py migrate --noinput'). One line each."),
    Setting("appSecretValues", "array", [],
            "Secrets the program stores for you as KEY=value, each in an SSM SecureString under "
            "/<project>/<stack>/<app>/secrets/KEY. Set them with `pulumi config set --secret "
            "--path 'appSecretValues[0]' KEY=value`: plaintext values are refused.", secret=True),
    _number("appReleasesKept", 5, 1, 20, "Releases kept on each server for rollback."),
    _number("appBundlesKept", 10, 1, 100,
            "Previous versions of the appSource bundle kept in the stack's bucket (an S3 "
            "lifecycle rule expires older ones a day after they are replaced)."),
    _number("appTimeoutSeconds", 30, 1, 3600,
            "Request timeout in seconds for the app's workers (gunicorn's timeout, uWSGI's "
            "harakiri) and nginx's proxy."),
    _number("appMaxBodyMib", 10, 1, 1024,
            "Largest request body nginx accepts, in MiB (client_max_body_size)."),
    # --- server ---
    _number("serverVcpus", 2, 1, 192, "Minimum vCPUs per server."),
    _number("serverMemoryGib", 4, 1, 1024, "Minimum memory per server in GiB."),
    _number("serverDiskGib", 20, 8, 16384, "Encrypted gp3 root volume size in GiB."),
    Setting("serverArch", "string", "x86_64", "CPU architecture.", choices=ARCH_CHOICES),
    Setting("serverBurstable", "boolean", True,
            "Allow burstable (t-family) instance types when choosing the cheapest fit."),
    _number("serverCount", 1, 1, MAX_SERVERS,
            "Number of servers. More than one puts them behind a load balancer; a change resizes "
            "the group in place. With serverMinCount/serverMaxCount it is the size the group "
            "starts with: after that the CPU target moves it between the bounds and `pulumi up` "
            "leaves it there (change the bounds to move it)."),
    _number("serverMinCount", 0, 0, MAX_SERVERS,
            "Autoscaling floor (0: serverCount). Any of serverCount > 1, serverMinCount or "
            "serverMaxCount puts the servers in an Auto Scaling group."),
    _number("serverMaxCount", 0, 0, MAX_SERVERS, "Autoscaling ceiling (0: serverCount)."),
    _number("scalingCpuTarget", 50, 10, 90,
            "Average CPU percent the Auto Scaling group tracks by adding or removing servers."),
    _percent("refreshMinHealthyPercent", 90,
             "Share of servers kept in service while a launch-template change replaces them.",
             low=0),
    Setting("serverOs", "string", "debian-12", "Operating system.", choices=OS_CHOICES),
    _shaped("serverImage", "",
            "AMI id the servers run, pinned per stack. Empty: the newest official serverOs "
            "image when a server is first created, then kept: a newly published image never "
            "replaces servers.", r"^ami-([0-9a-f]{8}|[0-9a-f]{17})$",
            "an AMI id such as ami-0123456789abcdef0 (python scripts/image.py --stack <stack> "
            "pins the newest)", empty_ok=True),
    _shaped("serverInstanceType", "",
            "Pin an instance type instead of choosing by spec. Empty: choose.",
            r"^[a-z][a-z0-9\-]*\.[a-z0-9]+$", "an EC2 instance type such as m7i.large",
            empty_ok=True),
    # --- database ---
    Setting("database", "string", "",
            "An RDS database for the app: postgres or mysql (private subnets, encrypted, "
            "reachable only from the servers; its master password managed by RDS in Secrets "
            "Manager and given to the app as DATABASE_URL). Empty: none. Needs "
            "networkCreateVpc true.", choices=DATABASE_CHOICES),
    Setting("databaseVersion", "string", "",
            "Major engine version, pinned (minor versions upgrade in the maintenance window). "
            "Empty: postgres " + DATABASE_DEFAULT_VERSION["postgres"] + ", mysql "
            + DATABASE_DEFAULT_VERSION["mysql"] + ". postgres: "
            + ", ".join(DATABASE_VERSIONS["postgres"]) + "; mysql: "
            + ", ".join(DATABASE_VERSIONS["mysql"]) + "."),
    _number("databaseVcpus", 2, 1, 128, "Minimum vCPUs of the database instance."),
    _number("databaseMemoryGib", 1, 1, 1024, "Minimum memory of the database instance, GiB."),
    _shaped("databaseInstanceClass", "",
            "Pin an RDS instance class instead of choosing the cheapest current-generation "
            "class that fits. Empty: choose.", r"^db\.[a-z][a-z0-9\-]*\.[a-z0-9]+$",
            "an RDS instance class such as db.t4g.micro", empty_ok=True),
    _number("databaseStorageGib", 20, 20, 65536, "Allocated gp3 storage, GiB."),
    _number("databaseMaxStorageGib", 100, 0, 65536,
            "Storage autoscaling ceiling, GiB: at least 10% above databaseStorageGib; 0 turns "
            "autoscaling off."),
    Setting("databaseMultiAz", "boolean", False,
            "A standby in a second availability zone with automatic failover (doubles the "
            "instance price)."),
    _number("databaseBackupDays", 7, 1, 35, "Days of automated backups (point-in-time restore)."),
    _shaped("databaseName", "app", "Name of the database created in the instance.",
            r"^[A-Za-z][A-Za-z0-9_]{0,62}$",
            "1-63 letters, digits and _, starting with a letter"),
    _shaped("databaseUser", "webstack",
            "Master user name (its password is generated and rotated by RDS, never in state).",
            r"^[A-Za-z][A-Za-z0-9_]{0,15}$",
            "1-16 letters, digits and _, starting with a letter (not a reserved name such as "
            "rdsadmin)"),
    Setting("databaseProtect", "boolean", True,
            "RDS deletion protection and Pulumi's protect on the database: `pulumi destroy` "
            "refuses to delete it. false: for throwaway stacks, or to delete one on purpose "
            "(set it false, `pulumi up`, then destroy)."),
    Setting("databaseFinalSnapshot", "boolean", True,
            "RDS takes a final snapshot (<instance>-final) when the database is deleted, kept "
            "until you delete it. false: deleting the database deletes its data and automated "
            "backups for good."),
    Setting("databaseUrlSecret", "string", "",
            "Bring your own database instead of `database`: the Secrets Manager secret whose "
            "value is its URL (postgres://user:password@host:5432/name or mysql://...), or an "
            "RDS-style JSON secret (engine, host, port, username, password, dbname). Servers "
            "read it at each app start; the instance role may read exactly this secret.",
            form=SECRET_NAME_FORM),
    # --- cache ---
    Setting("cache", "string", "",
            "An ElastiCache cache for the app: memcached, or valkey (Redis-compatible, with "
            "in-transit encryption and an AUTH token in Secrets Manager), given to the app as "
            "CACHE_URL. Empty: none. Needs networkCreateVpc true.", choices=CACHE_CHOICES),
    Setting("cacheVersion", "string", "",
            "Engine version. Empty: memcached " + CACHE_DEFAULT_VERSION["memcached"]
            + ", valkey " + CACHE_DEFAULT_VERSION["valkey"] + ". valkey: "
            + ", ".join(CACHE_VERSIONS["valkey"]) + "."),
    _number("cacheMemoryGib", 0, 0, 512,
            "Minimum memory per cache node, GiB (0: the smallest node)."),
    _shaped("cacheNodeType", "",
            "Pin an ElastiCache node type instead of choosing the cheapest that fits. Empty: "
            "choose.", r"^cache\.[a-z][a-z0-9\-]*\.[a-z0-9]+$",
            "an ElastiCache node type such as cache.t4g.micro", empty_ok=True),
    _number("cacheNodes", 1, 1, 6,
            "memcached: nodes (keys are spread over them). valkey: the primary and its "
            "replicas (2 or more: automatic failover across zones)."),
    # --- network ---
    Setting("networkCreateVpc", "boolean", False,
            "false: use the region's default VPC. true: create a VPC with public subnets (and "
            "private ones for a database or cache)."),
    Setting("networkCidr", "string", "10.42.0.0/16",
            f"IPv4 CIDR of the created VPC: a private range, prefix /{VPC_PREFIX[0]} to "
            f"/{VPC_PREFIX[1]}."),
    _number("networkAzCount", 2, 2, 6,
            "Availability zones (one public subnet each) of the created VPC."),
    # --- access ---
    Setting("adminCidrs", "array", [],
            "CIDRs allowed to SSH (port 22). Empty: no SSH at all; use SSM Session Manager."),
    Setting("sshPublicKey", "string", "",
            "OpenSSH public key installed for the admin user: ssh-ed25519, or ssh-rsa of "
            f"{RSA_BITS[0]}-{RSA_BITS[1]} bits (the types EC2 imports). Empty: none (SSM only)."),
    # --- domain ---
    Setting("domainZone", "string", "",
            "Route53 public hosted zone, e.g. example.com. Empty: no DNS records."),
    Setting("domainHostname", "string", "",
            "Fully-qualified name of the app inside domainZone, e.g. app.example.com."),
    Setting("domainExtraNames", "array", [],
            "More names inside domainZone pointing at the app, e.g. www.example.com."),
    # --- tls ---
    Setting("tlsMode", "string", "none",
            "How HTTPS is served: acm (ACM certificate on the load balancer), letsencrypt "
            "(certbot on a single server), selfsigned (server-made certificate; local runs); "
            "none: plain HTTP.", choices=TLS_CHOICES),
    _shaped("tlsEmail", "", "Contact e-mail for Let's Encrypt (required with tlsMode letsencrypt).",
            EMAIL, "an e-mail address", empty_ok=True),
    # --- bootstrap sources (private mirrors, corporate proxies, the local VM) ---
    _shaped("aptMirror", "", "Debian/Ubuntu package mirror URL. Empty: the image's default.",
            _HTTP_URL, "an http:// or https:// URL", empty_ok=True),
    _shaped("pipIndexUrl", "",
            "Python package index URL (simple API) for each release's venv and for uv itself. "
            "Empty: PyPI.", _HTTP_URL, "an http:// or https:// URL", empty_ok=True),
    Setting("extraCaCertFiles", "array", [],
            "PEM files (paths relative to the project) of extra CAs the server must trust, "
            "e.g. a corporate proxy's."),
    # --- readiness gate ---
    Setting("readinessCheck", "boolean", True,
            "`pulumi up` waits until cloud-init is done and the app answers healthy, and fails "
            "with the reason otherwise. false: return as soon as the resources exist."),
    _number("readinessTimeoutSeconds", 900, 60, 7200,
            "How long `pulumi up` waits for each server and for the public URL, in seconds."),
    _number("readinessIntervalSeconds", 5, 1, 60,
            "First poll interval while waiting, in seconds, doubled up to 30 s."),
    # --- monitoring ---
    Setting("alertEmails", "array", [],
            "E-mail addresses subscribed to the stack's alarm topic (each confirms once)."),
    _percent("alarmCpuPercent", 80, "CPU alarm threshold, percent."),
    _percent("alarmMemoryPercent", 85, "Memory alarm threshold, percent."),
    _percent("alarmDiskPercent", 85, "Root disk alarm threshold, percent."),
    _percent("alarm5xxPercent", 5, "Load balancer 5xx alarm: percent of requests over 5 minutes."),
    _percent("alarmDbConnectionsPercent", 80,
             "Database alarm: connections above this percent of the instance class's "
             "max_connections."),
    _percent("alarmDbFreeStoragePercent", 10,
             "Database alarm: free storage below this percent of databaseStorageGib."),
    _number("alarmCacheEvictions", 1000, 1, 10_000_000,
            "Cache alarm: more evictions than this in 5 minutes, three periods running (the "
            "cache is too small). Database and cache CPU use alarmCpuPercent."),
    _number("alarmCertExpiryDays", 30, 1, 365,
            "Alarm when the ACM certificate expires within this many days."),
    Setting("logRetentionDays", "integer", 30,
            "Retention of the CloudWatch log groups, in days (the values CloudWatch accepts).",
            choices=LOG_RETENTION_DAYS),
    # --- tags ---
    Setting("tags", "array", [],
            "Extra tags as Key=Value, added to every taggable resource beside the standard ones."),
)

SETTINGS_BY_KEY = {s.key: s for s in SETTINGS}


def full_key(key: str) -> str:
    """`webstack:<key>` of a declared setting (a KeyError for a name that is not one), so other
    modules name keys through the records instead of spelling them."""
    return SETTINGS_BY_KEY[key].full_key
