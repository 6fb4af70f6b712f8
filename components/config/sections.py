"""One parser per section of the settings: each reads its keys through the `Reader` (which
applies the records' bounds, choices and forms), adds the rules among its own keys, and
returns its part of `StackConfig`. Rules that span sections are in `rules`."""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import re
from collections.abc import Callable
from pathlib import Path

from components import gitremote, naming
from components.config import model, settings
from components.config.reader import ENV_KEY, Reader, shown
from components.config.settings import (
    EMAIL,
    MAX_VALUE,
    NAMESPACE,
    PAIR_FORM,
    RSA_BITS,
    SAMPLE_APP_DIR,
    TOKEN_FORM,
    VPC_PREFIX,
    full_key,
)

# Accounts that exist on Debian/Ubuntu cloud images: an app named like one would run as it.
RESERVED_NAMES = frozenset({
    "root", "daemon", "bin", "sys", "sync", "games", "man", "lp", "mail", "news", "uucp",
    "proxy", "www-data", "backup", "list", "irc", "gnats", "nobody", "admin", "debian",
    "ubuntu", "ec2-user", "sshd", "messagebus", "nginx", "polkitd", "syslog", "uuidd", "tss",
    "landscape", "lxd", "tcpdump", "dnsmasq", "usbmux", "pollinate", "fwupd-refresh",
})

_SSM_NAME = re.compile(r"^(/[A-Za-z0-9_.\-]+)+$|^[A-Za-z0-9_.\-]+$")
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_SSH_KEY = re.compile(r"^(ssh-ed25519|ssh-rsa) ([A-Za-z0-9+/]+={0,3})( [^\n\r]{0,200})?$")
_TOKEN = re.compile(r"^[!-~]{1,1024}$")
_TAG_TEXT = re.compile(r"^[\w .:/=+\-@]*$", re.UNICODE)
_PEM_BLOCK = re.compile(r"-----BEGIN CERTIFICATE-----\r?\n[A-Za-z0-9+/=\r\n]+"
                        r"-----END CERTIFICATE-----")


# --- app ---------------------------------------------------------------------------------------

def app(r: Reader, *, project: str, stack: str, secret_keys: frozenset[str],
        base_dir: Path) -> model.AppConfig:
    name = r.text("appName")
    if name in RESERVED_NAMES:
        r.bad("appName", name, "a name that is not a system account on Debian/Ubuntu (it names "
                               "the app's user)")
    static = r.text("appKind") == "static"
    runtime, server = r.text("appRuntime"), r.text("appServer")
    container = runtime == "docker"
    image, dockerfile = r.text("appImage"), r.text("appDockerfile")
    credentials = r.text("appImageCredentialsSecret")
    _runtime_refusals(r, static=static, container=container, image=image,
                      credentials=credentials, server=server)
    seen = len(r.problems)
    repo, path, requirements = r.text("appRepo"), r.text("appPath"), r.text("appRequirements")
    health_path, static_dir = r.text("appHealthPath"), r.text("appStaticDir")
    build = _commands(r, "appBuild")
    if static:
        _static_refusals(r)
        if r.raw.get(full_key("appHealthPath")) is None:
            health_path = "/"
        web_dir = static_dir if r.raw.get(full_key("appStaticDir")) is not None else ""
        holds = _static_site(path, web_dir, health_path, built=bool(build))
    elif container:
        web_dir = ""
        holds = _no_requirement if image else _dockerfile(path, dockerfile)
    else:
        web_dir = ""
        holds = _requirements_file(path, requirements)
    source = ("" if container and image else
              _source(r, repo, base_dir, path if len(r.problems) == seen else None, holds))
    env = r.pairs("appEnv", lambda v: v.isprintable() and len(v) <= MAX_VALUE,
                  "a value of printable characters on one line")
    secrets = r.pairs("appSecrets", lambda v: bool(_SSM_NAME.match(v)) and len(v) <= 1011,
                      "KEY=/ssm/parameter/name (letters, digits, _ . - and /)")
    stored = _stored_secrets(r, secret_keys)
    for key in stored:
        if key in secrets:
            r.problem(f"{NAMESPACE}:appSecrets and {NAMESPACE}:appSecretValues both set {key}: "
                      "expected each variable in one of them")
        else:
            secrets[key] = naming.secret_parameter(project, stack, name, key)
    for var in sorted({naming.DATA_DIR_VARIABLE} & (set(env) | set(secrets))):
        r.problem(f"{NAMESPACE}:appEnv/appSecrets set {var}: expected another name ({var} is "
                  "set by webstack to the app's data directory)")
    for dup in sorted(set(env) & set(secrets)):
        r.problem(f"{NAMESPACE}:appEnv and {NAMESPACE}:appSecrets/appSecretValues both set "
                  f"{dup}: expected each variable in one of them")
    return model.AppConfig(
        name=name, source=source, repo=repo, ref=r.text("appRef"), path=path,
        wsgi=r.text("appWsgi"), kind="static" if static else "python", web_dir=web_dir,
        requirements=requirements, health_path=health_path,
        static_url="" if static else r.text("appStaticUrl"), static_dir=static_dir,
        workers=r.number("appWorkers"), timeout_seconds=r.number("appTimeoutSeconds"),
        max_body_mib=r.number("appMaxBodyMib"), env=env, secrets=secrets,
        stored_secrets=tuple(stored), build=build,
        pre_start=_commands(r, "appPreStart"), migrate=_commands(r, "appMigrate"),
        releases_kept=r.number("appReleasesKept"),
        bundles_kept=r.number("appBundlesKept"),
        repo_credential=_repo_credential(r, repo, project=project, stack=stack, app=name,
                                         secret_keys=secret_keys),
        repo_host_keys=tuple(_repo_host_keys(r, repo)), repo_token_user=r.text("appRepoTokenUser"),
        server=server, runtime=runtime, image=image, dockerfile=dockerfile,
        image_credentials_secret=credentials, container_port=r.number("appContainerPort"),
        images_kept=r.number("appImagesKept"))


