"""The rollout CLI: against moto where moto is faithful (Auto Scaling groups, target health,
the commands Run Command received), and botocore's Stubber for what moto cannot produce (a
release that fails or never finishes on a server, AWS errors)."""

from __future__ import annotations

import io
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import boto3.session
import pytest
from botocore.stub import ANY, Stubber

from deploy import rollout
from deploy.cli import Clock
from deploy.rollout import main, release_command


@dataclass
class FakeTime:
    """A clock that only moves when the code under test sleeps."""

    t: float = 1000.0
    sleeps: list[float] = field(default_factory=list)

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds

    @property
    def clock(self) -> Clock:
        return Clock(now=self.now, sleep=self.sleep)


def call(argv: list[str], **kwargs: Any) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(argv, out=out, err=err, **kwargs)
    return code, out.getvalue(), err.getvalue()


def test_the_command_quotes_the_ref_as_one_word() -> None:
    assert release_command("shop", "v1.2") == "/usr/local/lib/webstack/shop/release v1.2"
    assert release_command("shop", "feat/$(x)") == (
        "/usr/local/lib/webstack/shop/release 'feat/$(x)'")


# --- usage (exit 2, one line, no AWS call) ----------------------------------------------------

BASE = ["--region", "us-east-1", "--app", "shop", "--ref", "v2"]


@pytest.mark.parametrize(("argv", "message"), [
    (BASE, "either as --instance-id (repeatable) or as --asg-name"),
    ([*BASE, "--instance-id", "i-0123456789abcdef0", "--asg-name", "g"], "not both"),
    ([*BASE, "--instance-id", "web-1"], "--instance-id 'web-1': expected an EC2 instance id"),
    (["--region", "us-east-1", "--app", "Shop!", "--ref", "v2", "--asg-name", "g"],
     "--app 'Shop!': expected an app name"),
    (["--region", "us-east-1", "--app", "shop", "--ref=--upload-pack=x", "--asg-name", "g"],
     "--ref '--upload-pack=x': expected a git tag"),
    (["--region", "us-east-1", "--app", "shop", "--ref", "a b", "--asg-name", "g"],
     "--ref 'a b'"),
    (["--region", "moon-1", "--app", "shop", "--ref", "v2", "--asg-name", "g"],
     "unknown region 'moon-1'"),
    # an image by tag: servers run images by digest only
    (["--region", "us-east-1", "--app", "shop", "--ref", "ghcr.io/acme/shop:1", "--asg-name",
      "g"], "or an image by digest (host/name@sha256:<64 hex>)"),
    ([*BASE, "--asg-name", "g", "--timeout", "0"], "--timeout must be a positive"),
])
def test_usage_errors_exit_2_with_one_line(argv: list[str], message: str) -> None:
    class NoAws:
        def client(self, *a: object, **k: object) -> None:
            raise AssertionError("no AWS call on a usage error")

    code, out, err = call(argv, session=NoAws())
    assert code == 2, err
    assert message in err and err.count("\n") == 1 and err.startswith("error: ")
    assert out == ""


def test_missing_arguments_exit_2() -> None:
    code, _, _ = call(["--region", "us-east-1"])
    assert code == 2


# --- moto ---------------------------------------------------------------------------------------

@dataclass
class Fleet:
    group: str
    instances: list[str]
    target_group_arn: str
    session: boto3.session.Session
    sent: list[dict[str, Any]]  # SendCommand parameters, in order (moto's ListCommands
    # mixes up InstanceIds between commands, so the client records what it sent)


@pytest.fixture
def fleet(aws_env: str) -> Fleet:
    ec2 = boto3.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.7.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.7.1.0/24",
                               AvailabilityZone="us-east-1a")["Subnet"]["SubnetId"]
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    name = f"web-{uuid.uuid4().hex[:8]}"
    ec2.create_launch_template(LaunchTemplateName=name, LaunchTemplateData={
        "ImageId": image, "InstanceType": "t3.micro"})
    autoscaling = boto3.client("autoscaling")
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName=name, MinSize=3, MaxSize=3, DesiredCapacity=3,
        LaunchTemplate={"LaunchTemplateName": name}, VPCZoneIdentifier=subnet)
    group = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[name])
    instances = [i["InstanceId"] for i in group["AutoScalingGroups"][0]["Instances"]]
    elbv2 = boto3.client("elbv2")
    tg = elbv2.create_target_group(Name=name, Protocol="HTTP", Port=80, VpcId=vpc,
                                   TargetType="instance")["TargetGroups"][0]["TargetGroupArn"]
    elbv2.register_targets(TargetGroupArn=tg, Targets=[{"Id": i} for i in instances])
    session = boto3.session.Session(region_name="us-east-1")
    recorded: list[dict[str, Any]] = []
    session.events.register("provide-client-params.ssm.SendCommand",
                            lambda params, **_: recorded.append(dict(params)))
    return Fleet(name, instances, tg, session, recorded)


