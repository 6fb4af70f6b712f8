"""A single server: official OS image, IMDSv2, encrypted gp3, user-data, an Elastic IP when it
faces the internet itself. Several servers are a `ServerFleet` (components/fleet.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.config import StackConfig

# Official image owners: Debian's cloud team and Canonical.
_IMAGES = {
    "debian-12": ("136693071363", "debian-12-{arch}-*"),
    "ubuntu-24.04": ("099720109477",
                     "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-{arch}-server-*"),
}
_IMAGE_ARCH = {"x86_64": "amd64", "arm64": "arm64"}  # how the image names spell it

# IMDSv2 only; one hop, so nothing forwarded from the host (a container) reaches it.
METADATA = {"http_tokens": "required", "http_endpoint": "enabled",
            "http_put_response_hop_limit": 1, "instance_metadata_tags": "disabled"}


@dataclass(frozen=True)
class AmiQuery:
    owner: str
    name_pattern: str
    architecture: str


def ami_query(os_name: str, arch: str) -> AmiQuery:
    owner, pattern = _IMAGES[os_name]
    return AmiQuery(owner, pattern.format(arch=_IMAGE_ARCH[arch]), arch)


def lookup_ami(cfg: StackConfig, opts: pulumi.InvokeOutputOptions) -> pulumi.Output:
    """The newest official image for the configured OS and architecture."""
    query = ami_query(cfg.server.os, cfg.server.arch)
    return aws.ec2.get_ami_output(
        owners=[query.owner], most_recent=True,
        filters=[aws.ec2.GetAmiFilterArgs(name=k, values=[v]) for k, v in (
            ("name", query.name_pattern), ("architecture", query.architecture),
            ("virtualization-type", "hvm"), ("root-device-type", "ebs"))],
        opts=opts)


class WebServer(pulumi.ComponentResource):
    instance: aws.ec2.Instance
    address: aws.ec2.Eip | None
    instance_id: pulumi.Output[str]
    public_ip: pulumi.Output[str]

    def __init__(self, name: str, cfg: StackConfig, *, instance_type: str,
                 subnet_id: pulumi.Input[str], security_group_id: pulumi.Input[str],
                 instance_profile: pulumi.Input[str], key_name: pulumi.Input[str] | None,
                 user_data_base64: str, boot_after: Sequence[pulumi.Resource] = (),
                 opts: pulumi.ResourceOptions | None = None):
        """`boot_after`: what the first boot reads (SSM parameters) must exist first."""
        super().__init__("webstack:server:WebServer", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = {**cfg.tags, "Name": f"{cfg.prefix}-1"}
        ami = lookup_ami(cfg, pulumi.InvokeOutputOptions(parent=self))
        self.instance = aws.ec2.Instance(
            f"{name}-1",
            ami=ami.id, instance_type=instance_type, subnet_id=subnet_id,
            vpc_security_group_ids=[security_group_id], iam_instance_profile=instance_profile,
            key_name=key_name,
            associate_public_ip_address=True,  # egress for the first boot without a NAT
            metadata_options=aws.ec2.InstanceMetadataOptionsArgs(**METADATA),
            root_block_device=aws.ec2.InstanceRootBlockDeviceArgs(
                volume_type="gp3", volume_size=cfg.server.disk_gib, encrypted=True,
                delete_on_termination=True),
            volume_tags=tags, user_data_base64=user_data_base64,
            user_data_replace_on_change=True, tags=tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(boot_after)))
        self.instance_id = self.instance.id
        self.address = None
        if cfg.load_balanced:
            self.public_ip = self.instance.public_ip
        else:  # facing the internet itself: an address that survives replacements
            self.address = aws.ec2.Eip(f"{name}-1-ip", domain="vpc", instance=self.instance.id,
                                       tags=tags, opts=child)
            self.public_ip = self.address.public_ip
        self.register_outputs({"instance_id": self.instance_id, "public_ip": self.public_ip})