# The settings a container has no use for, and why: the image holds the code, its build and its
# server.
_CONTAINER_REFUSED = {
    "appRepo": "the code comes from appImage or appSource's Dockerfile",
    "appWsgi": "the image's own command serves the app",
    "appWorkers": "the image's own command sizes its server",
    "appServer": "the image's own command is the server",
    "appRequirements": "the image installs its requirements",
    "appBuild": "the build belongs in the Dockerfile",
}


def _runtime_refusals(r: Reader, *, static: bool, container: bool, image: str,
                      credentials: str, server: str) -> None:
    """Which settings go with which runtime: each refusal names the setting and the fix."""
    if container and static:
        r.problem(f"{NAMESPACE}:appRuntime is 'docker' but {NAMESPACE}:appKind is 'static': "
                  "expected appKind python (a static site needs no container: nginx serves it)")
    if container:
        for key, why in _CONTAINER_REFUSED.items():
            value = r.raw.get(full_key(key))
            if value is not None and value.strip() not in ("", "[]"):
                r.problem(f"{full_key(key)} is set but {NAMESPACE}:appRuntime is 'docker' "
                          f"({why}): expected it removed (pulumi config rm {full_key(key)})")
        for key in ("appSource", "appDockerfile"):
            if image and r.raw.get(full_key(key)):
                r.problem(f"{NAMESPACE}:appImage and {full_key(key)} are both set: expected one "
                          "(an image to run, or a directory whose Dockerfile the program builds)")
    else:
        for key in ("appImage", "appImageCredentialsSecret"):
            if r.raw.get(full_key(key)):
                r.problem(f"{full_key(key)} is set but {NAMESPACE}:appRuntime is 'venv': "
                          f"expected {NAMESPACE}:appRuntime docker, or {full_key(key)} removed")
    if credentials and container and not image:
        r.problem(f"{NAMESPACE}:appImageCredentialsSecret is set without {NAMESPACE}:appImage: "
                  "expected it removed (the stack's own ECR repository needs no credentials)")
    elif credentials and naming.ecr_registry(image):
        r.problem(f"{NAMESPACE}:appImageCredentialsSecret is set for an ECR image: expected it "
                  "removed (servers pull from ECR with their instance role)")
    if static and server == "uwsgi":
        r.problem(f"{NAMESPACE}:appServer is 'uwsgi' but {NAMESPACE}:appKind is 'static': "
                  "expected it removed (nginx serves a static site; there is no WSGI server)")