def sent(fleet: Fleet, ref: str) -> list[tuple[list[str], list[str]]]:
    """(instance ids, commands) of every Run Command that released `ref`, oldest first."""
    return [(c["InstanceIds"], c["Parameters"]["commands"]) for c in fleet.sent
            if c["Comment"] == f"webstack release {ref}"]


@pytest.mark.aws
def test_asg_rollout_releases_on_each_in_service_server_in_order(fleet: Fleet) -> None:
    ref = f"v-{uuid.uuid4().hex[:6]}"
    code, out, err = call(["--region", "us-east-1", "--app", "shop", "--ref", ref,
                           "--asg-name", fleet.group, "--target-group-arn",
                           fleet.target_group_arn, "--name", "shop-prod"],
                          session=fleet.session)
    assert (code, err) == (0, "")
    order = sorted(fleet.instances)
    assert sent(fleet, ref) == [([i], [f"/usr/local/lib/webstack/shop/release {ref}"])
                                for i in order]
    for n, iid in enumerate(order, 1):
        assert f"rollout shop-prod: server {n}/3: {iid}" in out
        assert f"rollout shop-prod: {iid}: healthy in the target group" in out
    assert out.splitlines()[-1].startswith(f"rollout shop-prod: 3 server(s) serve {ref} (")


@pytest.mark.aws
def test_an_image_by_digest_is_released_as_one_word(fleet: Fleet) -> None:
    ref = f"ghcr.io/acme/shop@sha256:{uuid.uuid4().hex * 2}"
    code, _, err = call(["--region", "us-east-1", "--app", "shop", "--ref", ref,
                         "--asg-name", fleet.group, "--target-group-arn", fleet.target_group_arn],
                        session=fleet.session)
    assert (code, err) == (0, "")
    commands = [c["Parameters"]["commands"] for c in fleet.sent
                if c["Comment"] == f"webstack release {ref}"[:100]]
    assert commands == [[f"/usr/local/lib/webstack/shop/release {ref}"]] * 3


@pytest.mark.aws
def test_a_server_that_never_gets_healthy_stops_the_rollout(fleet: Fleet) -> None:
    boto3.client("elbv2").deregister_targets(TargetGroupArn=fleet.target_group_arn,
                                             Targets=[{"Id": fleet.instances[0]}])
    ref = f"v-{uuid.uuid4().hex[:6]}"
    first, second = fleet.instances[0], fleet.instances[1]
    fake = FakeTime()
    code, _, err = call(["--region", "us-east-1", "--app", "shop", "--ref", ref,
                         "--instance-id", first, "--instance-id", second,
                         "--target-group-arn", fleet.target_group_arn, "--timeout", "120"],
                        clock=fake.clock, session=fleet.session)
    assert code == 1
    assert err.startswith(f"FAILED: rollout of {ref} stopped at server 1/2, {first}: "
                          "released, but not healthy in the target group within --timeout "
                          "(last: unused (Target.NotRegistered")
    assert f"Not attempted: {second}." in err
    assert [ids for ids, _ in sent(fleet, ref)] == [[first]]
    assert fake.t - 1000.0 >= 120  # it waited the whole --timeout, in polls
    assert max(fake.sleeps) <= rollout.POLL_SECONDS


@pytest.mark.aws
def test_an_empty_group_has_nothing_to_roll_out(aws_env: str) -> None:
    autoscaling = boto3.client("autoscaling")
    ec2 = boto3.client("ec2")
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    name = f"empty-{uuid.uuid4().hex[:8]}"
    ec2.create_launch_template(LaunchTemplateName=name, LaunchTemplateData={
        "ImageId": image, "InstanceType": "t3.micro"})
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName=name, MinSize=0, MaxSize=2, DesiredCapacity=0,
        LaunchTemplate={"LaunchTemplateName": name}, AvailabilityZones=["us-east-1a"])
    code, out, err = call([*BASE, "--asg-name", name])
    assert (code, err) == (0, "")
    assert "has no InService server: nothing to roll out" in out


