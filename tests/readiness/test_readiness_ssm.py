"""The SSM Run Command path, which moto lacks (no DescribeInstanceInformation, no agent): botocore
Stubbers answer as AWS does, and the probe output is what the real script prints on a stand-in
server. Also the ssh-style transport: the same script fed to `sh -s`."""

from __future__ import annotations

import base64
import subprocess
from typing import Any

import boto3.session
import pytest
from botocore.stub import Stubber

from deploy.cloudinit_status import PROBE_SCRIPT
from deploy.readiness_check import InstanceCheck, probe_command
from tests.readiness.harness import DATA, FakeServer

IID = "i-0a1b2c3d4e5f60718"
REGION = "eu-west-1"
COMMAND_ID = "9c0d2f6e-3b1a-4c55-8d7e-2a9f6b1c0e44"


@pytest.fixture
def stubbed(monkeypatch: pytest.MonkeyPatch) -> Any:
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)
    session = boto3.session.Session(region_name=REGION)
    ec2, ssm = session.client("ec2"), session.client("ssm")
    with Stubber(ec2) as ec2_stub, Stubber(ssm) as ssm_stub:
        yield ec2, ssm, ec2_stub, ssm_stub
        ec2_stub.assert_no_pending_responses()
        ssm_stub.assert_no_pending_responses()


def running(ec2_stub: Stubber) -> None:
    ec2_stub.add_response("describe_instances", {"Reservations": [{"Instances": [
        {"InstanceId": IID, "State": {"Code": 16, "Name": "running"}}]}]},
        {"InstanceIds": [IID]})


def registered(ssm_stub: Stubber, ping: str | None) -> None:
    agents = [{"InstanceId": IID, "PingStatus": ping, "PlatformType": "Linux",
               "AgentVersion": "3.3.1142.0"}] if ping else []
    ssm_stub.add_response("describe_instance_information", {"InstanceInformationList": agents},
                          {"Filters": [{"Key": "InstanceIds", "Values": [IID]}]})


def console(ec2_stub: Stubber, fixture: str) -> None:
    text = (DATA / fixture).read_text()
    ec2_stub.add_response("get_console_output", {
        "InstanceId": IID, "Output": base64.b64encode(text.encode()).decode()},
        {"InstanceId": IID, "Latest": True})


def test_ssm_probe_reports_a_failed_boot(stubbed: Any, fake_server: FakeServer) -> None:
    ec2, ssm, ec2_stub, ssm_stub = stubbed
    fake_server.boot("status-24.4-error.txt", 1, log=(DATA / "cloud-init-22.4.log").read_text(),
                     output="webstack-setup: installing requirements\nERROR: pip failed\n")
    running(ec2_stub)
    registered(ssm_stub, "Online")
    ssm_stub.add_response("send_command", {"Command": {"CommandId": COMMAND_ID}}, {
        "InstanceIds": [IID], "DocumentName": "AWS-RunShellScript",
        "Parameters": {"commands": [PROBE_SCRIPT]}, "TimeoutSeconds": 60,
        "Comment": "webstack readiness probe"})
    ask = {"CommandId": COMMAND_ID, "InstanceId": IID}
    ssm_stub.add_client_error("get_command_invocation", "InvocationDoesNotExist",
                              expected_params=ask)
    ssm_stub.add_response("get_command_invocation", {"Status": "InProgress"}, ask)
    ssm_stub.add_response("get_command_invocation", {
        "Status": "Success", "ResponseCode": 0,
        "StandardOutputContent": fake_server.probe_stdout()}, ask)

    poll = InstanceCheck(ec2, ssm, IID, REGION, ssm_poll=0).poll()
    assert (poll.state, poll.line) == ("failed", "cloud-init: error")
    assert poll.details[:3] == [
        "cloud-init: error (read from the SSM Run Command)",
        "failing module(s): scripts_user, package-update-upgrade-install",
        "error: ('scripts_user', RuntimeError('Runparts: 1 failures (runcmd) in 1 attempted "
        "commands'))"]
    assert poll.details[-3:] == ["last 2 lines of /var/log/cloud-init-output.log:",
                                 "  | webstack-setup: installing requirements",
                                 "  | ERROR: pip failed"]


def test_without_the_agent_the_console_is_read(stubbed: Any) -> None:
    ec2, ssm, ec2_stub, ssm_stub = stubbed
    running(ec2_stub)
    registered(ssm_stub, None)  # Debian's AMIs: no agent, never registered
    console(ec2_stub, "console-debian12-running.txt")
    poll = InstanceCheck(ec2, ssm, IID, REGION).poll()
    assert (poll.state, poll.line) == ("waiting", "cloud-init: running (modules:final)")


def test_ssm_denied_falls_back_to_the_console_for_good(stubbed: Any) -> None:
    ec2, ssm, ec2_stub, ssm_stub = stubbed
    check = InstanceCheck(ec2, ssm, IID, REGION)
    running(ec2_stub)
    ssm_stub.add_client_error("describe_instance_information", "AccessDeniedException",
                              "not authorized to perform: ssm:DescribeInstanceInformation")
    console(ec2_stub, "console-debian12-running.txt")
    assert check.poll().state == "waiting"
    running(ec2_stub)  # the second look asks SSM nothing: no second note below
    console(ec2_stub, "console-debian12-failed.txt")
    poll = check.poll()
    assert poll.state == "failed"
    assert poll.details[:3] == [
        "SSM not usable (AccessDeniedException: not authorized to perform: "
        "ssm:DescribeInstanceInformation): read the console",
        "cloud-init: error (read from the EC2 console output)",
        "failing module(s): scripts_user"]


def test_console_without_latest_on_older_instance_types(stubbed: Any) -> None:
    ec2, ssm, ec2_stub, ssm_stub = stubbed
    running(ec2_stub)
    registered(ssm_stub, "ConnectionLost")
    ec2_stub.add_client_error("get_console_output", "UnsupportedOperation",
                              "Latest is only supported on Nitro instances")
    text = (DATA / "console-debian12-done.txt").read_text()
    ec2_stub.add_response("get_console_output", {
        "InstanceId": IID, "Output": base64.b64encode(text.encode()).decode()},
        {"InstanceId": IID})
    assert InstanceCheck(ec2, ssm, IID, REGION).poll().state == "ready"


def test_probe_over_a_command_that_runs_sh(fake_server: FakeServer,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """What an ssh transport does (`ssh ... 'sh -s' < script`), with the ssh left out."""
    for name, value in fake_server.env.items():
        monkeypatch.setenv(name, value)
    fake_server.boot("status-22.4-running.txt", 0, stage="modules-final",
                     output="webstack-setup: fetching the app\n")
    ci = probe_command(["sh", "-s"])
    assert (ci.summary(), ci.source, ci.tail) == (
        "running (modules:final)", "ssh", ("webstack-setup: fetching the app",))


def test_probe_command_that_cannot_connect() -> None:
    with pytest.raises(OSError, match=r"sh exited with 255: ssh: connect to host .* refused"):
        probe_command(["sh", "-c", "cat >/dev/null; echo 'ssh: connect to host 10.0.0.5 "
                       "port 22: Connection refused' >&2; exit 255"])
    with pytest.raises(subprocess.TimeoutExpired):
        probe_command(["sleep", "5"], timeout=0.5)