def _no_requirement(app_dir: Path, source: str) -> str | None:
    return None


def _dockerfile(path: str, dockerfile: str) -> _Holds:
    def holds(app_dir: Path, source: str) -> str | None:
        if (app_dir / dockerfile).is_file():
            return None
        return (f"{source} has no {(Path(path) / dockerfile).as_posix()}: expected the image's "
                f"Dockerfile there ({NAMESPACE}:appDockerfile, relative to appPath), or "
                f"{NAMESPACE}:appImage naming an image to run")
    return holds


# What a source's app directory must hold: (app directory, the source as messages name it) ->
# the problem, or None.
_Holds = Callable[[Path, str], str | None]


def _source(r: Reader, repo: str, base_dir: Path, path: str | None, holds: _Holds) -> str:
    """The bundle's directory, resolved and checked to hold appPath (None when it is already
    wrong) and what `holds` asks of the app directory; "" for a git app."""
    given = r.text("appSource")
    if repo:
        if given:
            r.problem(f"{NAMESPACE}:appSource and {NAMESPACE}:appRepo are both set: expected "
                      "one source for the app's code (a local directory or a git URL)")
        return ""
    where = (base_dir / given).resolve() if given else SAMPLE_APP_DIR
    if not where.is_dir():
        r.bad("appSource", given, f"a directory (relative to {base_dir}, or absolute); "
                                  f"{where} is not one")
        return ""
    if path is None:
        return str(where)
    app_dir = where / path if path else where
    if path and not app_dir.is_dir():
        r.bad("appPath", path, f"a directory inside appSource ({where})")
    elif problem := holds(app_dir, f"{NAMESPACE}:appSource {given or SAMPLE_APP_DIR.name!r}"):
        r.problem(problem)
    return str(where)


def _requirements_file(path: str, requirements: str) -> _Holds:
    def holds(app_dir: Path, source: str) -> str | None:
        if (app_dir / requirements).is_file():
            return None
        return (f"{source} has no {(Path(path) / requirements).as_posix()}: expected the app's "
                f"requirements file there ({NAMESPACE}:appRequirements, relative to appPath)")
    return holds


def _static_site(path: str, web_dir: str, health_path: str, *, built: bool) -> _Holds:
    """A static site's web root must hold the health path's file, unless a build makes it on
    the server (then the release's candidate check is the first to look)."""
    def holds(app_dir: Path, source: str) -> str | None:
        if built:
            return None
        web = app_dir / web_dir if web_dir else app_dir
        shown_web = (Path(path) / web_dir).as_posix() if path or web_dir else "its root"
        if not web.is_dir():
            return (f"{source} has no directory {shown_web}: expected the site's web root "
                    f"there ({NAMESPACE}:appStaticDir, relative to appPath), or an appBuild "
                    "that makes it")
        page = web / health_path.lstrip("/")
        if page.is_dir():
            page = page / "index.html"
        if not page.is_file():
            return (f"{source} has no {page.relative_to(web).as_posix()} in "
                    f"{shown_web}: expected the file {NAMESPACE}:appHealthPath = "
                    f"{health_path!r} names (index.html for a directory)")
        return None
    return holds


_STATIC_REFUSED = {  # the settings appKind static has no use for, and why
    "appWsgi": "there is no WSGI app", "appWorkers": "there is no gunicorn",
    "appStaticUrl": "nginx serves the whole site (the web root is appStaticDir)",
    "appPreStart": "there is no app process to run them before; a release's build commands "
                   "are appBuild",
}


def _static_refusals(r: Reader) -> None:
    for key, why in _STATIC_REFUSED.items():
        value = r.raw.get(full_key(key))
        if value is not None and value.strip() not in ("", "[]"):
            r.problem(f"{full_key(key)} is set but {NAMESPACE}:appKind is 'static' ({why}): "
                      f"expected it removed (pulumi config rm {full_key(key)})")