@pytest.mark.aws
def test_an_unknown_group_is_a_usage_error(aws_env: str) -> None:
    code, _, err = call([*BASE, "--asg-name", "no-such-group"])
    assert code == 2
    assert err == "error: --asg-name 'no-such-group': no such Auto Scaling group in us-east-1\n"


@pytest.mark.aws
def test_an_unreachable_endpoint_is_one_line_exit_2(monkeypatch: pytest.MonkeyPatch,
                                                     aws_env: str) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens once the socket closes
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    code, _, err = call([*BASE, "--asg-name", "g"])
    assert code == 2
    assert err.startswith("error: AWS credentials check (sts get-caller-identity): cannot "
                          "reach the AWS endpoint") and err.count("\n") == 1


# --- Stubber: what moto cannot produce ---------------------------------------------------------

class Stubbed:
    """A session whose clients answer from Stubber queues."""

    def __init__(self, sts_error: str = "") -> None:
        kwargs: dict[str, Any] = {"region_name": "us-east-1", "aws_access_key_id": "k",
                                  "aws_secret_access_key": "s"}
        self.clients = {name: boto3.client(name, **kwargs)  # type: ignore[call-overload]
                        for name in ("sts", "ssm", "elbv2", "autoscaling")}
        self.stubs = {name: Stubber(c) for name, c in self.clients.items()}
        for stub in self.stubs.values():
            stub.activate()
        if sts_error:
            self.stubs["sts"].add_client_error("get_caller_identity", sts_error,
                                               "The security token included in the request "
                                               "is invalid.")
        else:
            self.stubs["sts"].add_response("get_caller_identity", {"Account": "123456789012"})

    def client(self, name: str, config: object = None) -> Any:
        return self.clients[name]

    def sent(self, iid: str, command_id: str, ref: str = "v2") -> None:
        self.stubs["ssm"].add_response(
            "send_command", {"Command": {"CommandId": command_id}},
            {"InstanceIds": [iid], "DocumentName": "AWS-RunShellScript",
             "Comment": f"webstack release {ref}", "TimeoutSeconds": ANY,
             "Parameters": {"commands": [f"/usr/local/lib/webstack/shop/release {ref}"],
                            "executionTimeout": ANY}})

    def invocation(self, iid: str, command_id: str, status: str, stdout: str = "",
                   stderr: str = "", code: int = 0) -> None:
        self.stubs["ssm"].add_response(
            "get_command_invocation",
            {"CommandId": command_id, "InstanceId": iid, "Status": status,
             "ResponseCode": code, "StandardOutputContent": stdout,
             "StandardErrorContent": stderr},
            {"CommandId": command_id, "InstanceId": iid})

    def done(self) -> None:
        for stub in self.stubs.values():
            stub.assert_no_pending_responses()


@pytest.fixture
def stubbed() -> Iterator[Stubbed]:
    session = Stubbed()
    yield session
    session.done()


IDS = ["i-0aaaaaaaaaaaaaaa1", "i-0aaaaaaaaaaaaaaa2", "i-0aaaaaaaaaaaaaaa3"]
C1, C2 = "11111111-2222-3333-4444-555555555555", "21111111-2222-3333-4444-555555555555"
SERVER_FAILURE = ("release: checking /healthz on 9f3c2a1b7e44 before it takes traffic\n"
                  "release: FAILED: release v2 (9f3c2a1b7e44): its health check failed before "
                  "it took traffic: GET /healthz answered 500: 'database unreachable'. Rolled "
                  "back to 1a2b3c4d5e6f, which kept serving throughout (nothing was switched)\n")


