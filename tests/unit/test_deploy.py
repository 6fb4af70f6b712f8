"""The deploy package (deploy/): boto3 and the standard library only, and the helpers its
tools share (their own behaviour: tests/readiness, tests/release/test_rollout.py)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from deploy import cli, servers, ssm
from deploy.aws import UsageError

ROOT = Path(__file__).resolve().parents[2]
# What deploy/ may import of the program's package: its pure, Pulumi-free modules.
PURE = {"components", "components.naming", "components.gitref", "components.aws_session",
        "components.aws_names", "components.registry"}


def test_no_deploy_module_imports_pulumi() -> None:
    modules = sorted(f"deploy.{p.stem}" for p in (ROOT / "deploy").glob("*.py")
                     if p.stem != "__init__")
    assert {"deploy.readiness_check", "deploy.rollout"} <= set(modules)
    probe = ("import importlib, json, sys\n"
             f"for m in {modules!r}: importlib.import_module(m)\n"
             "print(json.dumps(sorted(sys.modules)))")
    proc = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, check=True)
    loaded = set(json.loads(proc.stdout))
    assert not {m for m in loaded if m == "pulumi" or m.startswith("pulumi")}
    assert {m for m in loaded if m.split(".")[0] == "components"} <= PURE


def test_seconds_flags_say_which_and_what() -> None:
    args = argparse.Namespace(timeout=0.0, interval=5.0)
    with pytest.raises(UsageError, match=r"^--timeout must be a positive number of seconds$"):
        cli.check_seconds(args, "timeout")
    with pytest.raises(UsageError, match=r"^--timeout and --interval must be positive numbers"):
        cli.check_seconds(args, "timeout", "interval")
    cli.check_seconds(argparse.Namespace(timeout=1.0), "timeout")


@pytest.mark.parametrize(("seconds", "shown"), [(0, "0s"), (59.9, "59s"), (61, "1m01s"),
                                                (3725, "1h02m")])
def test_elapsed(seconds: float, shown: str) -> None:
    assert cli.elapsed(seconds) == shown


def test_the_runner_turns_each_outcome_into_its_exit_code(capsys: pytest.CaptureFixture[str]
                                                          ) -> None:
    p = argparse.ArgumentParser(prog="t")
    p.add_argument("--x", required=True)

    def raising(exc: BaseException) -> Any:
        def body(args: argparse.Namespace) -> int:
            raise exc
        return body

    outcomes = [(raising(UsageError("--x 'y': expected z")), 2, "error: --x 'y': expected z\n"),
                (raising(cli.Failure("two\nlines")), 1, "F: two\nlines\n"),
                (raising(KeyboardInterrupt()), 1, "interrupted\n"),
                (raising(RuntimeError("a\n  b")), 1, "error: unexpected RuntimeError: a b\n"),
                (lambda args: 0, 0, "")]
    for body, code, err in outcomes:
        assert cli.run(p, ["--x", "y"], sys.stderr, body, failed="F: ") == code
        assert capsys.readouterr().err == err
    assert cli.run(p, [], sys.stderr, lambda args: 0) == 2  # argparse's own usage line
    assert "the following arguments are required: --x" in capsys.readouterr().err


def _client(name: str) -> Any:
    return boto3.client(name, region_name="us-east-1",  # type: ignore[call-overload]
                        aws_access_key_id="k", aws_secret_access_key="s")


def test_ssm_wait_polls_until_finished_and_stops_at_the_deadline() -> None:
    client = _client("ssm")
    command = "11111111-2222-3333-4444-555555555555"
    ask = {"CommandId": command, "InstanceId": "i-0123456789abcdef0"}
    now = [0.0]
    clock = cli.Clock(now=lambda: now[0],
                      sleep=lambda s: now.__setitem__(0, now[0] + s))
    with Stubber(client) as stub:
        stub.add_client_error("get_command_invocation", "InvocationDoesNotExist",
                              expected_params=ask)
        stub.add_response("get_command_invocation", {"Status": "Failed", "ResponseCode": 3,
                                                     "StandardErrorContent": "boom"}, ask)
        inv = ssm.wait(client, command, ask["InstanceId"], until=10, poll=2, clock=clock)
        assert (inv.finished, inv.status, inv.code, inv.stderr, now[0]) == (
            True, "Failed", 3, "boom", 2)
        for _ in range(3):
            stub.add_response("get_command_invocation", {"Status": "InProgress"}, ask)
        inv = ssm.wait(client, command, ask["InstanceId"], until=6, poll=2, clock=clock)
        assert (inv.finished, inv.status, now[0]) == (False, "InProgress", 6)
        stub.assert_no_pending_responses()


def test_target_health_reads_state_and_reason() -> None:
    client = _client("elbv2")
    arn = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/0123456789abcdef"
    with Stubber(client) as stub:
        stub.add_response("describe_target_health", {"TargetHealthDescriptions": [
            {"Target": {"Id": "i-1"}, "TargetHealth": {"State": "healthy"}},
            {"Target": {"Id": "i-2"}, "TargetHealth": {
                "State": "unhealthy", "Reason": "Target.ResponseCodeMismatch",
                "Description": "Health checks failed with these codes: [502]"}}]},
            {"TargetGroupArn": arn, "Targets": [{"Id": "i-1"}, {"Id": "i-2"}]})
        targets = servers.target_health(client, arn, ["i-1", "i-2"])
    assert [(t.instance_id, t.healthy, str(t)) for t in targets] == [
        ("i-1", True, "healthy"),
        ("i-2", False, "unhealthy (Target.ResponseCodeMismatch: Health checks failed with "
                       "these codes: [502])")]


def test_an_unknown_group_is_a_usage_error_and_in_service_sorts() -> None:
    client = _client("autoscaling")
    with Stubber(client) as stub:
        stub.add_response("describe_auto_scaling_groups", {"AutoScalingGroups": []},
                          {"AutoScalingGroupNames": ["g"]})
        with pytest.raises(UsageError, match=r"^--asg-name 'g': no such Auto Scaling group in "
                                             r"us-east-1$"):
            servers.group(client, "g", "us-east-1")
    found = {"Instances": [{"InstanceId": "i-2", "LifecycleState": "InService"},
                           {"InstanceId": "i-3", "LifecycleState": "Pending"},
                           {"InstanceId": "i-1", "LifecycleState": "InService"}]}
    assert servers.in_service(found) == ["i-1", "i-2"]