def _stored_secrets(r: Reader, secret_keys: frozenset[str]) -> list[str]:
    """The KEYs of appSecretValues; problems name the entry by position, never its value."""
    keys: list[str] = []
    for i, item in enumerate(r.items("appSecretValues")):
        key, sep, value = item.partition("=")
        where = f"{NAMESPACE}:appSecretValues[{i}]"
        if not sep or not ENV_KEY.match(key):
            r.problem(f"{where} (value hidden): expected {PAIR_FORM}")
        elif key in keys:
            r.problem(f"{where}: expected each KEY once; {key} is given twice")
        elif not 0 < len(value) <= MAX_VALUE:
            r.problem(f"{where} ({key}): expected a value of 1-{MAX_VALUE} characters")
        else:
            keys.append(key)
    if keys and f"{NAMESPACE}:appSecretValues" not in secret_keys:
        r.problem(f"{NAMESPACE}:appSecretValues is stored in plaintext: expected it set with "
                  "`pulumi config set --secret --path 'appSecretValues[0]' KEY=value` (and the "
                  "plaintext removed from the stack file)")
    return keys


_HOW_TO_SET = {"appRepoSshKey": '-- "$(cat deploy_key)"', "appRepoToken": "(it prompts)"}


def _repo_credential(r: Reader, repo: str, *, project: str, stack: str, app: str,
                     secret_keys: frozenset[str]) -> model.RepoCredential | None:
    """The deploy key an ssh appRepo needs, or the token an https one may have: each only with
    its kind of URL, only as a Pulumi secret; problems never quote the value."""
    ssh = gitremote.ssh_remote(repo) is not None
    wanted = "appRepoSshKey" if ssh else "appRepoToken"
    for key in ("appRepoSshKey", "appRepoToken"):
        given = r.raw.get(full_key(key)) not in (None, "")
        if given and (key != wanted or not repo):
            kind = ("an ssh URL (ssh://user@host/path or user@host:path)"
                    if key == "appRepoSshKey" else "an https:// URL")
            r.problem(f"{full_key(key)} is set but {NAMESPACE}:appRepo = {shown(repo)} is not "
                      f"{kind}: expected it only with such an appRepo (or removed: pulumi config "
                      f"rm {full_key(key)})")
    if ssh and r.raw.get(full_key("appRepoSshKey")) in (None, ""):
        r.problem(f"{NAMESPACE}:appRepo = {shown(repo)} is an ssh URL but "
                  f"{full_key('appRepoSshKey')} is not set: expected the repository's deploy key "
                  f"(pulumi config set --secret {full_key('appRepoSshKey')} -- "
                  '"$(cat deploy_key)")')
    value = r.text(wanted).strip() if repo else ""
    if not value:
        if r.raw.get(full_key("appRepoTokenUser")):
            r.problem(f"{full_key('appRepoTokenUser')} is set without {full_key('appRepoToken')}"
                      ": expected it only with a token for an https appRepo")
        return None
    problem = (gitremote.deploy_key_problem(value) if ssh else
               None if _TOKEN.match(value) else f"expected {TOKEN_FORM}")
    if problem:
        r.problem(f"{full_key(wanted)} (value hidden): {problem}")
    if full_key(wanted) not in secret_keys:
        r.problem(f"{full_key(wanted)} is stored in plaintext: expected it set with `pulumi "
                  f"config set --secret {full_key(wanted)} {_HOW_TO_SET[wanted]}` (and the "
                  "plaintext removed from the stack file)")
    kind = "ssh-key" if ssh else "token"
    return model.RepoCredential(wanted, naming.repo_parameter(project, stack, app, kind))


def _repo_host_keys(r: Reader, repo: str) -> list[str]:
    """The known_hosts lines that pin an ssh appRepo's host: required with one, refused
    without; each must name that host (and port)."""
    lines = r.items("appRepoHostKeys")
    remote = gitremote.ssh_remote(repo)
    if remote is None:
        if lines:
            r.problem(f"{full_key('appRepoHostKeys')} is set but {NAMESPACE}:appRepo = "
                      f"{shown(repo)} is not an ssh URL: expected host keys only with an ssh "
                      "appRepo")
        return []
    if not lines:
        r.problem(f"{NAMESPACE}:appRepo = {shown(repo)} is an ssh URL but "
                  f"{full_key('appRepoHostKeys')} is empty: expected the host's keys pinned, "
                  f"e.g. the lines `{remote.keyscan}` prints (checked against the fingerprints "
                  "the host publishes)")
    for line in lines:
        if problem := gitremote.host_key_problem(line, remote):
            r.bad("appRepoHostKeys", line, problem.removeprefix("expected "))
    return lines


