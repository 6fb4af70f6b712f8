"""Rules across sections: each section is valid on its own, these say which combinations the
stack cannot build. They read the assembled `StackConfig`, so they speak its language."""

from __future__ import annotations

from components import naming
from components.config.model import StackConfig
from components.config.reader import Reader
from components.config.settings import MAX_CERT_NAME, NAMESPACE


def check(r: Reader, cfg: StackConfig) -> None:
    _certificate_names(r, cfg)
    _single_server_tls(r, cfg)
    _private_subnets(r, cfg)
    _migrations(r, cfg)
    _store_variables(r, cfg)


def _private_subnets(r: Reader, cfg: StackConfig) -> None:
    """A database or cache the stack creates lives in private subnets of a VPC of our own: the
    default VPC has only public ones."""
    for key, engine in (("database", cfg.database.engine), ("cache", cfg.cache.engine)):
        if engine and not cfg.network.create_vpc:
            r.problem(f"{NAMESPACE}:{key} = {engine!r} needs private subnets, which only a VPC "
                      f"of the stack's own has: expected {NAMESPACE}:networkCreateVpc true "
                      "(the default VPC has only public subnets)")


def _store_variables(r: Reader, cfg: StackConfig) -> None:
    """The database's and cache's variables are the servers' to set from Secrets Manager."""
    taken = {*(naming.DATABASE_VARIABLES if cfg.database.enabled else ()),
             *(naming.CACHE_VARIABLES if cfg.cache.enabled else ())}
    for var in sorted(taken & (set(cfg.app.env) | set(cfg.app.secrets))):
        r.problem(f"{NAMESPACE}:appEnv/appSecrets set {var}: expected another name ({var} is "
                  "set by webstack from the database's or cache's secret)")


def _migrations(r: Reader, cfg: StackConfig) -> None:
    """A static site has no app to migrate."""
    if cfg.app.static and cfg.app.migrate:
        r.problem(f"{NAMESPACE}:appMigrate is set but {NAMESPACE}:appKind is 'static': expected "
                  f"it removed (pulumi config rm {NAMESPACE}:appMigrate)")


def _certificate_names(r: Reader, cfg: StackConfig) -> None:
    """A public certificate (ACM or Let's Encrypt) needs a hostname that fits its CN."""
    mode, hostname = cfg.tls.mode, cfg.domain.hostname
    if mode not in ("acm", "letsencrypt"):
        return
    if not hostname:
        r.problem(f"{NAMESPACE}:tlsMode = {mode!r} needs a name: expected domainZone and "
                  "domainHostname to be set")
    elif len(hostname) > MAX_CERT_NAME:
        r.bad("domainHostname", hostname, f"at most {MAX_CERT_NAME} characters with tlsMode "
              f"{mode} (a certificate's first name is its subject CN; put longer names in "
              "domainExtraNames)")


def _single_server_tls(r: Reader, cfg: StackConfig) -> None:
    """Certificates made on a server serve one server: no load balancer can present them."""
    mode, srv = cfg.tls.mode, cfg.server
    if mode == "letsencrypt" and not cfg.tls.email:
        r.problem(f"{NAMESPACE}:tlsEmail is empty: expected a contact e-mail for Let's Encrypt "
                  "when tlsMode is letsencrypt")
    if mode not in ("selfsigned", "letsencrypt") or not srv.autoscaling:
        return
    servers = f"serverCount = {srv.count}" + (
        f", serverMinCount = {srv.min_count}, serverMaxCount = {srv.max_count}"
        if srv.min_count or srv.max_count else "")
    why = ("a load balancer cannot present a server's self-signed certificate); use tlsMode acm"
           if mode == "selfsigned" else
           "each server would fight for the same certificate); use tlsMode acm behind the load "
           "balancer")
    r.problem(f"{NAMESPACE}:tlsMode = {mode!r} with {servers}: expected serverCount 1 and no "
              f"autoscaling ({why}")
