"""Servers sized to spec: the cheapest instance type that meets (vCPU, memory, arch, burstable).

`choose()` and `pinned()` are pure: they take a catalog (what EC2 offers) and a `PriceTable`
(what it costs) and return a `Choice` with a one-line reason the user can read in the preview.
`fetch_catalog()` is the boto3 adapter: it asks EC2 for the region's current-generation types of
one architecture and caches the answer on disk, because the catalog changes rarely and the
program runs often. Prices come from the table shipped in `data/prices.json`, since AWS's Pricing
API needs network and credentials that a preview should not depend on.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from components.config import ConfigError, ServerConfig, full_key

PRICES_PATH = Path(__file__).resolve().parent / "data" / "prices.json"
MIB_PER_GIB = 1024
CACHE_FORMAT = 1

# The settings sizing's messages name, through config's records (never spelled here)
_VCPUS, _MEMORY, _ARCH, _BURSTABLE, _TYPE = map(full_key, (
    "serverVcpus", "serverMemoryGib", "serverArch", "serverBurstable", "serverInstanceType"))

_PIN_HINT = f"or pin {_TYPE} to a type from the price table to skip the lookup"


class SizingError(ConfigError):
    """No instance type fits, or the catalog could not be read: a config problem for the user."""


@dataclass(frozen=True)
class InstanceType:
    name: str
    vcpus: int
    memory_mib: int
    arch: str
    burstable: bool  # BurstablePerformanceSupported: CPU credits, not a sustained full core
    current_generation: bool


@dataclass(frozen=True)
class Spec:
    vcpus: int
    memory_gib: float
    arch: str
    burstable_allowed: bool


@dataclass(frozen=True)
class Choice:
    instance_type: str
    hourly_usd: float
    vcpus: int | None  # None when a pinned type was not looked up in a catalog
    memory_mib: int | None
    reason: str
    candidates: int


@dataclass(frozen=True)
class RegionExtras:
    """Per-region prices beside instances, for the monthly cost estimate."""

    gp3_gb_month: float
    alb_hour: float
    alb_lcu_hour: float
    public_ipv4_hour: float


class PriceTable:
    """On-demand Linux prices per region, as shipped in `data/prices.json`."""

    def __init__(self, data: Mapping[str, Any]):
        self.source: str = data["source"]
        self.as_of: str = data["as_of"]
        self.currency: str = data["currency"]
        regions: Mapping[str, Any] = data["regions"]
        self._instances: dict[str, dict[str, float]] = {
            r: {t: float(p) for t, p in body["instances"].items()} for r, body in regions.items()
        }
        self._extras: dict[str, RegionExtras] = {
            r: RegionExtras(**{f: float(body[f]) for f in RegionExtras.__dataclass_fields__})
            for r, body in regions.items()
        }
        # Databases' and caches' tables, read by dbsizing (each with its own source and date)
        self._sections: dict[str, Mapping[str, Any]] = {
            name: data[name] for name in ("rds", "elasticache") if name in data}

    @classmethod
    def load(cls, path: Path = PRICES_PATH) -> PriceTable:
        return cls(json.loads(path.read_text(encoding="utf-8")))

    def regions(self) -> tuple[str, ...]:
        return tuple(sorted(self._instances))

    def instance_hourly(self, region: str, instance_type: str) -> float | None:
        return self._instances.get(region, {}).get(instance_type)

    def priced_types(self, region: str) -> tuple[str, ...]:
        """Priced types of a region, cheapest first (for hints in error messages)."""
        prices = self._instances.get(region, {})
        return tuple(sorted(prices, key=lambda t: (prices[t], t)))

    def extras(self, region: str) -> RegionExtras:
        return self._extras[region]

    def section(self, name: str) -> Mapping[str, Any]:
        """A price section beside EC2's ("rds", "elasticache"); empty when the table has none."""
        return self._sections.get(name, {})


def usd(price: float) -> str:
    """At least 4 decimals (AWS's usual precision), more when the price has them."""
    text = f"{price:.6f}".rstrip("0")
    decimals = len(text.split(".")[1])
    return f"${price:.{max(4, decimals)}f}"


def _gib(memory_mib: float) -> str:
    return f"{memory_mib / MIB_PER_GIB:g}"


def _settings(spec: Spec) -> str:
    return (f"{_VCPUS}={spec.vcpus}, {_MEMORY}={spec.memory_gib:g}, {_ARCH}={spec.arch}, "
            f"{_BURSTABLE}={str(spec.burstable_allowed).lower()}")


