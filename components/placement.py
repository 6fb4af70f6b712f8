"""Where the servers can run, looked up before any resource exists: the account, the VPC and
subnets, the availability zones that offer the chosen instance type, and the OS image.

Each lookup is a plain (blocking) invoke, so an account without a default VPC, a type no zone
offers or an image that does not exist is a configuration error at preview, naming the setting,
and never a half-made stack. The choices themselves are pure functions with plain tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi_aws as aws

from components.config import ConfigError, NetworkConfig, ServerConfig, StackConfig

# Official image owners: Debian's cloud team and Canonical.
_IMAGES = {
    "debian-12": ("136693071363", "debian-12-{arch}-*"),
    "ubuntu-24.04": ("099720109477",
                     "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-{arch}-server-*"),
}
_IMAGE_ARCH = {"x86_64": "amd64", "arm64": "arm64"}  # how the image names spell it


@dataclass(frozen=True)
class AmiQuery:
    owners: tuple[str, ...]  # () = any owner (a pinned image may be the user's own)
    filters: tuple[tuple[str, str], ...]


def account_id() -> str:
    """The account the provider deploys into (the program looks it up once): it names the
    stack's bucket (which the user-data names), the role's policies and the account our
    commands check."""
    return aws.get_caller_identity().account_id


def ami_query(server: ServerConfig) -> AmiQuery:
    """The pinned image by id, or the newest official image of the OS and architecture."""
    fixed = (("architecture", server.arch), ("virtualization-type", "hvm"),
             ("root-device-type", "ebs"))
    if server.image:
        return AmiQuery((), (("image-id", server.image), *fixed))
    owner, pattern = _IMAGES[server.os]
    return AmiQuery((owner,), (("name", pattern.format(arch=_IMAGE_ARCH[server.arch])), *fixed))


@dataclass(frozen=True)
class Image:
    id: str
    root_device_name: str
    pinned: bool  # serverImage set: a change replaces servers; unset: kept once created


def lookup_image(cfg: StackConfig) -> Image:
    query = ami_query(cfg.server)
    try:
        ami = aws.ec2.get_ami(owners=list(query.owners) or None, most_recent=True,
                              filters=[aws.ec2.GetAmiFilterArgs(name=k, values=[v])
                                       for k, v in query.filters])
    except Exception as err:  # the provider's invoke error: no such image, or none matches
        where = (f"webstack:serverImage = {cfg.server.image!r}: expected an image in "
                 f"{cfg.region} for {cfg.server.arch}" if cfg.server.image else
                 f"webstack:serverOs = {cfg.server.os!r}: expected an official image in "
                 f"{cfg.region} for {cfg.server.arch}")
        raise ConfigError([f"{where} ({_first_line(err)})"]) from None
    return Image(id=ami.id, root_device_name=ami.root_device_name,
                 pinned=bool(cfg.server.image))


@dataclass(frozen=True)
class Placement:
    """Zones and subnets. `zones` is the zone of each subnet, in order; `subnets` maps the
    default VPC's subnet ids to theirs (empty when the stack creates its VPC and subnets)."""

    vpc_id: str  # "" when the stack creates its VPC
    vpc_cidr: str
    subnets: dict[str, str]
    zones: tuple[str, ...]
    offered: frozenset[str]  # zones where the servers' instance type is offered

    def server_zones(self) -> list[str]:
        """The zones, in subnet order, where servers may run."""
        return [z for z in self.zones if z in self.offered]


def created_vpc_zones(available: Sequence[str], count: int) -> tuple[str, ...]:
    """The created VPC's zones: the region's first `count` (a stable order, so an instance type
    offered elsewhere never moves a subnet)."""
    return tuple(available[:count])


def check_servers_fit(placement: Placement, instance_type: str, *, load_balanced: bool) -> None:
    """Servers need a zone that offers their type; the load balancer spans every subnet."""
    zones = placement.zones
    if not placement.server_zones():
        raise ConfigError([
            f"instance type {instance_type} is not offered in any zone of the stack's subnets "
            f"({', '.join(zones)}): expected another webstack:serverInstanceType (or server "
            "spec), or webstack:networkAzCount / the default VPC covering a zone that offers it"])
    if load_balanced and len(zones) < 2:
        raise ConfigError([
            f"the load balancer needs subnets in two zones, found {', '.join(zones) or 'none'}: "
            "expected webstack:networkCreateVpc = true (it creates webstack:networkAzCount "
            "subnets) or a default VPC with a default subnet in two zones"])


def lookup(cfg: StackConfig, instance_type: str) -> Placement:
    net: NetworkConfig = cfg.network
    try:
        offered = frozenset(aws.ec2.get_instance_type_offerings(
            location_type="availability-zone",
            filters=[aws.ec2.GetInstanceTypeOfferingsFilterArgs(
                name="instance-type", values=[instance_type])]).locations)
        if net.create_vpc:
            # Local and Wavelength zones are opted into, have few types and no ALB: left out.
            available = aws.get_availability_zones(
                state="available", filters=[aws.GetAvailabilityZonesFilterArgs(
                    name="opt-in-status", values=["opt-in-not-required"])]).names
            if len(available) < net.az_count:
                raise ConfigError([f"webstack:networkAzCount = {net.az_count}: expected at most "
                                   f"{len(available)}, the zones {cfg.region} has"])
            zones = created_vpc_zones(available, net.az_count)
            placement = Placement("", net.cidr, {}, zones, offered)
        else:
            placement = _default_vpc(cfg, offered)
    except ConfigError:
        raise
    except Exception as err:
        raise ConfigError([f"cannot look up the network of {cfg.region}: {_first_line(err)}; "
                           "check the AWS credentials and region"]) from None
    check_servers_fit(placement, instance_type, load_balanced=cfg.load_balanced)
    return placement


def _default_vpc(cfg: StackConfig, offered: frozenset[str]) -> Placement:
    try:
        vpc = aws.ec2.get_vpc(default=True)
    except Exception as err:
        raise ConfigError([
            f"{cfg.region} has no default VPC ({_first_line(err)}): expected "
            "webstack:networkCreateVpc = true (pulumi config set webstack:networkCreateVpc "
            "true), which creates a VPC of the stack's own"]) from None
    ids = aws.ec2.get_subnets(filters=[
        aws.ec2.GetSubnetsFilterArgs(name="vpc-id", values=[vpc.id]),
        aws.ec2.GetSubnetsFilterArgs(name="default-for-az", values=["true"])]).ids
    # sorted for a stable order across runs; each default subnet is in a zone of its own
    subnets = {sid: aws.ec2.get_subnet(id=sid).availability_zone for sid in sorted(ids)}
    return Placement(vpc.id, vpc.cidr_block, subnets, tuple(subnets.values()), offered)


def _first_line(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return " ".join(text[-1].split())[:200] if text else type(err).__name__
