"""Where the servers live: the region's default VPC, or a VPC of our own with public subnets."""

from __future__ import annotations

import ipaddress

import pulumi
import pulumi_aws as aws

from components.config import NetworkConfig


def subnet_cidrs(vpc_cidr: str, count: int) -> list[str]:
    """One equal slice per AZ, 16 slices' worth of room so more AZs can be added in place."""
    net = ipaddress.ip_network(vpc_cidr)
    new_prefix = min(net.prefixlen + 4, 28)  # /28 is the smallest subnet AWS allows
    return [str(s) for s in list(net.subnets(new_prefix=new_prefix))[:count]]


class Network(pulumi.ComponentResource):
    vpc_id: pulumi.Output[str]
    vpc_cidr: pulumi.Output[str]
    subnet_ids: pulumi.Output[list[str]]

    def __init__(self, name: str, net: NetworkConfig, tags: dict[str, str],
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("webstack:network:Network", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        invoke = pulumi.InvokeOutputOptions(parent=self)

        if not net.create_vpc:
            vpc = aws.ec2.get_vpc_output(default=True, opts=invoke)
            self.vpc_id = vpc.id
            self.vpc_cidr = vpc.cidr_block
            # Default subnets are public (one per AZ); sort for a stable order across runs.
            self.subnet_ids = vpc.id.apply(lambda vpc_id: aws.ec2.get_subnets_output(
                filters=[aws.ec2.GetSubnetsFilterArgs(name="vpc-id", values=[vpc_id]),
                         aws.ec2.GetSubnetsFilterArgs(name="default-for-az", values=["true"])],
                opts=invoke).ids).apply(sorted)
        else:
            vpc = aws.ec2.Vpc(f"{name}-vpc", cidr_block=net.cidr, enable_dns_hostnames=True,
                              enable_dns_support=True, tags={**tags, "Name": name}, opts=child)
            igw = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=vpc.id,
                                          tags={**tags, "Name": name}, opts=child)
            routes = aws.ec2.RouteTable(
                f"{name}-public", vpc_id=vpc.id,
                routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", gateway_id=igw.id)],
                tags={**tags, "Name": f"{name}-public"}, opts=child)
            zones = aws.get_availability_zones_output(state="available", opts=invoke)
            subnets = []
            for i, cidr in enumerate(subnet_cidrs(net.cidr, net.az_count)):
                subnet = aws.ec2.Subnet(
                    f"{name}-public-{i + 1}", vpc_id=vpc.id, cidr_block=cidr,
                    availability_zone=zones.names.apply(lambda names, i=i: names[i]),
                    map_public_ip_on_launch=False,  # instances ask for a public IP explicitly
                    tags={**tags, "Name": f"{name}-public-{i + 1}"}, opts=child)
                aws.ec2.RouteTableAssociation(f"{name}-public-{i + 1}", subnet_id=subnet.id,
                                              route_table_id=routes.id, opts=child)
                subnets.append(subnet)
            self.vpc_id = vpc.id
            self.vpc_cidr = vpc.cidr_block
            self.subnet_ids = pulumi.Output.all(*[s.id for s in subnets])

        self.register_outputs({"vpc_id": self.vpc_id, "vpc_cidr": self.vpc_cidr,
                               "subnet_ids": self.subnet_ids})
