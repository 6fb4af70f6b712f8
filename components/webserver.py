"""The servers: official OS image, least-privilege role, IMDSv2, encrypted gp3, user-data."""

from __future__ import annotations

import json
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

MANAGED_POLICIES = (
    "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore",  # Session Manager, Run Command
    "arn:aws:iam::aws:policy/CloudWatchAgentServerPolicy",  # metrics and logs
)


@dataclass(frozen=True)
class AmiQuery:
    owner: str
    name_pattern: str
    architecture: str


def ami_query(os_name: str, arch: str) -> AmiQuery:
    owner, pattern = _IMAGES[os_name]
    return AmiQuery(owner, pattern.format(arch=_IMAGE_ARCH[arch]), arch)


def assume_role_policy() -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
        "Action": "sts:AssumeRole"}]})


def parameter_arn(region: str, account: str, name: str) -> str:
    return f"arn:aws:ssm:{region}:{account}:parameter/{name.lstrip('/')}"


def secrets_policy(region: str, account: str, names: list[str]) -> str:
    """Read exactly the app's parameters; aws/ssm-key decryption is granted via SSM itself."""
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Sid": "ReadAppSecrets", "Effect": "Allow",
        "Action": ["ssm:GetParameter", "ssm:GetParameters"],
        "Resource": sorted(parameter_arn(region, account, n) for n in names)}]})


class WebServer(pulumi.ComponentResource):
    instance_ids: pulumi.Output[list[str]]
    public_ips: pulumi.Output[list[str]]
    private_ips: pulumi.Output[list[str]]
    role_name: pulumi.Output[str]
    instances: list[aws.ec2.Instance]
    addresses: list[aws.ec2.Eip]  # one per server when there is no load balancer

    def __init__(self, name: str, cfg: StackConfig, *, instance_type: str,
                 subnet_ids: pulumi.Output[list[str]], security_group_id: pulumi.Input[str],
                 user_data_base64: str, opts: pulumi.ResourceOptions | None = None):
        super().__init__("webstack:server:WebServer", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        invoke = pulumi.InvokeOutputOptions(parent=self)
        tags = cfg.tags

        query = ami_query(cfg.server.os, cfg.server.arch)
        ami = aws.ec2.get_ami_output(
            owners=[query.owner], most_recent=True,
            filters=[aws.ec2.GetAmiFilterArgs(name=k, values=[v]) for k, v in (
                ("name", query.name_pattern), ("architecture", query.architecture),
                ("virtualization-type", "hvm"), ("root-device-type", "ebs"))],
            opts=invoke)

        role = aws.iam.Role(f"{name}-role", assume_role_policy=assume_role_policy(),
                            description=f"webstack {cfg.prefix} servers", tags=tags, opts=child)
        for arn in MANAGED_POLICIES:
            aws.iam.RolePolicyAttachment(f"{name}-{arn.rsplit('/', 1)[1]}", role=role.name,
                                         policy_arn=arn, opts=child)
        if cfg.app.secrets:
            account = aws.get_caller_identity_output(opts=invoke).account_id
            aws.iam.RolePolicy(
                f"{name}-secrets", role=role.id,
                policy=account.apply(lambda acct: secrets_policy(
                    cfg.region, acct, list(cfg.app.secrets.values()))),
                opts=child)
        profile = aws.iam.InstanceProfile(f"{name}-profile", role=role.name, tags=tags, opts=child)

        key_name = None
        if cfg.access.ssh_public_key:
            key_name = aws.ec2.KeyPair(f"{name}-key", public_key=cfg.access.ssh_public_key,
                                       tags=tags, opts=child).key_name

        self.instances = []
        self.addresses = []
        public_ips: list[pulumi.Output[str]] = []
        for i in range(cfg.server.count):
            server_tags = {**tags, "Name": f"{cfg.prefix}-{i + 1}"}
            instance = aws.ec2.Instance(
                f"{name}-{i + 1}",
                ami=ami.id, instance_type=instance_type,
                subnet_id=subnet_ids.apply(lambda ids, i=i: ids[i % len(ids)]),
                vpc_security_group_ids=[security_group_id],
                iam_instance_profile=profile.name, key_name=key_name,
                associate_public_ip_address=True,  # egress for the first boot without a NAT
                metadata_options=aws.ec2.InstanceMetadataOptionsArgs(
                    http_tokens="required", http_endpoint="enabled",
                    http_put_response_hop_limit=1, instance_metadata_tags="disabled"),
                root_block_device=aws.ec2.InstanceRootBlockDeviceArgs(
                    volume_type="gp3", volume_size=cfg.server.disk_gib, encrypted=True,
                    delete_on_termination=True),
                volume_tags=server_tags,
                user_data_base64=user_data_base64, user_data_replace_on_change=True,
                tags=server_tags, opts=child)
            self.instances.append(instance)
            if cfg.load_balanced:
                public_ips.append(instance.public_ip)
            else:  # a single public server keeps its address across replacements
                eip = aws.ec2.Eip(f"{name}-{i + 1}-ip", domain="vpc", instance=instance.id,
                                  tags=server_tags, opts=child)
                self.addresses.append(eip)
                public_ips.append(eip.public_ip)

        self.instance_ids = pulumi.Output.all(*[s.id for s in self.instances])
        self.public_ips = pulumi.Output.all(*public_ips)
        self.private_ips = pulumi.Output.all(*[s.private_ip for s in self.instances])
        self.role_name = role.name
        self.register_outputs({"instance_ids": self.instance_ids, "public_ips": self.public_ips,
                               "private_ips": self.private_ips, "role_name": self.role_name})
