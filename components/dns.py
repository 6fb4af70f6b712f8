"""Public names for the app: Route53 records in the user's hosted zone."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws


def record_name(name: str) -> str:
    """A resource-name-safe slug of a DNS name."""
    return name.replace(".", "-")


def lookup_zone_id(zone: str, opts: pulumi.InvokeOutputOptions | None = None) -> pulumi.Output[str]:
    return aws.route53.get_zone_output(name=zone, private_zone=False, opts=opts).zone_id


class Dns(pulumi.ComponentResource):
    """A records for every name: aliases to the load balancer, or the single server's address."""

    fqdns: pulumi.Output[list[str]]

    def __init__(self, name: str, *, names: tuple[str, ...], zone_id: pulumi.Input[str],
                 alb_dns_name: pulumi.Input[str] | None = None,
                 alb_zone_id: pulumi.Input[str] | None = None,
                 public_ip: pulumi.Input[str] | None = None,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("webstack:dns:Dns", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        alias = alb_dns_name is not None and alb_zone_id is not None
        if alias == (public_ip is not None):
            raise ValueError("Dns needs exactly one target: a load balancer or a public IP")
        records = []
        for fqdn in names:
            rname = f"{name}-{record_name(fqdn)}"
            if alb_dns_name is not None and alb_zone_id is not None:
                records.append(aws.route53.Record(
                    rname, zone_id=zone_id, name=fqdn, type="A", opts=child,
                    aliases=[aws.route53.RecordAliasArgs(
                        name=alb_dns_name, zone_id=alb_zone_id, evaluate_target_health=True)]))
            elif public_ip is not None:
                records.append(aws.route53.Record(
                    rname, zone_id=zone_id, name=fqdn, type="A", opts=child,
                    ttl=300, records=[public_ip]))
        self.records = records
        self.fqdns = pulumi.Output.all(*[r.fqdn for r in records])
        self.register_outputs({"fqdns": self.fqdns})
