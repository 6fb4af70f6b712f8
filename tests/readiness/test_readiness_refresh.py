"""The server gate of an Auto Scaling group waits for the group's instance refresh, which the
provider starts and does not wait for: botocore's Stubber plays the refreshes (moto 5.2 has no
DescribeInstanceRefreshes), with AWS's own response shapes checked by the Stubber."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from deploy.readiness_check import GroupCheck, Step, main, wait

GROUP = "shop-prod-web-0a1b2c3"
REGION = "us-east-1"
OLD, NEW = ["i-0000000000000aaa1", "i-0000000000000aaa2"], ["i-0000000000000bbb1",
                                                              "i-0000000000000bbb2"]
T0 = datetime(2025, 5, 1, 12, 0, tzinfo=UTC)


def instance(iid: str, version: str, state: str = "InService") -> dict[str, Any]:
    return {"InstanceId": iid, "AvailabilityZone": "us-east-1a", "LifecycleState": state,
            "HealthStatus": "Healthy", "ProtectedFromScaleIn": False,
            "LaunchTemplate": {"LaunchTemplateId": "lt-0123456789abcdef0",
                               "LaunchTemplateName": "shop", "Version": version}}


def refresh(status: str, percent: int, *, reason: str = "", started: datetime = T0,
            **extra: Any) -> dict[str, Any]:
    body = {"InstanceRefreshId": f"r-{status.lower()}-{started:%H%M}",
            "AutoScalingGroupName": GROUP, "Status": status, "PercentageComplete": percent,
            "StartTime": started, **extra}
    return {**body, "StatusReason": reason} if reason else body


class Group:
    """An autoscaling client whose answers are queued: one (group, refreshes) pair per poll."""

    def __init__(self) -> None:
        self.client = boto3.client("autoscaling", region_name=REGION, aws_access_key_id="k",
                                   aws_secret_access_key="s")
        self.stub = Stubber(self.client)
        self.stub.activate()

    def poll(self, instances: list[dict[str, Any]], refreshes: list[dict[str, Any]],
             desired: int = 2) -> None:
        self.stub.add_response("describe_auto_scaling_groups", {"AutoScalingGroups": [{
            "AutoScalingGroupName": GROUP, "MinSize": 2, "MaxSize": 4,
            "DesiredCapacity": desired, "DefaultCooldown": 300, "AvailabilityZones": [],
            "HealthCheckType": "ELB", "CreatedTime": T0 - timedelta(days=3),
            "Instances": instances}]}, {"AutoScalingGroupNames": [GROUP]})
        self.stub.add_response("describe_instance_refreshes", {"InstanceRefreshes": refreshes},
                               {"AutoScalingGroupName": GROUP, "MaxRecords": 10})


class Session:
    """The CLI's session: an identity in the expected account, and the stubbed group."""

    def __init__(self, group: Group) -> None:
        self.sts = boto3.client("sts", region_name=REGION, aws_access_key_id="k",
                                aws_secret_access_key="s")
        stub = Stubber(self.sts)
        stub.add_response("get_caller_identity", {
            "Account": "123456789012", "Arn": "arn:aws:iam::123456789012:user/ci",
            "UserId": "AIDEXAMPLE"})
        stub.activate()
        self.clients = {"sts": self.sts, "autoscaling": group.client}

    def client(self, name: str, config: object = None) -> Any:
        return self.clients.get(name) or boto3.client(  # type: ignore[call-overload]
            name, region_name=REGION, aws_access_key_id="k", aws_secret_access_key="s")