def test_the_first_failure_stops_the_rollout_and_quotes_the_servers_reason(
        stubbed: Stubbed) -> None:
    stubbed.sent(IDS[0], C1)
    stubbed.invocation(IDS[0], C1, "InProgress")
    stubbed.invocation(IDS[0], C1, "Success",
                       stdout="release: fetching v2\nrelease: serving v2 (9f3c2a1b7e44) as "
                              "/srv/shop/releases/9f3c2a1b7e44\n")
    stubbed.sent(IDS[1], C2)
    stubbed.invocation(IDS[1], C2, "Failed", stderr=SERVER_FAILURE, code=1)
    fake = FakeTime()
    code, out, err = call(["--region", "us-east-1", "--app", "shop", "--ref", "v2",
                           *(x for i in IDS for x in ("--instance-id", i))],
                          session=stubbed, clock=fake.clock)
    assert code == 1
    assert f"{IDS[0]}: release: serving v2 (9f3c2a1b7e44) as /srv/shop" in out
    assert err.count("\n") == 1
    assert err.startswith(f"FAILED: rollout of v2 stopped at server 2/3, {IDS[1]}: the release "
                          "of v2 ended Failed (exit 1): release: checking /healthz")
    assert "GET /healthz answered 500: 'database unreachable'. Rolled back to 1a2b3c4d5e6f" in err
    assert f"Already serving v2: {IDS[0]}. Not attempted: {IDS[2]}." in err
    assert fake.sleeps == [rollout.POLL_SECONDS]  # polled once while InProgress
    # (the fixture checks no call was left unmade, and none was made for IDS[2])


def test_a_release_that_does_not_finish_in_time_is_cancelled(stubbed: Stubbed) -> None:
    stubbed.sent(IDS[0], C1)
    stubbed.stubs["ssm"].add_client_error("get_command_invocation", "InvocationDoesNotExist")
    for _ in range(20):
        stubbed.invocation(IDS[0], C1, "InProgress")
    stubbed.stubs["ssm"].add_response("cancel_command", {},
                                      {"CommandId": C1, "InstanceIds": [IDS[0]]})
    fake = FakeTime()
    code, _, err = call([*BASE, "--instance-id", IDS[0], "--timeout", "60"], session=stubbed,
                        clock=fake.clock)
    assert code == 1
    assert err == (f"FAILED: rollout of v2 stopped at server 1/1, {IDS[0]}: the release of v2 "
                   f"did not finish within --timeout (Run Command {C1} was InProgress; "
                   "cancelled).\n")


def test_not_allowed_to_run_commands_is_exit_2(stubbed: Stubbed) -> None:
    stubbed.stubs["ssm"].add_client_error(
        "send_command", "AccessDeniedException",
        "User: arn:aws:iam::123456789012:user/ci is not authorized to perform: ssm:SendCommand")
    code, _, err = call([*BASE, "--instance-id", IDS[0]], session=stubbed)
    assert code == 2
    assert err.startswith(f"error: ssm send-command to {IDS[0]}: not allowed "
                          "(AccessDeniedException: User: arn:aws:iam::123456789012:user/ci")
    assert err.count("\n") == 1


def test_rejected_credentials_are_exit_2() -> None:
    session = Stubbed(sts_error="InvalidClientTokenId")
    code, _, err = call([*BASE, "--instance-id", IDS[0]], session=session)
    assert code == 2
    assert "AWS rejected the credentials (InvalidClientTokenId" in err
    session.done()


def test_an_unexpected_error_is_one_line_not_a_traceback(stubbed: Stubbed) -> None:
    stubbed.sent(IDS[0], C1)
    stubbed.stubs["ssm"].add_response("get_command_invocation", {"Status": "Success"},
                                      {"CommandId": C1, "InstanceId": IDS[0]})

    class Broken:
        def __init__(self, inner: Stubbed) -> None:
            self.inner = inner

        def client(self, name: str, config: object = None) -> Any:
            if name == "ssm":
                client = self.inner.clients["ssm"]

                class Wrapper:
                    def __getattr__(self, attr: str) -> Any:
                        if attr == "get_command_invocation":
                            raise RuntimeError("boom")
                        return getattr(client, attr)
                return Wrapper()
            return self.inner.client(name)

    code, _, err = call([*BASE, "--instance-id", IDS[0]], session=Broken(stubbed))
    assert code == 1
    assert err == "error: unexpected RuntimeError: boom\n"
    # the queued invocation was never asked for: drain it so the fixture's check holds
    stubbed.clients["ssm"].get_command_invocation(CommandId=C1, InstanceId=IDS[0])
