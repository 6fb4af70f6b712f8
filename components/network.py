"""Where the servers live: the region's default VPC, or a VPC of our own with public subnets,
and (for a database or cache) private ones that have no route out at all."""

from __future__ import annotations

import ipaddress

import pulumi
import pulumi_aws as aws

from components.config import NetworkConfig
from components.placement import Placement

PRIVATE_FIRST = 8  # the private subnets' first slice: the public ones keep 0-7 to grow into


def subnet_cidrs(vpc_cidr: str, count: int, first: int = 0) -> list[str]:
    """One equal slice per AZ, 16 slices' worth of room so more AZs can be added in place;
    `first` skips slices (the private subnets start at PRIVATE_FIRST)."""
    net = ipaddress.ip_network(vpc_cidr)
    new_prefix = min(net.prefixlen + 4, 28)  # /28 is the smallest subnet AWS allows
    return [str(s) for s in list(net.subnets(new_prefix=new_prefix))[first:first + count]]


class Network(pulumi.ComponentResource):
    """The region's default VPC as found by `placement.lookup`, or a VPC of our own with one
    public subnet in each of the placement's zones."""

    vpc_id: pulumi.Output[str]
    vpc_cidr: pulumi.Output[str]
    subnet_ids: pulumi.Output[list[str]]  # every subnet: the load balancer spans them
    server_subnet_ids: pulumi.Output[list[str]]  # those in zones offering the servers' type
    private_subnet_ids: pulumi.Output[list[str]] | None  # a database's or cache's (or None)

    def __init__(self, name: str, net: NetworkConfig, tags: dict[str, str], site: Placement,
                 private: bool = False, opts: pulumi.ResourceOptions | None = None):
        """`private`: add a private subnet in each zone (a created VPC only; config says so)."""
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
        self.private_subnet_ids = None
        if private:
            self.private_subnet_ids = self._private(name, net, tags, site, self.vpc_id)

        self.register_outputs({"vpc_id": self.vpc_id, "vpc_cidr": self.vpc_cidr,
                               "subnet_ids": self.subnet_ids,
                               "private_subnet_ids": self.private_subnet_ids})

    def _private(self, name: str, net: NetworkConfig, tags: dict[str, str], site: Placement,
                 vpc_id: pulumi.Output[str]) -> pulumi.Output[list[str]]:
        """A subnet per zone whose route table has only the VPC's local route: no internet
        gateway, no NAT (a database needs no egress), so nothing in them is reachable from, or
        reaches, outside the VPC whatever its security groups say."""
        child = pulumi.ResourceOptions(parent=self)
        routes = aws.ec2.RouteTable(f"{name}-private", vpc_id=vpc_id,
                                    tags={**tags, "Name": f"{name}-private"}, opts=child)
        ids = []
        for i, (cidr, zone) in enumerate(zip(subnet_cidrs(net.cidr, net.az_count, PRIVATE_FIRST),
                                             site.zones, strict=True)):
            subnet = aws.ec2.Subnet(
                f"{name}-private-{i + 1}", vpc_id=vpc_id, cidr_block=cidr,
                availability_zone=zone, map_public_ip_on_launch=False,
                tags={**tags, "Name": f"{name}-private-{i + 1}"}, opts=child)
            aws.ec2.RouteTableAssociation(f"{name}-private-{i + 1}", subnet_id=subnet.id,
                                          route_table_id=routes.id, opts=child)
            ids.append(subnet.id)
        return pulumi.Output.all(*ids)
