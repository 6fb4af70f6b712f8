"""A single server: official OS image, IMDSv2, encrypted gp3, user-data, an Elastic IP when it
faces the internet itself. Several servers are a `ServerFleet` (components/fleet.py)."""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_aws as aws

from components.placement import Image

# IMDSv2 only; one hop, so nothing forwarded from the host (a container) reaches it.
METADATA = {"http_tokens": "required", "http_endpoint": "enabled",
            "http_put_response_hop_limit": 1, "instance_metadata_tags": "disabled"}


def image_ignore(image: Image, prop: str) -> list[str]:
    """An unpinned image is the newest one at create and kept after: a newly published image
    must not replace servers (the engine keeps the state's value, on replacements too)."""
    return [] if image.pinned else [prop]


class WebServer(pulumi.ComponentResource):
    instance: aws.ec2.Instance
    address: aws.ec2.Eip | None
    instance_id: pulumi.Output[str]
    public_ip: pulumi.Output[str]

    def __init__(self, name: str, *, behind_load_balancer: bool, instance_type: str,
                 image: Image, disk_gib: int, subnet_id: pulumi.Input[str],
                 security_group_id: pulumi.Input[str], instance_profile: pulumi.Input[str],
                 key_name: pulumi.Input[str] | None, user_data_base64: str,
                 tags: dict[str, str], boot_after: Sequence[pulumi.Resource] = (),
                 opts: pulumi.ResourceOptions | None = None):
        """`boot_after`: what the first boot reads (its artefact, SSM parameters) must exist
        first."""
        super().__init__("webstack:server:WebServer", name, None, opts)
        self._name = name
        tags = {**tags, "Name": f"{name}-1"}
        self.instance = aws.ec2.Instance(
            f"{name}-1",
            ami=image.id, instance_type=instance_type, subnet_id=subnet_id,
            vpc_security_group_ids=[security_group_id], iam_instance_profile=instance_profile,
            key_name=key_name,
            associate_public_ip_address=True,  # egress for the first boot without a NAT
            metadata_options=aws.ec2.InstanceMetadataOptionsArgs(**METADATA),
            root_block_device=aws.ec2.InstanceRootBlockDeviceArgs(
                volume_type="gp3", volume_size=disk_gib, encrypted=True,
                delete_on_termination=True),
            volume_tags=tags, user_data_base64=user_data_base64,
            user_data_replace_on_change=True, tags=tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(boot_after),
                                        ignore_changes=image_ignore(image, "ami")))
        self.instance_id = self.instance.id
        self.image_id = self.instance.ami  # the state's image: kept when unpinned
        self.address = None
        self.association: aws.ec2.EipAssociation | None = None
        if behind_load_balancer:
            self.public_ip = self.instance.public_ip
        else:  # facing the internet itself: an address that survives replacements
            self.address = aws.ec2.Eip(f"{name}-1-ip", domain="vpc", tags=tags,
                                       opts=pulumi.ResourceOptions(parent=self))
            self.public_ip = self.address.public_ip
        self.register_outputs({"instance_id": self.instance_id, "public_ip": self.public_ip})

    def attach_address(self, after: Sequence[pulumi.Resource]) -> None:
        """Move the Elastic IP to this server once `after` (its readiness gate) passes: a
        replacement server boots on its own address while the old one keeps serving, and the
        first boot's downloads never see the public address change under them."""
        if self.address is None:
            return
        self.association = aws.ec2.EipAssociation(
            f"{self._name}-1-address", allocation_id=self.address.allocation_id,
            instance_id=self.instance.id, allow_reassociation=True,
            # every input forces a new association; the old one is let go first so the
            # provider never disassociates the address from the new server afterwards
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(after),
                                        delete_before_replace=True))
