"""The readiness CLI against moto on 127.0.0.1: real EC2 instances, states and target groups;
console output per instance from devtools.moto_plugins (moto has no SSM registration: the
console path is the one exercised here, as on Debian's AMIs)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from devtools.motoserver import free_port, moto_server
from tests.readiness.harness import DATA, ROOT, check, check_cli

pytestmark = pytest.mark.aws

REGION = "us-east-1"
FAST = ("--region", REGION, "--interval", "0.2")


@pytest.fixture
def ec2(aws_env: str) -> Any:
    return boto3.client("ec2", region_name=REGION)


def launch(ec2: Any, count: int = 1) -> list[str]:
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    reply = ec2.run_instances(ImageId=image, MinCount=count, MaxCount=count,
                              InstanceType="t3.micro")
    return [i["InstanceId"] for i in reply["Instances"]]


def boot(console_dir: Path, instance_id: str, fixture: str) -> None:
    (console_dir / f"{instance_id}.txt").write_text((DATA / fixture).read_text())


def test_ready_when_cloud_init_is_done(ec2: Any, console_dir: Path) -> None:
    [iid] = launch(ec2)
    boot(console_dir, iid, "console-debian12-done.txt")
    run = check(*FAST, "--instance-id", iid, "--name", "web-1", "--timeout", "20")
    assert run.code == 0, run.err
    assert f"[web-1 {iid}] cloud-init: done" in run.out
    assert run.out.splitlines()[-1].startswith(f"ready: web-1: {iid} in ")


def test_waits_while_cloud_init_runs(ec2: Any, console_dir: Path) -> None:
    [iid] = launch(ec2)
    boot(console_dir, iid, "console-debian12-running.txt")
    proc = subprocess.Popen([sys.executable, "-m", "deploy.readiness_check", *FAST,
                             "--instance-id", iid, "--timeout", "30"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith(f"[{iid}] cloud-init: running (modules:final) "), first
        boot(console_dir, iid, "console-debian12-done.txt")  # the boot moves on
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0, err
    assert f"[{iid}] cloud-init: done" in out and "ready: " in out


def test_cloud_init_failure_names_server_module_and_log_tail(ec2: Any, console_dir: Path) -> None:
    [iid] = launch(ec2)
    boot(console_dir, iid, "console-debian12-failed.txt")
    run = check_cli(*FAST, "--instance-id", iid, "--name", "web-1", "--timeout", "30")
    assert run.code == 1 and run.seconds < 15
    lines = run.err.splitlines()
    assert lines[0].startswith(f"not ready: web-1 {iid} ({REGION}) after ")
    # moto 5.2 has no DescribeInstanceInformation: a 500 with an HTML page, told in one line
    assert lines[1] == "  SSM not usable (HTTP 500 from the endpoint): read the console"
    assert "  cloud-init: error (read from the EC2 console output)" in lines
    assert "  failing module(s): scripts_user" in lines
    assert "    | ERROR: No matching distribution found for flask==9.9.9" in lines
    assert "Traceback" not in run.err


def test_instance_not_found_fails_at_once(aws_env: str) -> None:
    run = check(*FAST, "--instance-id", "i-0123456789abcdef0", "--timeout", "60")
    assert run.code == 1 and run.seconds < 10
    assert (f"instance i-0123456789abcdef0 does not exist in region {REGION} "
            "(check --region and the id)") in run.err


def test_stopped_instance_fails(ec2: Any) -> None:
    [iid] = launch(ec2)
    ec2.stop_instances(InstanceIds=[iid])
    run = check(*FAST, "--instance-id", iid, "--timeout", "60")
    assert run.code == 1 and run.seconds < 10
    assert "instance is stopped" in run.err


def test_timeout_is_honoured_and_says_where_it_stood(ec2: Any, console_dir: Path) -> None:
    [iid] = launch(ec2)
    boot(console_dir, iid, "console-debian12-running.txt")
    run = check_cli(*FAST, "--instance-id", iid, "--timeout", "3")
    assert run.code == 1
    assert run.seconds < 8  # 3 s, the interpreter's start and a margin
    assert "timed out: --timeout 3s passed" in run.err
    assert "cloud-init: running (modules:final) (read from the EC2 console output)" in run.err
    assert "| Collecting gunicorn==23.0.0" in run.err


def test_several_instances_the_timeout_names_the_pending_one(ec2: Any, console_dir: Path) -> None:
    done, silent = launch(ec2, 2)
    boot(console_dir, done, "console-debian12-done.txt")  # `silent` keeps moto's kernel banner
    run = check(*FAST, "--instance-id", done, "--instance-id", silent, "--timeout", "5")
    assert run.code == 1
    assert run.err.splitlines()[0].startswith(f"not ready: {silent} ({REGION})")
    assert f"[{done}] cloud-init: done" in run.out
    assert f"[{silent}] cloud-init: not started" in run.out


@pytest.fixture
def target_group(ec2: Any) -> str:
    vpc = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]
    elbv2 = boto3.client("elbv2", region_name=REGION)
    name = f"web-{free_port()}"
    return elbv2.create_target_group(Name=name, Protocol="HTTP", Port=80, VpcId=vpc["VpcId"],
                                     TargetType="instance")["TargetGroups"][0]["TargetGroupArn"]


def test_target_group_healthy(ec2: Any, console_dir: Path, target_group: str) -> None:
    [iid] = launch(ec2)
    boot(console_dir, iid, "console-debian12-done.txt")
    boto3.client("elbv2", region_name=REGION).register_targets(
        TargetGroupArn=target_group, Targets=[{"Id": iid}])
    run = check(*FAST, "--instance-id", iid, "--target-group-arn", target_group,
                "--name", "web", "--timeout", "20")
    assert run.code == 0, run.err
    assert f"[web targets] targets: {iid} healthy" in run.out


def test_target_group_reports_why_a_target_is_not_healthy(ec2: Any, console_dir: Path,
                                                          target_group: str) -> None:
    [iid] = launch(ec2)
    boot(console_dir, iid, "console-debian12-done.txt")  # never registered in the group
    run = check(*FAST, "--instance-id", iid, "--target-group-arn", target_group,
                "--timeout", "2")
    assert run.code == 1
    assert (f"{iid} unused (Target.NotRegistered: Target is not registered to the target "
            "group)") in run.err


def test_missing_target_group(aws_env: str) -> None:
    arn = f"arn:aws:elasticloadbalancing:{REGION}:123456789012:targetgroup/none/0123456789abcdef"
    run = check(*FAST, "--target-group-arn", arn, "--timeout", "20")
    assert run.code == 1 and f"target group {arn} does not exist" in run.err


def test_unreachable_endpoint_is_a_usage_error(aws_env: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    run = check(*FAST, "--instance-id", "i-0123456789abcdef0", "--timeout", "60")
    assert run.code == 2 and run.seconds < 10
    assert run.err.startswith("error: AWS credentials check (sts get-caller-identity): cannot "
                              "reach the AWS endpoint")
    assert len(run.err.splitlines()) == 1


def test_no_credentials_is_a_usage_error(aws_env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    run = check(*FAST, "--instance-id", "i-0123456789abcdef0")
    assert run.code == 2 and "no usable AWS credentials" in run.err
    assert "AWS_PROFILE" in run.err  # what to do


@pytest.fixture(scope="module")
def moto_with_auth() -> Iterator[str]:
    """A moto that checks credentials (only its IAM users' keys are valid)."""
    with moto_server({"INITIAL_NO_AUTH_ACTION_COUNT": "0"}) as url:
        yield url


def test_rejected_credentials_are_a_usage_error(aws_env: str, moto_with_auth: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_with_auth)
    run = check(*FAST, "--instance-id", "i-0123456789abcdef0")
    assert run.code == 2
    assert "AWS rejected the credentials (InvalidClientTokenId" in run.err
    assert "testing" not in run.err  # the key is never echoed


def make_group(aws_env: str, size: int) -> tuple[str, Any]:
    ec2 = boto3.client("ec2", region_name=REGION)
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    name = f"web-{size}-{free_port()}"
    ec2.create_launch_template(LaunchTemplateName=name, LaunchTemplateData={
        "ImageId": image, "InstanceType": "t3.micro"})
    asg = boto3.client("autoscaling", region_name=REGION)
    subnet = ec2.describe_subnets()["Subnets"][0]["SubnetId"]
    asg.create_auto_scaling_group(AutoScalingGroupName=name, MinSize=size, MaxSize=size,
                                  DesiredCapacity=size, VPCZoneIdentifier=subnet,
                                  LaunchTemplate={"LaunchTemplateName": name})
    return name, asg


def test_group_servers_are_each_checked(aws_env: str, console_dir: Path) -> None:
    name, asg = make_group(aws_env, 2)
    ids = sorted(i["InstanceId"] for i in asg.describe_auto_scaling_groups(
        AutoScalingGroupNames=[name])["AutoScalingGroups"][0]["Instances"])
    assert len(ids) == 2
    boot(console_dir, ids[0], "console-debian12-done.txt")
    boot(console_dir, ids[1], "console-debian12-failed.txt")
    run = check_cli(*FAST, "--asg-name", name, "--name", "web", "--timeout", "30")
    assert run.code == 1, run.out
    assert f"[web {ids[0]}] cloud-init: done" in run.out
    assert run.err.splitlines()[0].startswith(f"not ready: web {ids[1]} ({REGION})")
    assert "  failing module(s): scripts_user" in run.err.splitlines()
    boot(console_dir, ids[1], "console-debian12-done.txt")
    run = check(*FAST, "--asg-name", name, "--timeout", "20")
    assert run.code == 0, run.err


def test_unknown_or_empty_group_is_explained(aws_env: str) -> None:
    run = check(*FAST, "--asg-name", "no-such-group", "--timeout", "10")
    assert run.code == 2
    assert "--asg-name 'no-such-group': no such Auto Scaling group in us-east-1" in run.err
    name, _ = make_group(aws_env, 0)
    run = check(*FAST, "--asg-name", name, "--timeout", "10")
    assert run.code == 1 and "has no pending or in-service servers" in run.err


def script_refreshes(refresh_dir: Path, group: str, *refreshes: dict[str, Any]) -> None:
    (refresh_dir / f"{group}.json").write_text(json.dumps(list(refreshes)))


def test_group_gate_waits_for_the_instance_refresh(aws_env: str, console_dir: Path,
                                                   refresh_dir: Path) -> None:
    """The real CLI over HTTP: it holds while the refresh runs and checks the servers after."""
    name, asg = make_group(aws_env, 1)
    [iid] = [i["InstanceId"] for i in asg.describe_auto_scaling_groups(
        AutoScalingGroupNames=[name])["AutoScalingGroups"][0]["Instances"]]
    boot(console_dir, iid, "console-debian12-done.txt")
    running = {"InstanceRefreshId": "r-1", "AutoScalingGroupName": name,
               "Status": "InProgress", "PercentageComplete": 0,
               "StartTime": "2025-05-01T12:00:00+00:00"}
    script_refreshes(refresh_dir, name, running)
    proc = subprocess.Popen([sys.executable, "-m", "deploy.readiness_check", *FAST,
                             "--asg-name", name, "--launch-template-version", "1",
                             "--timeout", "30"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith(f"[group {name}] instance refresh r-1: InProgress, 0% done"), \
            first
        script_refreshes(refresh_dir, name, {**running, "Status": "Successful",
                                             "PercentageComplete": 100})
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0, err
    assert f"[group {name}] servers of launch template version 1: {iid}" in out
    assert f"[{iid}] cloud-init: done" in out


def test_group_gate_fails_on_a_rolled_back_refresh(aws_env: str, refresh_dir: Path) -> None:
    name, _ = make_group(aws_env, 1)
    script_refreshes(refresh_dir, name, {
        "InstanceRefreshId": "r-2", "AutoScalingGroupName": name,
        "Status": "RollbackSuccessful", "PercentageComplete": 50,
        "StatusReason": "The instance refresh was rolled back.",
        "StartTime": "2025-05-01T12:00:00+00:00",
        "RollbackDetails": {"RollbackReason": "ELB health checks failed"}})
    run = check_cli(*FAST, "--asg-name", name, "--launch-template-version", "1",
                    "--timeout", "20")
    assert run.code == 1, run.out
    assert ("  instance refresh r-2: RollbackSuccessful, 50% done (The instance refresh was "
            "rolled back.)") in run.err.splitlines()
    assert "  rolled back: ELB health checks failed" in run.err.splitlines()
