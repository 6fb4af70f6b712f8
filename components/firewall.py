"""Security groups: the rule list is a pure function of the config; the component only wires it.

Least privilege: the world reaches 80/443 of the load balancer when there is one, else of the
servers; servers accept HTTP only from the load balancer's group; SSH only from admin CIDRs;
egress only to what the first boot needs (HTTP/HTTPS for packages, PyPI, git, SSM; SSH for a git
remote over ssh).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.aws_names import logical
from components.config import StackConfig

WORLD = ("0.0.0.0/0", "::/0")


@dataclass(frozen=True)
class Rule:
    group: str  # "web" or "alb": the group the rule belongs to
    direction: str  # "ingress" or "egress"
    port: int
    description: str
    cidr: str | None = None  # exactly one of cidr / peer
    peer: str | None = None  # the other group, by role

    @property
    def slug(self) -> str:
        target = self.peer or re.sub(r"[^0-9a-z]+", "-", (self.cidr or "").lower()).strip("-")
        return f"{self.group}-{self.direction}-{self.port}-{target}"


def rules(cfg: StackConfig) -> list[Rule]:
    out: list[Rule] = []
    public_ports = [80, 443] if cfg.https else [80]
    if cfg.load_balanced:
        for port in public_ports:
            out += [Rule("alb", "ingress", port, f"HTTP{'S' if port == 443 else ''} from anywhere",
                         cidr=c) for c in WORLD]
        out.append(Rule("alb", "egress", 80, "to the web servers", peer="web"))
        out.append(Rule("web", "ingress", 80, "HTTP from the load balancer", peer="alb"))
    else:
        # Port 80 stays open with TLS on: ACME HTTP-01 challenges and the redirect to HTTPS.
        for port in public_ports:
            out += [Rule("web", "ingress", port, f"HTTP{'S' if port == 443 else ''} from anywhere",
                         cidr=c) for c in WORLD]
    for cidr in cfg.access.admin_cidrs:
        out.append(Rule("web", "ingress", 22, "SSH from an admin network", cidr=cidr))
    egress_ports = [80, 443]
    if cfg.app.repo and not cfg.app.repo.startswith("https://"):
        egress_ports.append(22)  # git over ssh
    for port in egress_ports:
        out += [Rule("web", "egress", port, "first boot: packages, PyPI, git, SSM", cidr=c)
                for c in WORLD]
    return out


class Firewall(pulumi.ComponentResource):
    """Who may reach the servers: security groups, and the admin SSH key when there is one."""

    web_group_id: pulumi.Output[str]
    alb_group_id: pulumi.Output[str] | None
    ssh_key_name: pulumi.Output[str] | None

    def __init__(self, name: str, cfg: StackConfig, vpc_id: pulumi.Input[str],
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("webstack:firewall:Firewall", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        plan = rules(cfg)
        groups: dict[str, aws.ec2.SecurityGroup] = {}
        for role in sorted({r.group for r in plan}):
            groups[role] = aws.ec2.SecurityGroup(
                logical("aws:ec2/securityGroup:SecurityGroup", f"{name}-{role}"), vpc_id=vpc_id,
                description=f"webstack {cfg.prefix} {role}: rules are separate resources",
                tags={**cfg.tags, "Name": f"{name}-{role}"}, opts=child)
        for rule in plan:
            cls = (aws.vpc.SecurityGroupIngressRule if rule.direction == "ingress"
                   else aws.vpc.SecurityGroupEgressRule)
            v6 = rule.cidr is not None and ipaddress.ip_network(rule.cidr).version == 6
            cls(f"{name}-{rule.slug}",
                security_group_id=groups[rule.group].id, ip_protocol="tcp",
                from_port=rule.port, to_port=rule.port, description=rule.description,
                cidr_ipv4=None if v6 else rule.cidr, cidr_ipv6=rule.cidr if v6 else None,
                referenced_security_group_id=groups[rule.peer].id if rule.peer else None,
                tags=cfg.tags, opts=child)
        self.ssh_key_name = None
        if cfg.access.ssh_public_key:
            self.ssh_key_name = aws.ec2.KeyPair(
                f"{name}-admin", public_key=cfg.access.ssh_public_key, tags=cfg.tags,
                opts=child).key_name
        self.web_group_id = groups["web"].id
        self.alb_group_id = groups["alb"].id if "alb" in groups else None
        self.register_outputs({"web_group_id": self.web_group_id,
                               "alb_group_id": self.alb_group_id})
