"""The servers a deploy tool acts on: an Auto Scaling group's, and their health in a load
balancer's target group, read the same way by the readiness check and the rollout."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from deploy.aws import UsageError


def group(autoscaling: Any, name: str, region: str) -> dict[str, Any]:
    """The Auto Scaling group `name` as DescribeAutoScalingGroups tells it; a UsageError if
    there is none (a wrong --asg-name or --region)."""
    groups = autoscaling.describe_auto_scaling_groups(
        AutoScalingGroupNames=[name])["AutoScalingGroups"]
    if not groups:
        raise UsageError(f"--asg-name {name!r}: no such Auto Scaling group in {region}")
    return groups[0]


def in_service(found: dict[str, Any]) -> list[str]:
    """The group's InService servers, sorted: the order a rollout takes them in."""
    return sorted(i["InstanceId"] for i in found.get("Instances", [])
                  if i.get("LifecycleState") == "InService")


@dataclass(frozen=True)
class Target:
    """One server in a target group: its state and, unless healthy, the load balancer's
    reason, e.g. "unhealthy (Target.ResponseCodeMismatch: Health checks failed with ...)"."""

    instance_id: str
    state: str
    reason: str = ""

    @property
    def healthy(self) -> bool:
        return self.state == "healthy"

    def __str__(self) -> str:
        return self.state + (f" ({self.reason})" if self.reason else "")


def target_health(elbv2: Any, arn: str, instance_ids: Sequence[str] = ()) -> list[Target]:
    """The target group's servers (or only `instance_ids`) and their health."""
    kwargs: dict[str, Any] = {"TargetGroupArn": arn}
    if instance_ids:
        kwargs["Targets"] = [{"Id": i} for i in instance_ids]
    found = elbv2.describe_target_health(**kwargs).get("TargetHealthDescriptions", [])
    targets = []
    for t in found:
        th = t.get("TargetHealth", {})
        reason = ": ".join(x for x in (th.get("Reason"), th.get("Description")) if x)
        targets.append(Target(t["Target"]["Id"], th.get("State", "?"), reason))
    return targets
