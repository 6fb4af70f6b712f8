"""Where the servers live: the region's default VPC, or a VPC of our own with public subnets."""

from __future__ import annotations

import ipaddress

import pulumi
import pulumi_aws as aws

from components.config import NetworkConfig
from components.placement import Placement


def subnet_cidrs(vpc_cidr: str, count: int) -> list[str]:
    """One equal slice per AZ, 16 slices' worth of room so more AZs can be added in place."""
    net = ipaddress.ip_network(vpc_cidr)
    new_prefix = min(net.prefixlen + 4, 28)  # /28 is the smallest subnet AWS allows
    return [str(s) for s in list(net.subnets(new_prefix=new_prefix))[:count]]


class Network(pulumi.ComponentResource):
    """The region's default VPC as found by `placement.lookup`, or a VPC of our own with one
    public subnet in each of the placement's zones."""

    vpc_id: pulumi.Output[str]
    vpc_cidr: pulumi.Output[str]
    subnet_ids: pulumi.Output[list[str]]  # every subnet: the load balancer spans them
    server_subnet_ids: pulumi.Output[list[str]]  # those in zones offering the servers' type

    def __init__(self, name: str, net: NetworkConfig, tags: dict[str, str], site: Placement,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("webstack:network:Network", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        servers = set(site.server_zones())

        if not net.create_vpc:
            self.vpc_id = pulumi.Output.from_input(site.vpc_id)
            self.vpc_cidr = pulumi.Output.from_input(site.vpc_cidr)
            self.subnet_ids = pulumi.Output.from_input(list(site.subnets))
            self.server_subnet_ids = pulumi.Output.from_input(
                [sid for sid, zone in site.subnets.items() if zone in servers])
        else:
            vpc = aws.ec2.Vpc(f"{name}-vpc", cidr_block=net.cidr, enable_dns_hostnames=True,
                              enable_dns_support=True, tags={**tags, "Name": name}, opts=child)
            igw = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=vpc.id,
                                          tags={**tags, "Name": name}, opts=child)
            routes = aws.ec2.RouteTable(
                f"{name}-public", vpc_id=vpc.id,
                routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", gateway_id=igw.id)],
                tags={**tags, "Name": f"{name}-public"}, opts=child)
            subnets = []
            for i, (cidr, zone) in enumerate(zip(subnet_cidrs(net.cidr, net.az_count),
                                                 site.zones, strict=True)):
                subnet = aws.ec2.Subnet(
                    f"{name}-public-{i + 1}", vpc_id=vpc.id, cidr_block=cidr,
                    availability_zone=zone,
                    map_public_ip_on_launch=False,  # instances ask for a public IP explicitly
                    tags={**tags, "Name": f"{name}-public-{i + 1}"}, opts=child)
                aws.ec2.RouteTableAssociation(f"{name}-public-{i + 1}", subnet_id=subnet.id,
                                              route_table_id=routes.id, opts=child)
                subnets.append((subnet, zone))
            self.vpc_id = vpc.id
            self.vpc_cidr = vpc.cidr_block
            self.subnet_ids = pulumi.Output.all(*[s.id for s, _ in subnets])
            self.server_subnet_ids = pulumi.Output.all(
                *[s.id for s, zone in subnets if zone in servers])

        self.register_outputs({"vpc_id": self.vpc_id, "vpc_cidr": self.vpc_cidr,
                               "subnet_ids": self.subnet_ids})