def _commands(r: Reader, key: str) -> tuple[str, ...]:
    commands = []
    for cmd in r.items(key):
        if not cmd or not cmd.isprintable():
            r.bad(key, cmd, "one non-empty command line per entry")
        else:
            commands.append(cmd)
    return tuple(commands)


# --- server and scaling --------------------------------------------------------------------------

def server(r: Reader) -> model.ServerConfig:
    count = r.number("serverCount")
    min_count = r.number("serverMinCount")
    max_count = r.number("serverMaxCount")
    if min_count and min_count > count:
        r.problem(f"{NAMESPACE}:serverMinCount = {min_count} is above serverCount = {count}: "
                  "expected serverMinCount <= serverCount")
    if max_count and max_count < max(count, min_count):
        r.problem(f"{NAMESPACE}:serverMaxCount = {max_count} is below serverCount = {count}: "
                  "expected serverMaxCount >= serverCount")
    return model.ServerConfig(
        vcpus=r.number("serverVcpus"), memory_gib=r.number("serverMemoryGib"),
        disk_gib=r.number("serverDiskGib"), arch=r.text("serverArch"),
        burstable=r.flag("serverBurstable"), count=count, os=r.text("serverOs"),
        instance_type=r.text("serverInstanceType"), image=r.text("serverImage"),
        min_count=min_count, max_count=max_count)


def scaling(r: Reader) -> model.ScalingConfig:
    return model.ScalingConfig(cpu_target=r.number("scalingCpuTarget"),
                               refresh_min_healthy_percent=r.number("refreshMinHealthyPercent"))


# --- database and cache --------------------------------------------------------------------------

# Names RDS refuses for a master user, per engine (CreateDBInstance's MasterUsername)
_RESERVED_DB_USERS = {
    "postgres": frozenset({"rdsadmin", "rdsrepladmin", "rds_superuser", "rds_replication",
                           "public", "user", "select", "all", "table", "grant", "group",
                           "order", "default"}),
    "mysql": frozenset({"rdsadmin", "rdsrepladmin", "root", "mysql", "mysql.sys", "sys"}),
}


def database(r: Reader) -> model.DatabaseConfig:
    engine = r.text("database")
    url_secret = r.text("databaseUrlSecret")
    if url_secret and not settings.secret_reference(url_secret):
        r.bad("databaseUrlSecret", url_secret, settings.SECRET_NAME_FORM)
    if engine and url_secret:
        r.problem(f"{NAMESPACE}:database = {engine!r} and {NAMESPACE}:databaseUrlSecret are both "
                  "set: expected one of them (a database the stack creates, or the secret of "
                  "one you bring)")
    version = _version(r, "databaseVersion", engine, settings.DATABASE_VERSIONS,
                       settings.DATABASE_DEFAULT_VERSION, "database")
    storage, ceiling = r.number("databaseStorageGib"), r.number("databaseMaxStorageGib")
    if ceiling and ceiling * 10 < storage * 11:
        r.problem(f"{NAMESPACE}:databaseMaxStorageGib = {ceiling} is less than 10% above "
                  f"databaseStorageGib = {storage}: expected at least {-(-storage * 11 // 10)} "
                  "(RDS's rule), or 0 for no storage autoscaling")
    user = r.text("databaseUser")
    if engine and user.lower() in _RESERVED_DB_USERS.get(engine, frozenset()):
        r.bad("databaseUser", user, f"a name {engine} on RDS does not reserve (not "
                                    + ", ".join(sorted(_RESERVED_DB_USERS[engine])) + ")")
    name = r.text("databaseName")
    if engine == "mysql" and len(name) > 64:
        r.bad("databaseName", name, "at most 64 characters for mysql")
    return model.DatabaseConfig(
        engine=engine, version=version, vcpus=r.number("databaseVcpus"),
        memory_gib=r.number("databaseMemoryGib"),
        instance_class=r.text("databaseInstanceClass"), storage_gib=storage,
        max_storage_gib=ceiling, multi_az=r.flag("databaseMultiAz"),
        backup_days=r.number("databaseBackupDays"), name=name, user=user,
        protect=r.flag("databaseProtect"), final_snapshot=r.flag("databaseFinalSnapshot"),
        url_secret=url_secret)


