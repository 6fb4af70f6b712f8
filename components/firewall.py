"""Security groups: the rule list is a pure function of the topology and the access settings;
the component only wires it.

Least privilege: the world reaches 80/443 of the load balancer when there is one, else of the
servers; servers accept HTTP only from the load balancer's group; SSH only from admin CIDRs;
egress only to what the first boot needs (HTTP/HTTPS for packages, PyPI, git, SSM; SSH, on
its port, for a git remote over ssh). A database's or cache's group admits only the servers'
group on its one port, and has no egress at all; the servers reach it on that port only.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components import gitremote
from components.aws_names import logical
from components.config import AccessConfig
from components.topology import Topology

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


def rules(shape: Topology, access: AccessConfig, app_repo: str,
          data_ports: dict[str, int] | None = None) -> list[Rule]:
    """`data_ports`: the data stores' groups ("db", "cache") by the port each listens on."""
    out: list[Rule] = []
    edge = "alb" if shape.load_balanced else "web"
    for port in shape.public_ports:
        out += [Rule(edge, "ingress", port, f"HTTP{'S' if port == 443 else ''} from anywhere",
                     cidr=c) for c in WORLD]
    if shape.load_balanced:
        out.append(Rule("alb", "egress", 80, "to the web servers", peer="web"))
        out.append(Rule("web", "ingress", 80, "HTTP from the load balancer", peer="alb"))
    for cidr in access.admin_cidrs:
        out.append(Rule("web", "ingress", 22, "SSH from an admin network", cidr=cidr))
    egress_ports = [80, 443]
    remote = gitremote.ssh_remote(app_repo)
    if remote is not None and remote.port not in egress_ports:
        egress_ports.append(remote.port)  # git over ssh, on the URL's port (22 by default)
    for port in egress_ports:
        out += [Rule("web", "egress", port, "first boot: packages, PyPI, git, SSM", cidr=c)
                for c in WORLD]
    for store, port in sorted((data_ports or {}).items()):
        out.append(Rule(store, "ingress", port, "from the web servers", peer="web"))
        out.append(Rule("web", "egress", port, f"to the {store}", peer=store))
    return out


class Firewall(pulumi.ComponentResource):
    """Who may reach the servers: security groups, and the admin SSH key when there is one."""

    web_group_id: pulumi.Output[str]
    ssh_key_name: pulumi.Output[str] | None
    data_group_ids: dict[str, pulumi.Output[str]]  # "db", "cache": the data stores' groups

    def __init__(self, name: str, shape: Topology, access: AccessConfig, *, app_repo: str,
                 tags: dict[str, str], vpc_id: pulumi.Input[str],
                 data_ports: dict[str, int] | None = None,
                 opts: pulumi.ResourceOptions | None = None):
        """`app_repo`: the git URL releases fetch from (git over ssh needs its port out);
        `data_ports`: see `rules`."""
        super().__init__("webstack:firewall:Firewall", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        plan = rules(shape, access, app_repo, data_ports)
        groups: dict[str, aws.ec2.SecurityGroup] = {}
        for role in sorted({r.group for r in plan}):
            groups[role] = aws.ec2.SecurityGroup(
                logical("aws:ec2/securityGroup:SecurityGroup", f"{name}-{role}"), vpc_id=vpc_id,
                description=f"webstack {name} {role}: rules are separate resources",
                tags={**tags, "Name": f"{name}-{role}"}, opts=child)
        for rule in plan:
            cls = (aws.vpc.SecurityGroupIngressRule if rule.direction == "ingress"
                   else aws.vpc.SecurityGroupEgressRule)
            v6 = rule.cidr is not None and ipaddress.ip_network(rule.cidr).version == 6
            cls(f"{name}-{rule.slug}",
                security_group_id=groups[rule.group].id, ip_protocol="tcp",
                from_port=rule.port, to_port=rule.port, description=rule.description,
                cidr_ipv4=None if v6 else rule.cidr, cidr_ipv6=rule.cidr if v6 else None,
                referenced_security_group_id=groups[rule.peer].id if rule.peer else None,
                tags=tags, opts=child)
        self.ssh_key_name = None
        if access.ssh_public_key:
            self.ssh_key_name = aws.ec2.KeyPair(
                f"{name}-admin", public_key=access.ssh_public_key, tags=tags,
                opts=child).key_name
        self.web_group_id = groups["web"].id
        self.data_group_ids = {store: groups[store].id for store in data_ports or {}}
        self._alb_group = groups.get("alb")
        self.register_outputs({"web_group_id": self.web_group_id,
                               "alb_group_id": self._alb_group.id if self._alb_group else None})

    @property
    def alb_group_id(self) -> pulumi.Output[str]:
        """The load balancer's group: only a load-balanced topology has one."""
        if self._alb_group is None:
            raise ValueError("no load balancer security group: the topology has no load "
                             "balancer")
        return self._alb_group.id
