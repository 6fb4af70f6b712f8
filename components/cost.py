"""Monthly cost estimate from the shipped on-demand price table: a planning number, not a bill."""

from __future__ import annotations

from typing import Any

from components.config import ServerConfig
from components.sizing import Choice, PriceTable
from components.topology import Topology

HOURS_PER_MONTH = 730
ALB_PUBLIC_IPS = 2  # an internet-facing ALB holds one public IPv4 per AZ, at least two


def estimate(shape: Topology, server: ServerConfig, region: str, choice: Choice,
             prices: PriceTable) -> dict[str, Any]:
    """Servers, volumes, public IPv4 and the load balancer at one LCU, for 730 hours."""
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
    return {
        "estimate": True,
        "currency": prices.currency,
        "period": f"month of {HOURS_PER_MONTH} h",
        "region": region,
        "total": round(sum(items.values()), 2),
        "breakdown": {k: round(v, 2) for k, v in items.items()},
        "excludes": "data transfer, LCUs beyond one, CloudWatch, Route53, snapshots, taxes",
        "source": f"{prices.source} (as of {prices.as_of})",
    }