def cache(r: Reader) -> model.CacheConfig:
    engine = r.text("cache")
    return model.CacheConfig(
        engine=engine,
        version=_version(r, "cacheVersion", engine, settings.CACHE_VERSIONS,
                         settings.CACHE_DEFAULT_VERSION, "cache"),
        memory_gib=r.number("cacheMemoryGib"), node_type=r.text("cacheNodeType"),
        nodes=r.number("cacheNodes"))


def _version(r: Reader, key: str, engine: str, versions: dict[str, tuple[str, ...]],
             defaults: dict[str, str], engine_key: str) -> str:
    """An engine's pinned version: the given one when that engine offers it, else its default."""
    given = r.text(key)
    if not engine:
        if given:
            r.problem(f"{full_key(key)} is set but {NAMESPACE}:{engine_key} is empty: expected "
                      f"it only with {NAMESPACE}:{engine_key} set")
        return ""
    if given and given not in versions[engine]:
        r.bad(key, given, f"one of {', '.join(versions[engine])} for {engine} (or empty: "
                          f"{defaults[engine]})")
        return defaults[engine]
    return given or defaults[engine]


# --- network and access --------------------------------------------------------------------------

def network(r: Reader) -> model.NetworkConfig:
    create_vpc = r.flag("networkCreateVpc")
    cidr = r.text("networkCidr")
    if create_vpc and not _is_private_cidr(cidr):
        r.bad("networkCidr", cidr, "a private IPv4 CIDR (10/8, 172.16/12, 192.168/16) with "
                                   f"prefix /{VPC_PREFIX[0]} to /{VPC_PREFIX[1]} and no host "
                                   "bits, e.g. 10.42.0.0/16")
    return model.NetworkConfig(create_vpc=create_vpc, cidr=cidr,
                               az_count=r.number("networkAzCount"))


def _is_private_cidr(text: str) -> bool:
    try:
        net = ipaddress.ip_network(text, strict=True)
    except ValueError:
        return False
    return (isinstance(net, ipaddress.IPv4Network) and net.is_private
            and VPC_PREFIX[0] <= net.prefixlen <= VPC_PREFIX[1])


def access(r: Reader) -> model.AccessConfig:
    admin = r.items("adminCidrs")
    for item in admin:
        _check_ssh_cidr(r, item)
    ssh_key = r.text("sshPublicKey")
    if ssh_key and not _importable_key(ssh_key):
        r.bad("sshPublicKey", ssh_key, "an OpenSSH public key line EC2 can import: ssh-ed25519, "
                                       f"or ssh-rsa of {RSA_BITS[0]}-{RSA_BITS[1]} bits, e.g. "
                                       "'ssh-ed25519 AAAA... me@host'")
    return model.AccessConfig(admin_cidrs=tuple(admin), ssh_public_key=ssh_key)


def _check_ssh_cidr(r: Reader, text: str) -> None:
    key = "adminCidrs"
    try:
        net = ipaddress.ip_network(text, strict=True)
    except ValueError as err:
        hint = ""
        with contextlib.suppress(ValueError):
            hint = f"; did you mean {ipaddress.ip_network(text, strict=False)}?"
        r.bad(key, text, f"an IPv4 or IPv6 CIDR such as 203.0.113.0/24 ({err}{hint})")
        return
    if net.prefixlen == 0:
        r.bad(key, text, "a specific network: SSH from the whole internet is never allowed "
                         "(use SSM Session Manager, or your office/VPN CIDR)")
    elif (net.version == 4 and net.prefixlen < 8) or (net.version == 6 and net.prefixlen < 16):
        r.bad(key, text, "at most /8 (IPv4) or /16 (IPv6) wide for SSH access")


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


# --- domain and tls ------------------------------------------------------------------------------