def choose(spec: Spec, catalog: Iterable[InstanceType], prices: PriceTable,
           region: str) -> Choice:
    """The cheapest priced type meeting `spec`; ties go to fewer vCPU, less memory, then name."""
    min_mib = spec.memory_gib * MIB_PER_GIB
    same_arch = [(t, p) for t in catalog if t.arch == spec.arch
                 and (p := prices.instance_hourly(region, t.name)) is not None]
    allowed = [(t, p) for t, p in same_arch if spec.burstable_allowed or not t.burstable]
    fits = [(t, p) for t, p in allowed if t.vcpus >= spec.vcpus and t.memory_mib >= min_mib]
    kind = f"{spec.arch}" if spec.burstable_allowed else f"non-burstable {spec.arch}"
    if not fits:
        raise SizingError([_nothing_fits(spec, allowed, kind, region)])
    best, price = min(fits, key=lambda tp: (tp[1], tp[0].vcpus, tp[0].memory_mib, tp[0].name))
    reason = (f"{best.name}: cheapest of {len(fits)} {kind} types with ≥{spec.vcpus} vCPU "
              f"and ≥{spec.memory_gib:g} GiB, {usd(price)}/h in {region}")
    return Choice(best.name, price, best.vcpus, best.memory_mib, reason, len(fits))


def _nothing_fits(spec: Spec, allowed: list[tuple[InstanceType, float]], kind: str,
                  region: str) -> str:
    head = (f"no {kind} instance type priced in {region} has ≥{spec.vcpus} vCPU and "
            f"≥{spec.memory_gib:g} GiB ({_settings(spec)})")
    if not allowed:
        return (f"{head}; there are no priced {kind} types in {region} at all: "
                f"change {_ARCH} or {_BURSTABLE}, or pin {_TYPE}")
    most_cpu = max(allowed, key=lambda tp: (tp[0].vcpus, tp[0].memory_mib, tp[0].name))[0]
    most_mem = max(allowed, key=lambda tp: (tp[0].memory_mib, tp[0].vcpus, tp[0].name))[0]
    largest = {f"{t.name} ({t.vcpus} vCPU, {_gib(t.memory_mib)} GiB)" for t in (most_cpu, most_mem)}
    return (f"{head}; largest available: {' and '.join(sorted(largest))}: lower "
            f"{_VCPUS} or {_MEMORY}, change {_ARCH}"
            f"{'' if spec.burstable_allowed else f' or allow {_BURSTABLE}'}, or pin {_TYPE}")


def pinned(instance_type: str, catalog: Iterable[InstanceType] | None, prices: PriceTable,
           region: str, arch: str) -> Choice:
    """The serverInstanceType override: it must be priced, and match serverArch."""
    price = prices.instance_hourly(region, instance_type)
    if price is None:
        some = ", ".join(prices.priced_types(region)[:8]) or "none"
        raise SizingError([
            f"{_TYPE}={instance_type} has no on-demand price for {region} in "
            f"the shipped price table (as of {prices.as_of}): pick a priced type such as {some}, "
            f"or leave it empty to choose by spec"])
    found: InstanceType | None = None
    if catalog is not None:
        catalog = list(catalog)
        found = next((t for t in catalog if t.name == instance_type), None)
        if found is None or found.arch != arch:
            raise SizingError([
                f"{_TYPE}={instance_type} is not among the current-generation {arch} types EC2 "
                f"offers in {region} ({_ARCH}={arch}): pin a {arch} "
                f"type such as {', '.join(_priced_in(catalog, prices, region)[:8]) or 'none'}, "
                f"or change {_ARCH}"])
    reason = f"{instance_type}: pinned by {_TYPE}, {usd(price)}/h in {region}"
    return Choice(instance_type, price, found.vcpus if found else None,
                  found.memory_mib if found else None, reason, 1)


def _priced_in(catalog: Iterable[InstanceType], prices: PriceTable, region: str) -> list[str]:
    names = {t.name for t in catalog}
    return [t for t in prices.priced_types(region) if t in names]


# --- the boto3 adapter ---------------------------------------------------------------------


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "webstack"


def _cache_file(cache_dir: Path, region: str, arch: str, endpoint: str) -> Path:
    """One file per region+arch; a non-AWS endpoint (moto, a proxy) gets its own file."""
    host = urlsplit(endpoint).hostname or ""
    suffix = ""
    if not host.endswith(".amazonaws.com"):
        suffix = "-" + hashlib.sha256(endpoint.encode()).hexdigest()[:12]
    return cache_dir / f"instance-types-{region}-{arch}{suffix}.json"


