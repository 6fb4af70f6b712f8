"""Monthly cost estimate from the shipped on-demand price table: a planning number, not a bill."""

from __future__ import annotations

from typing import Any

from components.config import ServerConfig, full_key
from components.dbsizing import CacheChoice, DatabaseChoice
from components.sizing import Choice, PriceTable
from components.topology import Topology

HOURS_PER_MONTH = 730
ALB_PUBLIC_IPS = 2  # an internet-facing ALB holds one public IPv4 per AZ, at least two
EXCLUDES = "data transfer, LCUs beyond one, CloudWatch, Route53, snapshots, taxes"
DATABASE_EXCLUDES = ("database backup storage beyond the free amount (as much as the provisioned "
                     "storage), I/O and throughput beyond gp3's baseline, storage that "
                     f"autoscaling adds beyond {full_key('databaseStorageGib')}")


def estimate(shape: Topology, server: ServerConfig, region: str, choice: Choice,
             prices: PriceTable, database: DatabaseChoice | None = None,
             cache: CacheChoice | None = None) -> dict[str, Any]:
    """Servers, volumes, public IPv4 and the load balancer at one LCU, for 730 hours; with the
    database (instance, gp3 storage) and the cache (its nodes) when the stack creates them."""
    x = prices.extras(region)
    n = server.count
    items = {
        f"servers: {n} x {choice.instance_type} at ${choice.hourly_usd:.4f}/h":
            n * choice.hourly_usd * HOURS_PER_MONTH,
        f"volumes: {n} x {server.disk_gib} GiB gp3 at ${x.gp3_gb_month}/GiB-month":
            n * server.disk_gib * x.gp3_gb_month,
        f"public IPv4: {n} server address(es) at ${x.public_ipv4_hour}/h":
            n * x.public_ipv4_hour * HOURS_PER_MONTH,
    }
    if shape.load_balanced:
        items[f"load balancer: ALB at ${x.alb_hour}/h + 1 LCU at ${x.alb_lcu_hour}/h"] = (
            (x.alb_hour + x.alb_lcu_hour) * HOURS_PER_MONTH)
        items[f"load balancer public IPv4: {ALB_PUBLIC_IPS} addresses"] = (
            ALB_PUBLIC_IPS * x.public_ipv4_hour * HOURS_PER_MONTH)
    excludes, sources = [EXCLUDES], [f"{prices.source} (as of {prices.as_of})"]
    if database is not None:
        excludes.append(_database(items, database, region))
        sources.append(_cite(prices, "rds", "databases"))
    if cache is not None:
        items[f"cache: {cache.nodes} x {cache.node_type} ({cache.engine}) at "
              f"${cache.hourly_usd:.4f}/h"] = cache.nodes * cache.hourly_usd * HOURS_PER_MONTH
        excludes.append("cache backups")
        sources.append(_cite(prices, "elasticache", "caches"))
    return {
        "estimate": True,
        "currency": prices.currency,
        "period": f"month of {HOURS_PER_MONTH} h",
        "region": region,
        "total": round(sum(items.values()), 2),
        "breakdown": {k: round(v, 2) for k, v in items.items()},
        "excludes": ", ".join(excludes),
        "source": "; ".join(sources),
    }


def _database(items: dict[str, float], db: DatabaseChoice, region: str) -> str:
    """Adds the instance and storage lines; returns what the estimate leaves out of them."""
    deployment = "Multi-AZ, primary and standby" if db.multi_az else "Single-AZ"
    items[f"database: {db.instance_class} ({db.engine}, {deployment}) at "
          f"${db.hourly_usd:.4f}/h"] = db.hourly_usd * HOURS_PER_MONTH
    if db.storage_gb_month_usd is None:
        return f"database storage (no gp3 price shipped for {region}), {DATABASE_EXCLUDES}"
    copies = " (both copies)" if db.multi_az else ""
    items[f"database storage: {db.storage_gib} GiB gp3 at ${db.storage_gb_month_usd:g}"
          f"/GiB-month{copies}"] = db.storage_gib * db.storage_gb_month_usd
    return DATABASE_EXCLUDES


def _cite(prices: PriceTable, section: str, what: str) -> str:
    body = prices.section(section)
    return f"{what}: {body.get('cite')} (as of {body.get('as_of')})"