def domain(r: Reader) -> model.DomainConfig:
    """Names are lowercased without the root dot. A valid DNS name (labels of a-z, 0-9 and '-')
    is also a plain word, so names reach nginx's server_name as they are."""
    zone = _lower_dns(r.text("domainZone"))
    hostname = _lower_dns(r.text("domainHostname"))
    extra = [_lower_dns(n) for n in r.items("domainExtraNames")]
    if zone and not dns_name(zone):
        r.bad("domainZone", zone, "a DNS zone such as example.com")
    if (hostname or extra) and not zone:
        r.problem(f"{NAMESPACE}:domainZone is empty but names are set: expected the Route53 "
                  "hosted zone that holds domainHostname")
    for key, names in (("domainHostname", [hostname] if hostname else []),
                       ("domainExtraNames", extra)):
        for n in names:
            if not dns_name(n):
                r.bad(key, n, "a fully-qualified DNS name such as app.example.com")
            elif zone and not (n == zone or n.endswith("." + zone)):
                r.bad(key, n, f"a name inside the zone {zone} (e.g. app.{zone})")
    if extra and not hostname:
        r.problem(f"{NAMESPACE}:domainExtraNames is set without domainHostname: expected "
                  "domainHostname as the main name")
    if hostname and len(set(extra) | {hostname}) != len(extra) + 1:
        r.bad("domainExtraNames", extra, "names that differ from each other and domainHostname")
    return model.DomainConfig(zone=zone, hostname=hostname, extra_names=tuple(extra))


def dns_name(name: str) -> bool:
    if len(name) > 253 or "." not in name:
        return False
    return all(_LABEL.match(label) for label in name.split("."))


def _lower_dns(text: str) -> str:
    return text.lower().rstrip(".")


def tls(r: Reader) -> model.TlsConfig:
    return model.TlsConfig(mode=r.text("tlsMode"), email=r.text("tlsEmail"))


# --- sources, readiness, monitoring, tags --------------------------------------------------------

def sources(r: Reader, base_dir: Path) -> model.SourcesConfig:
    pems = []
    for path in r.items("extraCaCertFiles"):
        pem = _read_pem(path, base_dir)
        if pem is None:
            r.bad("extraCaCertFiles", path, "a readable PEM file holding one or more "
                                            "'-----BEGIN CERTIFICATE-----' blocks")
        else:
            pems.append(pem)
    return model.SourcesConfig(apt_mirror=r.text("aptMirror"),
                               pip_index_url=r.text("pipIndexUrl"), extra_ca_certs=tuple(pems))


def _read_pem(path: str, base_dir: Path) -> str | None:
    """The certificate blocks of a PEM file, normalised; None when unreadable or not PEM."""
    try:
        text = (base_dir / path).read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError):
        return None
    blocks = [b.replace("\r\n", "\n") for b in _PEM_BLOCK.findall(text)]
    return "\n".join(blocks) + "\n" if blocks else None


def readiness(r: Reader) -> model.ReadinessConfig:
    return model.ReadinessConfig(enabled=r.flag("readinessCheck"),
                                 timeout_seconds=r.number("readinessTimeoutSeconds"),
                                 interval_seconds=r.number("readinessIntervalSeconds"))


def monitoring(r: Reader) -> model.MonitoringConfig:
    emails = r.items("alertEmails")
    for item in emails:
        if not EMAIL.match(item):
            r.bad("alertEmails", item, "an e-mail address")
    return model.MonitoringConfig(
        alert_emails=tuple(emails), cpu_percent=r.number("alarmCpuPercent"),
        memory_percent=r.number("alarmMemoryPercent"), disk_percent=r.number("alarmDiskPercent"),
        http_5xx_percent=r.number("alarm5xxPercent"),
        cert_expiry_days=r.number("alarmCertExpiryDays"),
        log_retention_days=r.number("logRetentionDays"),
        db_connections_percent=r.number("alarmDbConnectionsPercent"),
        db_free_storage_percent=r.number("alarmDbFreeStoragePercent"),
        cache_evictions=r.number("alarmCacheEvictions"))


def tags(r: Reader) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in r.items("tags"):
        key, sep, value = item.partition("=")
        if (not sep or not key or len(key) > 128 or len(value) > 256
                or not _TAG_TEXT.match(key) or not _TAG_TEXT.match(value)):
            r.bad("tags", item, "Key=Value (key 1-128, value 0-256 chars of letters, digits, "
                                "spaces and _ . : / = + - @)")
        elif key.lower().startswith(("aws:", "webstack:")) or key == "ManagedBy":
            r.bad("tags", item, "a key not starting with aws: or webstack: and not ManagedBy "
                                "(those are reserved)")
        else:
            out[key] = value
    return out
