"""An application load balancer in front of the servers; terminates TLS with ACM when asked."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from components.aws_names import logical
from components.dns import Endpoint

# TLS 1.3 plus 1.2 with forward-secret ciphers only; nothing older is negotiated.
TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"


def health_check(path: str) -> aws.lb.TargetGroupHealthCheckArgs:
    return aws.lb.TargetGroupHealthCheckArgs(
        enabled=True, path=path, protocol="HTTP", matcher="200", interval=15, timeout=5,
        healthy_threshold=2, unhealthy_threshold=3)


class LoadBalancer(pulumi.ComponentResource):
    dns_name: pulumi.Output[str]
    zone_id: pulumi.Output[str]
    arn: pulumi.Output[str]
    target_group_arn: pulumi.Output[str]
    endpoint: Endpoint  # what the public names point at

    def __init__(self, name: str, *, idle_timeout: int, health_path: str, tags: dict[str, str],
                 vpc_id: pulumi.Input[str], subnet_ids: pulumi.Input[list[str]],
                 security_group_id: pulumi.Input[str],
                 instance_ids: list[pulumi.Input[str]],  # [] when an Auto Scaling group registers
                 certificate_arn: pulumi.Input[str] | None,
                 opts: pulumi.ResourceOptions | None = None):
        """`idle_timeout`: seconds an idle connection is kept (`StackConfig.lb_idle_timeout`);
        `health_path`: what the target group's health check asks for."""
        super().__init__("webstack:lb:LoadBalancer", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        alb = aws.lb.LoadBalancer(
            logical("aws:lb/loadBalancer:LoadBalancer", f"{name}-alb"),
            load_balancer_type="application", internal=False,
            subnets=subnet_ids, security_groups=[security_group_id],
            drop_invalid_header_fields=True, idle_timeout=idle_timeout,
            tags=tags, opts=child)
        target_group = aws.lb.TargetGroup(
            logical("aws:lb/targetGroup:TargetGroup", f"{name}-web"), port=80, protocol="HTTP",
            target_type="instance", vpc_id=vpc_id,
            health_check=health_check(health_path), deregistration_delay=30,
            tags=tags, opts=child)
        for i, instance_id in enumerate(instance_ids):
            aws.lb.TargetGroupAttachment(f"{name}-web-{i + 1}",
                                         target_group_arn=target_group.arn,
                                         target_id=instance_id, port=80, opts=child)
        forward = [aws.lb.ListenerDefaultActionArgs(type="forward",
                                                    target_group_arn=target_group.arn)]
        redirect = [aws.lb.ListenerDefaultActionArgs(
            type="redirect", redirect=aws.lb.ListenerDefaultActionRedirectArgs(
                protocol="HTTPS", port="443", status_code="HTTP_301"))]
        self.listeners: list[aws.lb.Listener] = []
        if certificate_arn is not None:
            self.listeners.append(aws.lb.Listener(
                f"{name}-https", load_balancer_arn=alb.arn, port=443, protocol="HTTPS",
                ssl_policy=TLS_POLICY, certificate_arn=certificate_arn, default_actions=forward,
                tags=tags, opts=child))
        self.listeners.append(aws.lb.Listener(
            f"{name}-http", load_balancer_arn=alb.arn, port=80, protocol="HTTP",
            default_actions=redirect if certificate_arn is not None else forward,
            tags=tags, opts=child))
        self.dns_name = alb.dns_name
        self.zone_id = alb.zone_id
        self.endpoint = Endpoint(alb.dns_name, alb.zone_id)
        self.arn = alb.arn
        self.target_group_arn = target_group.arn
        self.arn_suffix = alb.arn_suffix
        self.target_group_arn_suffix = target_group.arn_suffix
        self.register_outputs({"dns_name": self.dns_name, "zone_id": self.zone_id,
                               "arn": self.arn, "target_group_arn": self.target_group_arn})
