"""Databases and caches sized to spec, like the servers: the cheapest current-generation RDS
instance class (ElastiCache node type) that fits, or the pinned one, with a reason to read.

Pure functions over the shipped table's "rds" and "elasticache" sections (`data/prices.json`):
what the table prices for an engine in a region is what is offered there, so a preview needs
neither network nor credentials. A class without a price, or without a spec, is never chosen.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from components.config import CacheConfig, DatabaseConfig, full_key
from components.sizing import PriceTable, SizingError, usd

# The settings these messages name, through config's records (never spelled here)
_ENGINE, _DB_VCPUS, _DB_MEMORY, _DB_CLASS, _CACHE_MEMORY, _CACHE_TYPE = map(full_key, (
    "database", "databaseVcpus", "databaseMemoryGib", "databaseInstanceClass",
    "cacheMemoryGib", "cacheNodeType"))
_REGION = "aws:region"

# RDS's default parameter groups: max_connections = LEAST({DBInstanceClassMemory/9531392}, 5000)
# for PostgreSQL and {DBInstanceClassMemory/12582880} for MySQL (RDS User Guide, "Quotas and
# constraints", Maximum number of database connections). DBInstanceClassMemory is the class's
# memory less what the OS and RDS's own processes hold, "always somewhat lower" than the nominal
# figure (User Guide, "DB parameter formula variables"), by an amount AWS does not publish: the
# nominal memory is used, so the figure is the ceiling the real default stays just under.
_BYTES_PER_CONNECTION = {"postgres": 9_531_392, "mysql": 12_582_880}
_MAX_CONNECTIONS_CAP = {"postgres": 5000}
_GIB = 1 << 30


@dataclass(frozen=True)
class NodeSpec:
    name: str
    vcpus: int
    memory_gib: float
    current_generation: bool


@dataclass(frozen=True)
class DatabaseChoice:
    instance_class: str
    engine: str
    vcpus: int
    memory_gib: float
    multi_az: bool
    hourly_usd: float  # the deployment's rate: Multi-AZ's covers the primary and the standby
    storage_gib: int
    storage_gb_month_usd: float | None  # gp3 per GB-month, both copies; None: no shipped price
    max_connections: int
    reason: str
    candidates: int


@dataclass(frozen=True)
class CacheChoice:
    node_type: str
    engine: str
    vcpus: int
    memory_gib: float
    nodes: int
    hourly_usd: float  # per node
    reason: str
    candidates: int


def max_connections(engine: str, memory_gib: float) -> int:
    """The default parameter group's max_connections for a class of `memory_gib` (nominal)."""
    count = int(memory_gib * _GIB) // _BYTES_PER_CONNECTION[engine]
    return min(count, _MAX_CONNECTIONS_CAP.get(engine, count))


def _specs(section: Mapping[str, Any], key: str) -> dict[str, NodeSpec]:
    return {name: NodeSpec(name, int(s["vcpus"]), float(s["memory_gib"]),
                           bool(s["current_generation"]))
            for name, s in section.get(key, {}).items()}


def _region(section: Mapping[str, Any], service: str, region: str) -> Mapping[str, Any]:
    regions: Mapping[str, Any] = section.get("regions", {})
    if region not in regions:
        raise SizingError([
            f"{_REGION}={region}: the shipped price table has no {service} prices there "
            f"(priced: {', '.join(sorted(regions)) or 'none'}): deploy in a priced region, or "
            f"add {region}'s prices to components/data/prices.json"])
    return regions[region]


def _offers(specs: Mapping[str, NodeSpec], hourly: Mapping[str, float],
            current_only: bool = True) -> list[tuple[NodeSpec, float]]:
    """Priced classes with a spec, cheapest first; ties go to fewer vCPU, less memory, name."""
    offers = [(specs[name], price) for name, price in hourly.items()
              if name in specs and (specs[name].current_generation or not current_only)]
    return sorted(offers, key=lambda o: (o[1], o[0].vcpus, o[0].memory_gib, o[0].name))


def _largest(offers: list[tuple[NodeSpec, float]]) -> str:
    """The largest classes by memory and by vCPUs, for a message that says what the limit is."""
    if not offers:
        return "none"
    by_memory = max(offers, key=lambda o: (o[0].memory_gib, o[0].vcpus, o[0].name))[0]
    by_vcpus = max(offers, key=lambda o: (o[0].vcpus, o[0].memory_gib, o[0].name))[0]
    return " and ".join(sorted({f"{s.name} ({s.vcpus} vCPU, {s.memory_gib:g} GiB)"
                                for s in (by_memory, by_vcpus)}))


@dataclass(frozen=True)
class _Ask:
    """One pick: what is asked of it, and the words its reason and refusals use."""

    kind: str  # "RDS class", "ElastiCache node type"
    kinds: str  # "classes", "node types"
    engine: str
    region: str
    as_of: str
    pin: str  # the pinned name, "" to choose
    pin_key: str
    need: str  # "≥2 vCPU and ≥1 GiB"; "" when anything fits
    settings: str  # the settings behind `need`, as given
    choose_by: str
    per: str  # "/h", "/h per node"
    fits: Callable[[NodeSpec], bool]