def _read_cache(path: Path, max_age: timedelta) -> list[InstanceType] | None:
    """The cached catalog if fresh and well-formed; None (refetch) otherwise."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data["format"] != CACHE_FORMAT or time.time() - data["fetched_at"] >= \
                max_age.total_seconds():
            return None
        return [InstanceType(**item) for item in data["types"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_cache(path: Path, endpoint: str, types: list[InstanceType]) -> None:
    """Atomic write; a cache that cannot be written only costs a refetch next time."""
    data = {"format": CACHE_FORMAT, "fetched_at": time.time(), "endpoint": endpoint,
            "types": [asdict(t) for t in types]}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(data), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)


def _from_api(item: Mapping[str, Any], arch: str) -> InstanceType:
    return InstanceType(
        name=item["InstanceType"],
        vcpus=int(item["VCpuInfo"]["DefaultVCpus"]),
        memory_mib=int(item["MemoryInfo"]["SizeInMiB"]),
        arch=arch if arch in item["ProcessorInfo"]["SupportedArchitectures"]
        else item["ProcessorInfo"]["SupportedArchitectures"][0],
        burstable=bool(item.get("BurstablePerformanceSupported", False)),
        current_generation=bool(item.get("CurrentGeneration", False)),
    )


def _ec2_client(region: str) -> Any:
    """A client that gives up in seconds: a dead endpoint must not stall a preview.

    The Pulumi AWS provider's identity (its profile, roles, static keys: aws_session), in a
    fresh session each time, so credentials are resolved from the current config and
    environment rather than whatever an earlier client cached.
    """
    from dataclasses import replace

    from botocore.config import Config

    from components import aws_session

    config = Config(connect_timeout=3, read_timeout=15,
                    retries={"max_attempts": 2, "mode": "standard"})
    settings = replace(aws_session.provider_settings(), region=region)
    return aws_session.session(settings).client("ec2", config=config)


def _explain(exc: Exception, region: str, endpoint: str) -> str:
    from botocore import exceptions as bx

    where = f"EC2 DescribeInstanceTypes in {region} ({endpoint})"
    if isinstance(exc, (bx.NoCredentialsError, bx.PartialCredentialsError)):
        return (f"{where}: no AWS credentials found: set AWS_PROFILE or AWS_ACCESS_KEY_ID/"
                f"AWS_SECRET_ACCESS_KEY, {_PIN_HINT}")
    if isinstance(exc, bx.ProfileNotFound):
        return (f"{where}: aws:profile {exc.kwargs.get('profile')!r} is not in the shared "
                f"config or credentials file (aws:sharedConfigFiles, AWS_CONFIG_FILE), "
                f"{_PIN_HINT}")
    if isinstance(exc, (bx.EndpointConnectionError, bx.ConnectTimeoutError,
                        bx.ReadTimeoutError, bx.ConnectionClosedError)):
        return (f"{where}: endpoint unreachable ({exc}): check aws:region, AWS_ENDPOINT_URL "
                f"and the network, {_PIN_HINT}")
    if isinstance(exc, bx.ClientError):
        err = exc.response.get("Error", {})
        return (f"{where}: {err.get('Code', 'error')}: {err.get('Message', exc)}: check the "
                f"credentials' permissions (ec2:DescribeInstanceTypes) and aws:region, "
                f"{_PIN_HINT}")
    return f"{where}: {type(exc).__name__}: {exc}: {_PIN_HINT}"


def fetch_catalog(region: str, arch: str, *, client: Any = None, cache_dir: Path | None = None,
                  max_age: timedelta = timedelta(days=7)) -> list[InstanceType]:
    """Current-generation `arch` types EC2 offers in `region`, cached on disk for `max_age`.

    Raises SizingError (a ConfigError) when EC2 cannot be asked, with what to do about it.
    """
    from botocore import exceptions as bx
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        client = client or _ec2_client(region)
    except bx.ProfileNotFound as exc:
        raise SizingError([_explain(exc, region, "client not created")]) from exc
    except BotoCoreError as exc:  # e.g. a malformed region name
        raise SizingError([f"aws:region={region}: {exc}: {_PIN_HINT}"]) from exc
    endpoint: str = client.meta.endpoint_url
    path = _cache_file(cache_dir or default_cache_dir(), region, arch, endpoint)
    cached = _read_cache(path, max_age)
    if cached is not None:
        return cached
    filters = [{"Name": "processor-info.supported-architecture", "Values": [arch]},
               {"Name": "current-generation", "Values": ["true"]}]
    try:
        pages = client.get_paginator("describe_instance_types").paginate(
            Filters=filters, PaginationConfig={"PageSize": 100})
        types = [_from_api(item, arch) for page in pages for item in page["InstanceTypes"]]
    except (BotoCoreError, ClientError) as exc:
        raise SizingError([_explain(exc, region, endpoint)]) from exc
    types.sort(key=lambda t: t.name)
    _write_cache(path, endpoint, types)
    return types


CatalogLoader = Callable[[str, str], list[InstanceType]]


def size(server: ServerConfig, region: str, prices: PriceTable | None = None,
         catalog_loader: CatalogLoader = fetch_catalog) -> Choice:
    """The program's entry point: the pinned type if set, else the cheapest fit for the spec.

    A pinned type is checked against the catalog when it can be read; when it cannot (no
    credentials, offline preview), the price table alone vouches for it, since pinning is the
    documented way around the lookup.
    """
    prices = prices or PriceTable.load()
    if server.instance_type:
        try:
            catalog: list[InstanceType] | None = catalog_loader(region, server.arch)
        except SizingError:
            catalog = None
        return pinned(server.instance_type, catalog, prices, region, server.arch)
    spec = Spec(server.vcpus, server.memory_gib, server.arch, server.burstable)
    return choose(spec, catalog_loader(region, server.arch), prices, region)
