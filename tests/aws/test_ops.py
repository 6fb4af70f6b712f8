"""The operations CLI (deploy/ops.py): the stack's outputs (a fake `pulumi` on PATH, a saved
file), botocore's Stubber for Run Command, EC2/SSM status and the SSM session (a fake
session-manager-plugin on PATH records how it was started), and moto on 127.0.0.1 for the logs
(FilterLogEvents across servers' streams, pages and --follow on a fake clock)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from deploy import ops, ops_logs
from deploy.cli import Clock
from tests.http_site import Site
from tests.release import test_rollout as rollout_tests

IDS = ["i-0aaaaaaaaaaaaaaa1", "i-0aaaaaaaaaaaaaaa2"]
CMD = "31111111-2222-3333-4444-555555555555"
TG = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/shop/0123456789abcdef"
BASE = "/webstack/dev/shop"
PROGRAM = "/usr/local/lib/webstack/shop/release"
A = {"id": "1a2b3c4d5e6f", "ref": "1a2b3c4d5e6f" + "0" * 28, "released": "2026-12-01T10:00:00Z",
     "current": False}
B = {"id": "9f3c2a1b7e44", "ref": "9f3c2a1b7e44" + "1" * 28, "released": "2026-12-02T17:40:05Z",
     "current": True}
LISTED = "".join(json.dumps(r) + "\n" for r in (B, A))


def outputs(**changes: Any) -> dict[str, Any]:
    """A single-server stack's outputs (the contract's names), with `changes` (None drops)."""
    values: dict[str, Any] = {
        "region": "us-east-1", "appName": "shop", "instanceIds": [IDS[0]],
        "url": "http://shop.example.org", "releaseRefParameter": f"{BASE}/release-ref",
        "logGroupNames": [f"{BASE}/{k}" for k in ("nginx-access", "nginx-error", "app",
                                                  "cloud-init", "run")],
        "runLogGroupName": f"{BASE}/run",
        "healthCheckCommand": ".venv/bin/python -m deploy.readiness_check --region us-east-1 "
                              f"--instance-id {IDS[0]} --url http://shop.example.org/healthz"}
    values.update(changes)
    return {k: v for k, v in values.items() if v is not None}


@dataclass
class FakeTime:
    """A clock that moves only when the code sleeps; after `wake_ups` sleeps it is Ctrl-C."""

    t: float = 1000.0
    sleeps: list[float] = field(default_factory=list)
    wake_ups: int = 1000
    on_sleep: Any = None

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds
        if len(self.sleeps) > self.wake_ups:
            raise KeyboardInterrupt
        if self.on_sleep:
            self.on_sleep()

    @property
    def clock(self) -> Clock:
        return Clock(now=self.now, sleep=self.sleep)


def call(argv: list[str], tmp: Path, values: dict[str, Any] | None = None,
         **kwargs: Any) -> tuple[int, str, str]:
    """`webstack --outputs FILE argv...` with the outputs `values` (the default stack's)."""
    saved = tmp / "outputs.json"
    saved.write_text(json.dumps(outputs() if values is None else values))
    out, err = io.StringIO(), io.StringIO()
    code = ops.main(["--outputs", str(saved), *argv], out=out, err=err, **kwargs)
    return code, out.getvalue(), err.getvalue()


class Stubbed(rollout_tests.Stubbed):
    """The rollout tests' Stubber session, with EC2 and CloudWatch Logs too."""

    def __init__(self) -> None:
        super().__init__()
        for name in ("ec2", "logs"):
            self.clients[name] = boto3.client(name, region_name="us-east-1",  # type: ignore[call-overload]
                                              aws_access_key_id="k", aws_secret_access_key="s")
            self.stubs[name] = Stubber(self.clients[name])
            self.stubs[name].activate()

    def online(self, *pings: tuple[str, str]) -> None:
        ids = [iid for iid, _ in pings]
        self.stubs["ssm"].add_response(
            "describe_instance_information",
            {"InstanceInformationList": [{"InstanceId": i, "PingStatus": p} for i, p in pings
                                         if p]},
            {"Filters": [{"Key": "InstanceIds", "Values": ids}]})

    def command(self, iid: str, script: str, status: str, *, code: int = 0, stdout: str = "",
                stderr: str = "", **expected: Any) -> None:
        self.stubs["ssm"].add_response(
            "send_command", {"Command": {"CommandId": CMD}},
            {"InstanceIds": [iid], "DocumentName": "AWS-RunShellScript", "Comment": ANY,
             "TimeoutSeconds": ANY, "Parameters": {"commands": [script],
                                                   "executionTimeout": ANY}, **expected})
        self.invocation(iid, CMD, status, stdout, stderr, code)


@pytest.fixture
def stubbed() -> Iterator[Stubbed]:
    session = Stubbed()
    yield session
    session.done()


# --- the stack's outputs ------------------------------------------------------------------------

FAKE_PULUMI = """#!/bin/sh
printf '%s\\n' "$PWD" "$@" > "{record}"
{body}
"""


def fake_pulumi(tmp: Path, body: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp / "bin"
    bin_dir.mkdir(exist_ok=True)
    record = tmp / "pulumi-argv"
    (bin_dir / "pulumi").write_text(FAKE_PULUMI.format(record=record, body=body))
    (bin_dir / "pulumi").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    return record


def run_main(argv: list[str], **kwargs: Any) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = ops.main(argv, out=out, err=err, **kwargs)
    return code, out.getvalue(), err.getvalue()


class LoopTransport:
    """Records what it was asked to run and answers from a table."""

    def __init__(self, answers: dict[str, tuple[int, str, str]]) -> None:
        self.answers, self.ran = answers, []

    def run(self, instance_id: str, script: str) -> tuple[int, str, str]:
        self.ran.append((instance_id, script))
        return self.answers[script]


def test_outputs_come_from_pulumi_in_the_project_for_the_given_stack(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    saved = tmp_path / "o.json"
    saved.write_text(json.dumps(outputs()))
    record = fake_pulumi(tmp_path, f"cat {saved}", monkeypatch)
    transport = LoopTransport({f"{PROGRAM} --list": (0, LISTED, "")})
    code, out, err = run_main(["--stack", "dev", "releases"], transport=transport,
                              environ={})
    assert (code, err) == (0, "")
    assert record.read_text().splitlines() == [str(ops.PROJECT), "stack", "output", "--json",
                                               "--stack", "dev"]
    assert transport.ran == [(IDS[0], f"{PROGRAM} --list")]
    assert out == (f"{IDS[0]}: 2 release(s)\n"
                   "    ID            RELEASED              REF\n"
                   f"  * 9f3c2a1b7e44  2026-12-02T17:40:05Z  {B['ref']}\n"
                   f"    1a2b3c4d5e6f  2026-12-01T10:00:00Z  {A['ref']}\n")


@pytest.mark.parametrize(("body", "message"), [
    ("echo 'error: no stack selected; please use `pulumi stack select` to choose one' >&2; "
     "exit 255", "error: no stack selected: pass --stack NAME or run `pulumi stack select NAME` "
                 "in this project\n"),
    ("echo '{}'", "error: the selected stack has no outputs yet: it was never deployed "
                  "(`pulumi up`)\n"),
    ("echo 'error: getting secrets manager: passphrase must be set' >&2; exit 255",
     "error: pulumi stack output failed: error: getting secrets manager: passphrase must be "
     "set\n"),
])
def test_pulumi_failures_are_one_line_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             body: str, message: str) -> None:
    fake_pulumi(tmp_path, body, monkeypatch)
    code, out, err = run_main(["status"], environ={})
    assert (code, out, err) == (2, "", message)


def test_without_pulumi_on_path_the_error_says_how(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    code, _, err = run_main(["releases"], environ={})
    assert code == 2
    assert err == ("error: pulumi is not on PATH: install the Pulumi CLI "
                   "(https://www.pulumi.com/docs/install/) or give --outputs FILE (saved "
                   "`pulumi stack output --json`)\n")


def test_webstack_outputs_names_a_saved_file(tmp_path: Path) -> None:
    saved = tmp_path / "saved.json"
    saved.write_text(json.dumps(outputs()))
    transport = LoopTransport({f"{PROGRAM} --list": (0, "", "")})
    code, out, _ = run_main(["releases"], transport=transport,
                            environ={"WEBSTACK_OUTPUTS": str(saved)})
    assert (code, out) == (0, f"{IDS[0]}: 0 release(s)\n")
    code, _, err = run_main(["releases"], environ={"WEBSTACK_OUTPUTS": str(tmp_path / "x")})
    assert (code, err) == (2, f"error: outputs file {tmp_path / 'x'}: cannot read it (No such "
                              "file or directory)\n")


class NoAws:
    def client(self, *a: object, **k: object) -> None:
        raise AssertionError("no AWS call before the outputs are all there")


@pytest.mark.parametrize(("drop", "argv"), [
    ("appName", ["releases"]), ("region", ["status"]), ("runLogGroupName", ["run", "--", "ls"]),
    ("logGroupNames", ["logs"]), ("instanceIds", ["ssh"])])
def test_a_missing_output_is_exit_2_naming_it(tmp_path: Path, drop: str,
                                              argv: list[str]) -> None:
    code, _, err = call(argv, tmp_path, outputs(**{drop: None}), session=NoAws())
    name = "instanceIds' or 'autoScalingGroupName" if drop == "instanceIds" else drop
    assert (code, err) == (2, f"error: outputs file {tmp_path / 'outputs.json'}: no output "
                              f"'{name}': deploy this version of the project first "
                              "(`pulumi up`)\n")


def test_the_console_script_and_its_packages(tmp_path: Path) -> None:
    project = tomllib.loads((ops.PROJECT / "pyproject.toml").read_text())
    assert project["project"]["scripts"] == {"webstack": "deploy.ops:main"}
    listed = project["tool"]["setuptools"]["packages"]
    # every package of the installed folders is listed (setuptools installs only those)
    found = sorted(str(p.parent.relative_to(ops.PROJECT)).replace("/", ".")
                   for top in ("deploy", "components") for p in (ops.PROJECT / top).rglob(
                       "__init__.py"))
    assert sorted(listed) == found
    assert [str(p) for p in project["tool"]["setuptools"]["package-data"]["components"]
            ] == ["data/*"] and list((ops.PROJECT / "components/data").glob("*"))
    proc = subprocess.run([sys.executable, "-m", "deploy.ops", "--help"], cwd=ops.PROJECT,
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0 and proc.stdout.startswith("usage: webstack ")
    assert proc.stdout.rstrip().endswith(ops.EXIT_CODES)


def test_a_group_that_is_gone_or_empty(tmp_path: Path, stubbed: Stubbed) -> None:
    values = outputs(instanceIds=None, autoScalingGroupName="shop-web")
    for groups in ([], [{"AutoScalingGroupName": "shop-web", "MinSize": 0, "MaxSize": 2,
                         "DesiredCapacity": 0, "DefaultCooldown": 0,
                         "AvailabilityZones": ["us-east-1a"], "HealthCheckType": "EC2",
                         "CreatedTime": datetime(2026, 12, 1, tzinfo=UTC), "Instances": []}]):
        stubbed.stubs["autoscaling"].add_response("describe_auto_scaling_groups",
                                                  {"AutoScalingGroups": groups},
                                                  {"AutoScalingGroupNames": ["shop-web"]})
    code, _, err = call(["releases"], tmp_path, values, session=stubbed)
    assert (code, err) == (2, "error: the stack's Auto Scaling group shop-web (output "
                              "autoScalingGroupName) is not in us-east-1: is the stack's state "
                              "current (`pulumi refresh`)?\n")
    stubbed.stubs["sts"].add_response("get_caller_identity", {"Account": "123456789012"})
    code, _, err = call(["releases"], tmp_path, values, session=stubbed)
    assert (code, err) == (1, "FAILED: the stack has no InService server now (new ones deploy "
                              "the release pointer when they start)\n")


# --- run ---------------------------------------------------------------------------------------

RUN = f"{PROGRAM} --run -- python manage.py migrate --noinput"
RUN_ARGV = ["run", "--", "python", "manage.py", "migrate", "--noinput"]
STREAM = f"{CMD}/{IDS[0]}/aws-runShellScript"


def log_events(stub: Stubber, stream: str, messages: list[str] | None, token: str = "",
               new_token: str = "") -> None:
    """One GetLogEvents answer: `messages`, or the stream not there yet (None)."""
    params: dict[str, Any] = {"logGroupName": f"{BASE}/run", "logStreamName": stream,
                              "startFromHead": True}
    if token:
        params["nextToken"] = token
    if messages is None:
        stub.add_client_error("get_log_events", "ResourceNotFoundException",
                              expected_params=params)
        return
    stub.add_response("get_log_events", {
        "events": [{"timestamp": 1, "message": m} for m in messages],
        "nextForwardToken": new_token or token or "f/0"}, params)


def test_run_sends_the_release_program_s_run_and_streams_its_output(
        tmp_path: Path, stubbed: Stubbed) -> None:
    ssm, logs = stubbed.stubs["ssm"], stubbed.stubs["logs"]
    stubbed.online((IDS[0], "Online"))
    ssm.add_response("send_command", {"Command": {"CommandId": CMD}}, {
        "InstanceIds": [IDS[0]], "DocumentName": "AWS-RunShellScript",
        "Comment": "webstack run python manage.py migrate --noinput",
        "TimeoutSeconds": 3600, "Parameters": {"commands": [RUN],
                                               "executionTimeout": ["3600"]},
        "CloudWatchOutputConfig": {"CloudWatchLogGroupName": f"{BASE}/run",
                                   "CloudWatchOutputEnabled": True}})
    for status in ("InProgress", "InProgress"):
        ssm.add_response("get_command_invocation", {"Status": status},
                         {"CommandId": CMD, "InstanceId": IDS[0]})
    ssm.add_response("get_command_invocation", {
        "Status": "Failed", "ResponseCode": 3, "StandardOutputContent": "Applying 0001\n"
        "Applying 0002\n", "StandardErrorContent": "boom\n"},
        {"CommandId": CMD, "InstanceId": IDS[0]})
    # first poll: nothing in CloudWatch yet; second: a line; after the end: the rest
    log_events(logs, f"{STREAM}/stdout", None)
    log_events(logs, f"{STREAM}/stderr", None)
    log_events(logs, f"{STREAM}/stdout", ["Applying 0001"], new_token="f/1")
    log_events(logs, f"{STREAM}/stdout", [], token="f/1")
    log_events(logs, f"{STREAM}/stderr", None)
    log_events(logs, f"{STREAM}/stdout", ["Applying 0002"], token="f/1", new_token="f/2")
    log_events(logs, f"{STREAM}/stdout", [], token="f/2")
    log_events(logs, f"{STREAM}/stderr", ["boom"], new_token="e/1")
    log_events(logs, f"{STREAM}/stderr", [], token="e/1")
    fake = FakeTime()
    code, out, err = call(RUN_ARGV, tmp_path, session=stubbed, clock=fake.clock)
    assert code == 3  # the command's own exit code
    assert out == "Applying 0001\nApplying 0002\n"  # CloudWatch's, not SSM's copy again
    assert err == f"run: {IDS[0]}: the command (command {CMD})\nboom\n"
    assert fake.sleeps == [3.0, 3.0]


def test_run_prints_ssm_s_copy_when_cloudwatch_has_nothing(tmp_path: Path,
                                                           stubbed: Stubbed) -> None:
    stubbed.online((IDS[0], "Online"))
    big = "x" * 23_999 + "\n"
    stubbed.command(IDS[0], RUN, "Success", stdout=big, CloudWatchOutputConfig=ANY)
    for _ in range(ops.FINAL_READS):
        for kind in ("stdout", "stderr"):
            log_events(stubbed.stubs["logs"], f"{STREAM}/{kind}", None)
    code, out, err = call(RUN_ARGV, tmp_path, session=stubbed, clock=FakeTime().clock)
    assert (code, out) == (0, big)
    assert err.endswith(f"webstack: the output was cut at SSM's 24,000 characters and "
                        f"CloudWatch log group {BASE}/run has none of it\n")


def test_run_on_a_server_ssm_does_not_manage_is_exit_2(tmp_path: Path,
                                                       stubbed: Stubbed) -> None:
    stubbed.online((IDS[0], ""))
    code, _, err = call(RUN_ARGV, tmp_path, session=stubbed)
    assert (code, err) == (2, f"error: {IDS[0]} is not managed by SSM (agent not running or no "
                              "instance role): Systems Manager has never heard from it\n")


def test_run_on_another_server_than_the_stack_s_is_exit_2(tmp_path: Path) -> None:
    code, _, err = call(["run", "--instance", IDS[1], "--", "true"], tmp_path,
                        transport=LoopTransport({}))
    assert (code, err) == (2, f"error: --instance '{IDS[1]}': not one of the stack's servers "
                              f"({IDS[0]})\n")


# --- status ------------------------------------------------------------------------------------

def fleet_outputs(url: str) -> dict[str, Any]:
    return outputs(instanceIds=None, autoScalingGroupName="shop-web", targetGroupArn=TG,
                   healthCheckCommand=f"python -m deploy.readiness_check --url {url}")


def stub_group(stubbed: Stubbed) -> None:
    """The stack's Auto Scaling group, its servers InService (listed out of order)."""
    stubbed.stubs["autoscaling"].add_response("describe_auto_scaling_groups", {
        "AutoScalingGroups": [{
            "AutoScalingGroupName": "shop-web", "MinSize": 2, "MaxSize": 2,
            "DesiredCapacity": 2, "DefaultCooldown": 0, "AvailabilityZones": ["us-east-1a"],
            "HealthCheckType": "ELB", "CreatedTime": datetime(2026, 12, 1, tzinfo=UTC),
            "Instances": [{"InstanceId": i, "LifecycleState": "InService",
                           "AvailabilityZone": "us-east-1a", "HealthStatus": "Healthy",
                           "ProtectedFromScaleIn": False} for i in reversed(IDS)]}]},
        {"AutoScalingGroupNames": ["shop-web"]})


def target_health(stubbed: Stubbed, health: dict[str, str]) -> None:
    stubbed.stubs["elbv2"].add_response("describe_target_health", {"TargetHealthDescriptions": [
        {"Target": {"Id": i}, "TargetHealth": {"State": s}} for i, s in health.items()]},
        {"TargetGroupArn": TG, "Targets": [{"Id": i} for i in health]})


def stub_fleet(stubbed: Stubbed, pings: list[tuple[str, str]], health: list[str]) -> None:
    stub_group(stubbed)
    stubbed.stubs["ec2"].add_response("describe_instances", {"Reservations": [{"Instances": [
        {"InstanceId": i, "State": {"Name": "running", "Code": 16}} for i in IDS]}]},
        {"InstanceIds": IDS})
    stubbed.online(*pings)
    target_health(stubbed, dict(zip(IDS, health, strict=True)))


def test_status_of_a_healthy_fleet_is_exit_0(tmp_path: Path, stubbed: Stubbed) -> None:
    site = Site({"/healthz": [(200, b"ok", {})]})
    try:
        stub_fleet(stubbed, [(i, "Online") for i in IDS], ["healthy", "healthy"])
        for iid in IDS:
            stubbed.command(iid, f"{PROGRAM} --list", "Success", stdout=LISTED)
        code, out, err = call(["status"], tmp_path, fleet_outputs(site.url + "healthz"),
                              session=stubbed, clock=FakeTime().clock)
    finally:
        site.close()
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        *(f"ok  {i}: EC2 running, SSM Online, target healthy, release 9f3c2a1b7e44 "
          f"({B['ref']})" for i in IDS),
        f"ok  {site.url}healthz: HTTP 200 OK"]


def test_status_names_what_is_unhealthy_and_exits_1(tmp_path: Path, stubbed: Stubbed) -> None:
    site = Site({"/healthz": [(503, b"down", {})]})
    try:
        stub_fleet(stubbed, [(IDS[0], "Online"), (IDS[1], "")], ["healthy", "unhealthy"])
        stubbed.command(IDS[0], f"{PROGRAM} --list", "Success", stdout=json.dumps(A) + "\n")
        code, out, _ = call(["status"], tmp_path, fleet_outputs(site.url + "healthz"),
                            session=stubbed, clock=FakeTime().clock)
    finally:
        site.close()
    assert code == 1
    assert out.splitlines() == [
        f"BAD {IDS[0]}: EC2 running, SSM Online, target healthy, no release serving",
        f"BAD {IDS[1]}: EC2 running, SSM: not managed (agent not running or no instance "
        "role), target unhealthy, release not read (no SSM)",
        f"BAD {site.url}healthz: HTTP 503 Service Unavailable"]


# --- rollback (the loopback test runs it for real: tests/release/test_ops_cli.py) --------------

def test_rollback_waits_for_each_target_and_stops_at_the_first_failure(
        tmp_path: Path, stubbed: Stubbed) -> None:
    stub_group(stubbed)
    stubbed.online(*((i, "Online") for i in IDS))
    stubbed.command(IDS[0], f"{PROGRAM} --rollback", "Success",
                    stdout=f"release: serving {A['ref']} ({A['id']}) as /srv/shop/releases/x\n")
    target_health(stubbed, {IDS[0]: "healthy"})
    stubbed.command(IDS[1], f"{PROGRAM} --rollback", "Failed", code=1,
                    stderr=f"release: FAILED: no release to roll back to (only {B['id']} is "
                           "kept)\n")
    code, out, err = call(["rollback"], tmp_path, fleet_outputs("http://unused"),
                          session=stubbed, clock=FakeTime().clock)
    assert code == 1
    assert out.splitlines()[-2:] == [f"rollback: server 2/2: {IDS[1]}",
                                     f"rollback: {IDS[1]}: the rollback (command {CMD})"]
    assert f"rollback: {IDS[0]}: healthy in the target group" in out
    assert err == (f"FAILED: rollback stopped at server 2/2, {IDS[1]}: the rollback ended "
                   f"Failed (exit 1): release: FAILED: no release to roll back to (only "
                   f"{B['id']} is kept). Rolled back: {IDS[0]}.\n")


# --- ssh ---------------------------------------------------------------------------------------

FAKE_PLUGIN = """#!/bin/sh
if [ "$1" = --version ]; then echo {version}; exit 0; fi
printf '%s\\n' "$@" > "{record}"
printf '%s' "${{AWS_SSM_START_SESSION_RESPONSE:-}}" > "{record}.env"
exit 7
"""


@pytest.mark.parametrize("version", ["1.2.650.0", "1.2.497.0"])
def test_ssh_starts_the_session_and_hands_it_to_the_plugin(
        tmp_path: Path, stubbed: Stubbed, monkeypatch: pytest.MonkeyPatch, version: str) -> None:
    record = tmp_path / "plugin-argv"
    (tmp_path / "session-manager-plugin").write_text(
        FAKE_PLUGIN.format(version=version, record=record))
    (tmp_path / "session-manager-plugin").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    stubbed.online((IDS[0], "Online"))
    answer = {"SessionId": "me-0123", "StreamUrl": "wss://ssmmessages.us-east-1.amazonaws.com/x",
              "TokenValue": "t0k3n"}
    stubbed.stubs["ssm"].add_response("start_session", answer, {"Target": IDS[0]})
    code, _, err = call(["--profile", "ops", "ssh"], tmp_path, session=stubbed)
    assert (code, err) == (7, "")  # the plugin's exit code
    argv = record.read_text().splitlines()
    passed = record.with_suffix(".env").read_text()
    if version == "1.2.650.0":  # reads the answer (its token) from the environment
        assert (argv[0], json.loads(passed)) == ("AWS_SSM_START_SESSION_RESPONSE", answer)
    else:
        assert (json.loads(argv[0]), passed) == (answer, "")
    assert argv[1:] == ["us-east-1", "StartSession", "ops", json.dumps({"Target": IDS[0]}),
                        "https://ssm.us-east-1.amazonaws.com"]


def test_ssh_without_the_plugin_says_where_to_get_it(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    code, _, err = call(["ssh"], tmp_path)
    assert (code, err) == (2, "error: session-manager-plugin is not on PATH: install the "
                              f"Session Manager plugin ({ops.PLUGIN_INSTALL})\n")


# --- logs: moto --------------------------------------------------------------------------------

def test_since_takes_a_number_and_a_unit() -> None:
    assert [ops_logs.since_seconds(s) for s in ("30s", "10m", "2h", "1d")] == [
        30, 600, 7200, 86400]
    for bad in ("10", "0m", "1w", "-5m", "m"):
        with pytest.raises(ops.UsageError, match=r"--since .*30s, 10m, 2h or 1d"):
            ops_logs.since_seconds(bad)


@pytest.fixture
def log_groups(aws_env: str) -> Any:
    """The stack's four groups on moto, each with a stream per server."""
    logs = boto3.client("logs")
    suffix = os.urandom(4).hex()
    names = [f"/webstack/{suffix}/shop/{k}" for k in ("nginx-access", "nginx-error", "app",
                                                      "cloud-init", "run")]
    for name in names:
        logs.create_log_group(logGroupName=name)
        for iid in IDS:
            logs.create_log_stream(logGroupName=name, logStreamName=iid)
    return logs, names


def put(logs: Any, group: str, stream: str, *events: tuple[int, str]) -> None:
    logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=[
        {"timestamp": t, "message": m} for t, m in events])


def stamp(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"


@pytest.mark.aws
def test_logs_are_merged_by_time_across_servers_and_groups(tmp_path: Path,
                                                           log_groups: Any) -> None:
    logs, names = log_groups
    now = int(time.time() * 1000)
    old = now - 3_600_000  # before --since
    put(logs, names[2], IDS[0], (old, "too old"), (now - 5000, "app one"),
        (now - 3000, "app three"))
    put(logs, names[2], IDS[1], (now - 4000, "app two"))
    put(logs, names[0], IDS[1], (now - 3500, "GET / 200"))
    put(logs, names[1], IDS[0], (now - 2000, "upstream timed out"))
    put(logs, names[4], IDS[0], (now - 2500, "a command's output"))  # `run` shows it, not logs
    values = outputs(logGroupNames=names)
    code, out, err = call(["logs", "--since", "10m"], tmp_path, values)
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        f"{stamp(now - 5000)} {IDS[0]} app app one",
        f"{stamp(now - 4000)} {IDS[1]} app app two",
        f"{stamp(now - 3500)} {IDS[1]} nginx-access GET / 200",
        f"{stamp(now - 3000)} {IDS[0]} app app three",
        f"{stamp(now - 2000)} {IDS[0]} nginx-error upstream timed out"]
    code, out, _ = call(["logs", "nginx"], tmp_path, values)
    assert [line.split(" ", 2)[2] for line in out.splitlines()] == [
        "nginx-access GET / 200", "nginx-error upstream timed out"]


@pytest.mark.aws
def test_logs_read_every_page(tmp_path: Path, log_groups: Any) -> None:
    logs, names = log_groups
    now = int(time.time() * 1000)
    put(logs, names[3], IDS[0], *((now - 20_000 + i, f"line {i}") for i in range(10_050)))
    code, out, _ = call(["logs", "cloud-init"], tmp_path, outputs(logGroupNames=names))
    lines = out.splitlines()
    assert code == 0 and len(lines) == 10_050  # moto pages FilterLogEvents by 10,000
    assert lines[-1].endswith("cloud-init line 10049")


@pytest.mark.aws
def test_logs_follow_prints_new_events_once_until_ctrl_c(tmp_path: Path,
                                                         log_groups: Any) -> None:
    logs, names = log_groups
    now = int(time.time() * 1000)
    put(logs, names[2], IDS[0], (now - 1000, "first"))
    later = iter([[(IDS[1], now, "second")], [], [(IDS[0], now + 1, "third")]])

    def arrive() -> None:
        for stream, t, message in next(later, []):
            put(logs, names[2], stream, (t, message))

    fake = FakeTime(wake_ups=4, on_sleep=arrive)
    code, out, err = call(["logs", "--follow", "app"], tmp_path,
                          outputs(logGroupNames=names), clock=fake.clock)
    assert (code, err) == (0, "")  # Ctrl-C ends it normally
    assert [line.split(" ", 3)[3] for line in out.splitlines()] == ["first", "second", "third"]
    # back off while nothing comes, back to the shortest delay when something does
    assert fake.sleeps == [2.0, 2.0, 4.0, 2.0, 4.0]


def test_a_bad_since_or_a_group_missing_is_exit_2(tmp_path: Path) -> None:
    code, out, err = call(["logs", "--since", "ten"], tmp_path)
    assert (code, out) == (2, "")
    assert err == ("error: --since 'ten': expected a number and a unit: 30s, 10m, 2h or 1d\n")
    code, _, err = call(["logs", "nginx"], tmp_path, outputs(logGroupNames=[f"{BASE}/app"]))
    assert (code, err) == (2, "error: the stack's logGroupNames has no nginx-access, "
                              f"nginx-error group ({BASE}/app)\n")


@pytest.mark.aws
def test_no_credentials_is_exit_2(tmp_path: Path, aws_env: str,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    code, _, err = call(["logs"], tmp_path)
    assert code == 2
    assert err.startswith("error: AWS credentials check (sts get-caller-identity): no usable "
                          "AWS credentials") and err.count("\n") == 1