def _pick(ask: _Ask, specs: Mapping[str, NodeSpec],
          hourly: Mapping[str, float]) -> tuple[NodeSpec, float, str, int]:
    """The pinned offer (any generation: pinning says exactly which), else the cheapest current-
    generation one that fits; with its reason and how many fitted."""
    where = f"{ask.engine} in {ask.region}"
    if ask.pin:
        offers = _offers(specs, hourly, current_only=False)
        found = next((o for o in offers if o[0].name == ask.pin), None)
        if found is None:
            raise SizingError([
                f"{ask.pin_key}={ask.pin} is not an {ask.kind} the shipped price table has for "
                f"{where} (as of {ask.as_of}): pin one of "
                f"{', '.join(o[0].name for o in offers) or 'none'}, or leave it empty to choose "
                f"by {ask.choose_by}"])
        spec, price = found
        reason = f"{spec.name}: pinned by {ask.pin_key}, {usd(price)}{ask.per} in {ask.region}"
        return spec, price, reason, 1
    offers = _offers(specs, hourly)
    fits = [o for o in offers if ask.fits(o[0])]
    if not fits:
        raise SizingError([
            f"no current-generation {ask.kind} for {ask.engine} priced in {ask.region} has "
            f"{ask.need} ({ask.settings}); largest: {_largest(offers)}: lower "
            f"{ask.choose_by}, or pin {ask.pin_key}"])
    (spec, price), count = fits[0], len(fits)
    wanted = f" with {ask.need}" if ask.need else ""
    return spec, price, (f"{spec.name}: cheapest of {count} current-generation {ask.engine} "
                         f"{ask.kinds}{wanted}, {usd(price)}{ask.per} in {ask.region}"), count


def size_database(db: DatabaseConfig, region: str, prices: PriceTable) -> DatabaseChoice:
    """The pinned databaseInstanceClass, else the cheapest class with the vCPUs and memory asked,
    priced for the deployment: Multi-AZ at AWS's Multi-AZ rate, gp3 storage for both copies."""
    section = prices.section("rds")
    body = _region(section, "RDS", region)
    if db.engine not in body:
        raise SizingError([f"{_ENGINE}={db.engine}: the shipped price table has no RDS "
                           f"{db.engine} prices for {region} ({_REGION})"])
    pairs: Mapping[str, list[float]] = body[db.engine]
    hourly = {name: float(pair[1] if db.multi_az else pair[0]) for name, pair in pairs.items()}
    ask = _Ask(kind="RDS class", kinds="classes", engine=db.engine, region=region,
               as_of=str(section.get("as_of")), pin=db.instance_class, pin_key=_DB_CLASS,
               need=f"≥{db.vcpus} vCPU and ≥{db.memory_gib:g} GiB",
               settings=f"{_DB_VCPUS}={db.vcpus}, {_DB_MEMORY}={db.memory_gib:g}",
               choose_by=f"{_DB_VCPUS} and {_DB_MEMORY}", per="/h",
               fits=lambda s: s.vcpus >= db.vcpus and s.memory_gib >= db.memory_gib)
    spec, price, reason, count = _pick(ask, _specs(section, "classes"), hourly)
    deployment = "Multi-AZ: primary and standby" if db.multi_az else "Single-AZ"
    gp3 = body.get("gp3_gb_month")
    storage = None if gp3 is None else float(gp3) * (2 if db.multi_az else 1)
    return DatabaseChoice(spec.name, db.engine, spec.vcpus, spec.memory_gib, db.multi_az, price,
                          db.storage_gib, storage, max_connections(db.engine, spec.memory_gib),
                          f"{reason} ({deployment})", count)


def _cache_hourly(section: Mapping[str, Any], body: Mapping[str, Any],
                  engine: str) -> tuple[dict[str, float], str]:
    """Node prices for the engine, and how they were had: Valkey's are Redis OSS's less the
    published discount when the table has no Valkey rows of its own."""
    if engine in body:
        return {name: float(p) for name, p in body[engine].items()}, ""
    discount = float(section["valkey_discount"])
    derived = {name: round(float(p) * (1 - discount), 6) for name, p in body["redis"].items()}
    return derived, f" (Redis OSS's price less {discount:.0%})"


def size_cache(cache: CacheConfig, region: str, prices: PriceTable) -> CacheChoice:
    """The pinned cacheNodeType, else the cheapest node type with cacheMemoryGib (0: any)."""
    section = prices.section("elasticache")
    body = _region(section, "ElastiCache", region)
    hourly, derived = _cache_hourly(section, body, cache.engine)
    ask = _Ask(kind="ElastiCache node type", kinds="node types", engine=cache.engine,
               region=region, as_of=str(section.get("as_of")), pin=cache.node_type,
               pin_key=_CACHE_TYPE, need=f"≥{cache.memory_gib:g} GiB" if cache.memory_gib else "",
               settings=f"{_CACHE_MEMORY}={cache.memory_gib:g}", choose_by=_CACHE_MEMORY,
               per="/h per node", fits=lambda s: s.memory_gib >= cache.memory_gib)
    spec, price, reason, count = _pick(ask, _specs(section, "node_types"), hourly)
    return CacheChoice(spec.name, cache.engine, spec.vcpus, spec.memory_gib, cache.nodes, price,
                       reason + derived, count)
