"""The outputs contract other teams build on: names, types, when present, meaning.

The README's outputs table is generated from `CONTRACT`, the program exports through `export()`,
which refuses anything off-contract, and a test holds the dev and prod exports to it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pulumi

from components.config import StackConfig


@dataclass(frozen=True)
class OutputSpec:
    name: str
    type: str
    when: str
    meaning: str
    present: Callable[[StackConfig], bool]


def _always(_: StackConfig) -> bool:
    return True


CONTRACT: tuple[OutputSpec, ...] = (
    OutputSpec("url", "string", "always",
               "Public URL of the app: https:// with TLS, on the hostname when set.", _always),
    OutputSpec("hostname", "string", "domainHostname set", "Main DNS name of the app.",
               lambda c: bool(c.domain.hostname)),
    OutputSpec("dnsNames", "list(string)", "domainHostname set",
               "Every DNS name pointing at the app (hostname first).",
               lambda c: bool(c.domain.hostname)),
    OutputSpec("region", "string", "always", "AWS region of the stack.", _always),
    OutputSpec("publicIps", "list(string)", "always",
               "Public IPv4 of each server (Elastic IP for a single server).", _always),
    OutputSpec("instanceIds", "list(string)", "always", "EC2 instance IDs, server 1 first.",
               _always),
    OutputSpec("instanceType", "string", "always", "Instance type of every server.", _always),
    OutputSpec("sizingReason", "string", "always",
               "Why that type: the cheapest that meets the spec, with its price.", _always),
    OutputSpec("vpcId", "string", "always", "VPC of the servers.", _always),
    OutputSpec("subnetIds", "list(string)", "always", "Public subnets used.", _always),
    OutputSpec("webSecurityGroupId", "string", "always",
               "Security group of the servers (reference it to allow their traffic).", _always),
    OutputSpec("albDnsName", "string", "serverCount > 1 or tlsMode acm",
               "DNS name of the application load balancer.", lambda c: c.load_balanced),
    OutputSpec("albSecurityGroupId", "string", "serverCount > 1 or tlsMode acm",
               "Security group of the load balancer.", lambda c: c.load_balanced),
    OutputSpec("certificateArn", "string", "tlsMode acm",
               "ARN of the issued (validated) ACM certificate.", lambda c: c.tls.mode == "acm"),
    OutputSpec("ssmSessionCommands", "list(string)", "always",
               "`aws ssm start-session` command for each server: shell access without SSH.",
               _always),
    OutputSpec("userDataSha256", "string", "always",
               "SHA-256 of the rendered cloud-init user-data (changes replace the servers).",
               _always),
    OutputSpec("healthCheckCommand", "string", "always",
               "Command (run in this project) that checks every server and the health URL: "
               "exit 0 when healthy, else the reason.", _always),
    OutputSpec("estimatedMonthlyCost", "object", "always",
               "Estimate, not a bill: on-demand USD/month for servers, volumes, public IPv4 "
               "and load balancer, with `total`, `breakdown`, `source`.", _always),
)


def expected_names(cfg: StackConfig) -> list[str]:
    return [o.name for o in CONTRACT if o.present(cfg)]


def export(cfg: StackConfig, values: Mapping[str, Any]) -> None:
    """Export exactly the contract's outputs for this config, or fail loudly."""
    expected = expected_names(cfg)
    if set(values) != set(expected):
        raise ValueError(f"outputs off contract: missing {sorted(set(expected) - set(values))}, "
                         f"unexpected {sorted(set(values) - set(expected))}")
    for name in expected:
        pulumi.export(name, values[name])


def markdown_table() -> str:
    rows = ["| name | type | when present | meaning |", "|---|---|---|---|"]
    rows += [f"| `{o.name}` | {o.type} | {o.when} | {o.meaning} |" for o in CONTRACT]
    return "\n".join(rows)
