"""Several servers on AWS's own engine: a launch template and an Auto Scaling group behind the
load balancer. ELB health checks replace sick servers; between serverMinCount and
serverMaxCount a CPU target-tracking policy adds and removes servers; any launch-template change
(new user-data, image, type) rolls through the group with an instance refresh that keeps
`refreshMinHealthyPercent` of it in service."""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_aws as aws

from components.aws_names import logical
from components.config import ScalingConfig, ServerConfig
from components.placement import Image
from components.webserver import METADATA, image_ignore

# Time a new server gets before health checks count: its first boot installs packages and the
# app (about 2-3 minutes on EC2).
WARMUP_SECONDS = 300


def refresh_preferences(
        scaling: ScalingConfig) -> aws.autoscaling.GroupInstanceRefreshPreferencesArgs:
    return aws.autoscaling.GroupInstanceRefreshPreferencesArgs(
        min_healthy_percentage=scaling.refresh_min_healthy_percent,
        max_healthy_percentage=100 if scaling.refresh_min_healthy_percent < 100 else 200,
        instance_warmup=str(WARMUP_SECONDS), skip_matching=True, auto_rollback=True)


class ServerFleet(pulumi.ComponentResource):
    group_name: pulumi.Output[str]
    launch_template_version: pulumi.Output[int]

    def __init__(self, name: str, server: ServerConfig, scaling: ScalingConfig, *,
                 instance_type: str, image: Image, subnet_ids: pulumi.Input[list[str]],
                 security_group_id: pulumi.Input[str], instance_profile_arn: pulumi.Input[str],
                 key_name: pulumi.Input[str] | None, user_data_base64: str,
                 target_group_arn: pulumi.Input[str], tags: dict[str, str],
                 boot_after: Sequence[pulumi.Resource] = (),
                 opts: pulumi.ResourceOptions | None = None):
        """`boot_after`: what the first boot reads (its artefact, SSM parameters) must exist
        first."""
        super().__init__("webstack:server:ServerFleet", name, None, opts)
        tags = {**tags, "Name": name}
        template = aws.ec2.LaunchTemplate(
            logical("aws:ec2/launchTemplate:LaunchTemplate", f"{name}-template"),
            image_id=image.id, instance_type=instance_type, key_name=key_name,
            iam_instance_profile=aws.ec2.LaunchTemplateIamInstanceProfileArgs(
                arn=instance_profile_arn),
            metadata_options=aws.ec2.LaunchTemplateMetadataOptionsArgs(**METADATA),
            block_device_mappings=[aws.ec2.LaunchTemplateBlockDeviceMappingArgs(
                device_name=image.root_device_name,
                ebs=aws.ec2.LaunchTemplateBlockDeviceMappingEbsArgs(
                    volume_type="gp3", volume_size=server.disk_gib, encrypted="true",
                    delete_on_termination="true"))],
            network_interfaces=[aws.ec2.LaunchTemplateNetworkInterfaceArgs(
                associate_public_ip_address="true",  # egress for the first boot without a NAT
                security_groups=[security_group_id], delete_on_termination="true")],
            user_data=user_data_base64, update_default_version=True,
            tag_specifications=[aws.ec2.LaunchTemplateTagSpecificationArgs(
                resource_type=kind, tags=tags) for kind in ("instance", "volume")],
            tags=tags, opts=pulumi.ResourceOptions(
                parent=self, ignore_changes=image_ignore(image, "imageId")))
        scaled = server.floor < server.ceiling
        group = aws.autoscaling.Group(
            f"{name}-group",
            min_size=server.floor, max_size=server.ceiling,
            desired_capacity=server.count, vpc_zone_identifiers=subnet_ids,
            launch_template=aws.autoscaling.GroupLaunchTemplateArgs(
                id=template.id, version=template.latest_version.apply(str)),
            target_group_arns=[target_group_arn],
            health_check_type="ELB", health_check_grace_period=WARMUP_SECONDS,
            default_instance_warmup=WARMUP_SECONDS,
            # The provider waits for nothing: its ELB wait counts exactly N healthy servers on
            # every update too (and fails once scaling moved the size), and its targets see
            # no health checks before the HTTPS listener exists. The readiness gate waits
            # instead, after the listeners, for the group's refresh and its servers.
            wait_for_capacity_timeout="0",
            instance_refresh=aws.autoscaling.GroupInstanceRefreshArgs(
                strategy="Rolling", preferences=refresh_preferences(scaling)),
            enabled_metrics=[aws.autoscaling.Metric.GROUP_IN_SERVICE_INSTANCES,
                             aws.autoscaling.Metric.GROUP_DESIRED_CAPACITY],
            tags=[aws.autoscaling.GroupTagArgs(key=k, value=v, propagate_at_launch=False)
                  for k, v in sorted(tags.items())],
            # between bounds, scaling owns the count after create; `pulumi up` must not undo it
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(boot_after),
                                        ignore_changes=["desiredCapacity"] if scaled else []))
        if scaled:
            self._cpu_policy(name, scaling, group)
        self.group = group
        self.group_name = group.name
        self.launch_template_version = template.latest_version
        self.image_id = template.image_id  # the state's image: kept when unpinned
        self.register_outputs({"group_name": self.group_name,
                               "launch_template_version": self.launch_template_version})

    def _cpu_policy(self, name: str, scaling: ScalingConfig,
                    group: aws.autoscaling.Group) -> None:
        aws.autoscaling.Policy(
            f"{name}-cpu", autoscaling_group_name=group.name, policy_type="TargetTrackingScaling",
            estimated_instance_warmup=WARMUP_SECONDS,
            target_tracking_configuration=aws.autoscaling.PolicyTargetTrackingConfigurationArgs(
                target_value=scaling.cpu_target,
                predefined_metric_specification=aws.autoscaling
                .PolicyTargetTrackingConfigurationPredefinedMetricSpecificationArgs(
                    predefined_metric_type="ASGAverageCPUUtilization")),
            opts=pulumi.ResourceOptions(parent=self))
