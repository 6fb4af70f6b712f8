"""Public names for the app: Route53 records in the user's hosted zone."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws


def record_name(name: str) -> str:
    """A resource-name-safe slug of a DNS name."""
    return name.replace(".", "-")


def lookup_zone_id(zone: str, opts: pulumi.InvokeOutputOptions | None = None) -> pulumi.Output[str]:
    return aws.route53.get_zone_output(name=zone, private_zone=False, opts=opts).zone_id


@dataclass(frozen=True)
class Endpoint:
    """What clients connect to: a load balancer (its DNS name and hosted zone: alias records),
    or the single server's public IPv4 (`zone_id` None: plain A records)."""

    host: pulumi.Input[str]
    zone_id: pulumi.Input[str] | None = None


class Dns(pulumi.ComponentResource):
    """A records for every name: aliases to the load balancer, or the single server's address."""

    fqdns: pulumi.Output[list[str]]

    def __init__(self, name: str, *, names: tuple[str, ...], zone_id: pulumi.Input[str],
                 target: Endpoint, opts: pulumi.ResourceOptions | None = None):
        super().__init__("webstack:dns:Dns", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        records = []
        for fqdn in names:
            rname = f"{name}-{record_name(fqdn)}"
            if target.zone_id is not None:
                records.append(aws.route53.Record(
                    rname, zone_id=zone_id, name=fqdn, type="A", opts=child,
                    aliases=[aws.route53.RecordAliasArgs(
                        name=target.host, zone_id=target.zone_id, evaluate_target_health=True)]))
            else:
                records.append(aws.route53.Record(
                    rname, zone_id=zone_id, name=fqdn, type="A", opts=child,
                    ttl=300, records=[target.host]))
        self.records = records
        self.fqdns = pulumi.Output.all(*[r.fqdn for r in records])
        self.register_outputs({"fqdns": self.fqdns})