def gate(group: Group, *extra: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(["--region", REGION, "--asg-name", GROUP, "--launch-template-version", "3",
                 "--interval", "0.01", "--timeout", "10", "--account", "123456789012",
                 *extra], out=out, err=err, session=Session(group))
    return code, out.getvalue(), err.getvalue()


def test_waits_while_the_refresh_runs_then_takes_the_new_version_s_servers() -> None:
    group = Group()
    rolling = [instance(OLD[0], "2"), instance(NEW[0], "3", "Pending:Wait")]
    group.poll(rolling, [refresh("InProgress", 50, reason="Waiting for instances to warm up "
                                                          "before continuing.")])
    group.poll([instance(NEW[0], "3"), instance(NEW[1], "3", "Pending")],
               [refresh("Successful", 100)])
    check = GroupCheck(group.client, GROUP, REGION, "3")
    out = io.StringIO()
    wait([lambda: [Step("web", check)]], timeout=10, interval=0.01, region=REGION, out=out)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("[web] instance refresh r-inprogress-1200: InProgress, 50% done "
                               "(Waiting for instances to warm up before continuing.) ")
    assert lines[1].startswith(f"[web] servers of launch template version 3: {NEW[0]}, "
                               f"{NEW[1]} ")
    assert check.instances == NEW
    group.stub.assert_no_pending_responses()


def test_only_servers_of_the_deployed_version_count() -> None:
    """No refresh (nothing to refresh, or a create): the group's servers of the version."""
    group = Group()
    group.poll([instance(OLD[0], "2"), instance(NEW[0], "3")], [])
    group.poll([instance(OLD[0], "2", "Terminating"), instance(NEW[0], "3"),
                instance(NEW[1], "3")], [])
    check = GroupCheck(group.client, GROUP, REGION, "3")
    assert check.poll().line == "servers of launch template version 3: 1/2"
    assert check.poll().state == "ready" and check.instances == NEW


@pytest.mark.parametrize(("status", "extra", "expected"), [
    ("Failed", {}, "  instance refresh r-failed-1200: Failed, 40% done (Instance "
                   "i-0000000000000bbb1 failed to launch: InsufficientInstanceCapacity)"),
    ("Cancelled", {}, "  instance refresh r-cancelled-1200: Cancelled, 40% done (Instance "
                      "i-0000000000000bbb1 failed to launch: InsufficientInstanceCapacity)"),
    ("RollbackSuccessful", {"RollbackDetails": {
        "RollbackReason": "Instance refresh failed and auto rollback was triggered: "
                          "ELB health checks failed for i-0000000000000bbb1"}},
     "  rolled back: Instance refresh failed and auto rollback was triggered: ELB health "
     "checks failed for i-0000000000000bbb1"),
])
def test_a_refresh_that_did_not_succeed_fails_the_gate_with_its_reason(
        status: str, extra: dict[str, Any], expected: str) -> None:
    group = Group()
    group.poll([instance(OLD[0], "2"), instance(OLD[1], "2")], [
        refresh("Successful", 100, started=T0 - timedelta(days=1)),  # the previous deploy's
        refresh(status, 40, reason="Instance i-0000000000000bbb1 failed to launch: "
                                   "InsufficientInstanceCapacity", **extra)])
    code, _, err = gate(group)
    assert code == 1, err
    lines = err.splitlines()
    assert lines[0].startswith(f"not ready: group {GROUP} ({REGION}) after ")
    assert expected in lines
    assert f"  instance refresh r-{status.lower()}-1200: {status}, 40% done" in err
    assert "previous launch template version" in err
    assert "Traceback" not in err
    group.stub.assert_no_pending_responses()


def test_the_health_check_without_a_version_takes_a_failed_refresh_as_history() -> None:
    group = Group()
    group.poll([instance(OLD[0], "2"), instance(OLD[1], "2")],
               [refresh("RollbackSuccessful", 100)])
    check = GroupCheck(group.client, GROUP, REGION, None)
    assert check.poll().state == "ready" and check.instances == OLD


def test_a_refresh_still_running_at_the_deadline_is_the_reason_given() -> None:
    group = Group()
    for _ in range(200):  # more than the deadline lets it ask for
        group.poll([instance(OLD[0], "2")], [refresh("InProgress", 10)])
    code, _, err = gate(group, "--timeout", "0.3")
    assert code == 1
    assert "timed out: --timeout 0.3s passed" in err
    assert "      instance refresh r-inprogress-1200: InProgress, 10% done" in err.splitlines()


def test_version_needs_a_group() -> None:
    out, err = io.StringIO(), io.StringIO()
    code = main(["--region", REGION, "--instance-id", "i-0123456789abcdef0",
                 "--launch-template-version", "3"], out=out, err=err)
    assert code == 2
    assert err.getvalue() == ("error: --launch-template-version '3': expected a version "
                              "number, with --asg-name\n")
