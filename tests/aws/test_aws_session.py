"""The Pulumi AWS provider's identity for boto3 (components.aws_session), against moto's STS on
127.0.0.1: its AssumeRole and GetCallerIdentity (which names the assumed role) prove which
identity a session really calls as."""

from __future__ import annotations

import io
import json
import shlex
from pathlib import Path
from typing import Any

import boto3
import pytest

from components import aws_session
from components.aws_session import AssumeRole, Settings, SettingsError, StaticKeys
from deploy import readiness_check, rollout

pytestmark = pytest.mark.aws

REGION = "us-east-1"
DEPLOY = "arn:aws:iam::111111111111:role/deploy"
ADMIN = "arn:aws:iam::222222222222:role/admin"


def raw(**values: Any) -> dict[str, str]:
    """Stack config as the CLI hands it to the program: lists and maps as JSON strings."""
    return {f"aws:{k}": v if isinstance(v, str) else json.dumps(v) for k, v in values.items()}


def identity(session: Any) -> dict[str, Any]:
    return session.client("sts").get_caller_identity()


def test_assume_roles_chain_calls_as_the_last_role_with_its_options(aws_env: str) -> None:
    settings = aws_session.parse(raw(region=REGION, assumeRoles=[
        {"roleArn": DEPLOY, "sessionName": "webstack-ci", "externalId": "ext-42",
         "duration": "1h"},
        {"roleArn": ADMIN, "sessionName": "webstack-admin", "duration": "15m",
         "tags": {"team": "web"}, "transitiveTagKeys": ["team"]}]))
    sent: list[dict[str, Any]] = []
    from botocore import session as core_session

    original = core_session.Session.create_client

    def recording(self: Any, name: str, *a: Any, **kw: Any) -> Any:
        client = original(self, name, *a, **kw)
        if name == "sts":
            client.meta.events.register("provide-client-params.sts.AssumeRole",
                                        lambda params, **_: sent.append(dict(params)))
        return client

    with pytest.MonkeyPatch.context() as mp:  # each hop's STS client, as it is created
        mp.setattr(core_session.Session, "create_client", recording)
        me = identity(aws_session.session(settings))
    assert me["Account"] == "222222222222"
    assert me["Arn"] == "arn:aws:sts::222222222222:assumed-role/admin/webstack-admin"
    assert sent == [
        {"RoleArn": DEPLOY, "RoleSessionName": "webstack-ci", "ExternalId": "ext-42",
         "DurationSeconds": 3600},
        {"RoleArn": ADMIN, "RoleSessionName": "webstack-admin", "DurationSeconds": 900,
         "Tags": [{"Key": "team", "Value": "web"}], "TransitiveTagKeys": ["team"]}]


def test_no_sts_call_before_the_first_api_call(aws_env: str) -> None:
    """A cached catalog at preview must not need STS: roles are assumed on first use."""
    session = aws_session.session(aws_session.parse(raw(region=REGION,
                                                        assumeRoles=[{"roleArn": DEPLOY}])))
    client = session.client("ec2")  # what sizing builds before it reads its cache
    assert client.meta.region_name == REGION
    creds = client._request_signer._credentials
    assert creds._access_key is None  # deferred: nothing fetched yet
    assert identity(session)["Arn"].startswith("arn:aws:sts::111111111111:assumed-role/deploy/")


def moto_user(name: str) -> tuple[str, str]:
    """An IAM user in moto's default account; GetCallerIdentity with its key names it."""
    iam = boto3.client("iam")
    iam.create_user(UserName=name)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"]


def test_profile_from_a_shared_config_file_is_honoured(aws_env: str, tmp_path: Path) -> None:
    access, secret = moto_user("profile-user")
    config, credentials = tmp_path / "config", tmp_path / "credentials"
    config.write_text("[profile deploy]\nregion = eu-west-1\n")
    credentials.write_text(f"[deploy]\naws_access_key_id = {access}\n"
                           f"aws_secret_access_key = {secret}\n")
    settings = aws_session.parse(raw(region=REGION, profile="deploy",
                                     sharedConfigFiles=[str(config)],
                                     sharedCredentialsFiles=[str(credentials)]))
    session = aws_session.session(settings)
    # the environment's own keys (AWS_ACCESS_KEY_ID=testing) are not what it calls with
    assert identity(session)["Arn"] == "arn:aws:iam::123456789012:user/profile-user"
    assert session.region_name == REGION  # the provider's region, not the profile's
    # and a role on top of the profile: assumed with the profile's credentials
    chained = aws_session.session(Settings(REGION, "deploy", str(config), str(credentials),
                                           (AssumeRole(DEPLOY, session_name="from-profile"),)))
    assert identity(chained)["Arn"] == "arn:aws:sts::111111111111:assumed-role/deploy/" \
                                       "from-profile"


def test_static_keys_from_stack_config_win_over_the_environment(aws_env: str) -> None:
    access, secret = moto_user("config-keys-user")
    settings = aws_session.parse(raw(region=REGION, accessKey=access, secretKey=secret))
    assert identity(aws_session.session(settings))["Arn"].endswith(":user/config-keys-user")
    assert access not in repr(settings) and secret not in repr(settings)


def test_a_missing_profile_is_one_line_naming_the_flag(aws_env: str, tmp_path: Path) -> None:
    (tmp_path / "config").write_text("[profile other]\n")
    out, err = io.StringIO(), io.StringIO()
    code = readiness_check.main(["--region", REGION, "--instance-id", "i-0123456789abcdef0",
                                 "--profile", "deploy", "--shared-config-file",
                                 str(tmp_path / "config")], out=out, err=err)
    assert code == 2
    assert err.getvalue().count("\n") == 1
    assert "--profile 'deploy' is not in the shared config or credentials file" in err.getvalue()


# --- wrong account ------------------------------------------------------------------------------

CHECK = ["--region", REGION, "--instance-id", "i-0123456789abcdef0", "--timeout", "5",
         "--interval", "0.2"]
ROLL = ["--region", REGION, "--app", "shop", "--ref", "v2", "--instance-id",
        "i-0123456789abcdef0", "--timeout", "60"]


@pytest.mark.parametrize("cli", [readiness_check, rollout])
def test_another_account_is_refused_with_exit_2(aws_env: str, cli: Any) -> None:
    argv = CHECK if cli is readiness_check else ROLL
    out, err = io.StringIO(), io.StringIO()
    # moto's default account with the environment's keys; the stack deploys through a role
    code = cli.main([*argv, "--account", "111111111111"], out=out, err=err)
    assert code == 2
    assert err.getvalue() == (
        "error: running as arn:aws:sts::123456789012:user/moto in account 123456789012, but "
        "the stack deploys to account 111111111111 (--account): give the provider's "
        "--profile/--role-arn\n")
    assert out.getvalue() == ""


def test_the_role_s_account_is_the_one_the_check_looks_into(aws_env: str) -> None:
    """With the provider's role the check passes the account check and reads that account:
    an instance that exists only there is found, running."""
    role = aws_session.session(Settings(REGION, roles=(AssumeRole(DEPLOY),)))
    ec2 = role.client("ec2")
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    [iid] = [i["InstanceId"] for i in ec2.run_instances(
        ImageId=image, MinCount=1, MaxCount=1, InstanceType="t3.micro")["Instances"]]
    argv = ["--region", REGION, "--instance-id", iid, "--timeout", "3", "--interval", "0.2"]
    out, err = io.StringIO(), io.StringIO()
    code = readiness_check.main([*argv, "--role-arn", DEPLOY, "--account", "111111111111"],
                                out=out, err=err)
    assert code == 1  # moto's sample console output has no cloud-init banner: still waiting
    assert f"[{iid}] cloud-init: " in out.getvalue()
    out, err = io.StringIO(), io.StringIO()
    code = readiness_check.main(argv, out=out, err=err)  # the environment's own account
    assert code == 1 and f"instance {iid} does not exist in region {REGION}" in err.getvalue()


# --- flags round-trip, never a key ---------------------------------------------------------

FULL = Settings(
    region=REGION, profile="deploy", config_file="/home/ci/.aws/config",
    credentials_file="/home/ci/.aws/credentials",
    roles=(AssumeRole(DEPLOY, session_name="webstack", external_id="ext-42",
                      duration_seconds=5400, source_identity="ci-runner",
                      policy='{"Version": "2012-10-17", "Statement": []}',
                      policy_arns=("arn:aws:iam::aws:policy/ReadOnlyAccess",),
                      tags=(("env", "prod"), ("team", "web")), transitive_tag_keys=("team",)),
           AssumeRole(ADMIN)),
    keys=StaticKeys("AKIAEXAMPLEACCESS01", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                    "FwoGZXIvYXdzEXAMPLETOKEN"))


@pytest.mark.parametrize("cli", [readiness_check, rollout])
def test_flags_round_trip_through_each_cli(cli: Any) -> None:
    command_line = shlex.join(aws_session.flags(FULL))
    required = ["--app", "a", "--ref", "r"] if cli is rollout else []
    args = cli._parser().parse_args(["--region", REGION, *required,
                                     *shlex.split(command_line)])
    again = aws_session.from_args(args, REGION, aws_session.environment(FULL))
    assert again == FULL
    for secret in ("AKIAEXAMPLEACCESS01", "wJalrXUtnFEMI", "FwoGZXIvYXdz"):
        assert secret not in command_line
    assert set(aws_session.environment(FULL)) == {"WEBSTACK_AWS_ACCESS_KEY_ID",
                                                  "WEBSTACK_AWS_SECRET_ACCESS_KEY",
                                                  "WEBSTACK_AWS_SESSION_TOKEN"}


def test_config_and_flags_name_the_same_role() -> None:
    from_config = aws_session.parse(raw(region=REGION, profile="deploy",
                                        sharedConfigFiles=["/home/ci/.aws/config"],
                                        sharedCredentialsFiles=["/home/ci/.aws/credentials"],
                                        assumeRoles=[{
        "roleArn": DEPLOY, "sessionName": "webstack", "externalId": "ext-42",
        "duration": "1h30m", "sourceIdentity": "ci-runner",
        "policy": '{"Version": "2012-10-17", "Statement": []}',
        "policyArns": ["arn:aws:iam::aws:policy/ReadOnlyAccess"],
        "tags": {"team": "web", "env": "prod"}, "transitiveTagKeys": ["team"]},
        {"roleArn": ADMIN}], accessKey=FULL.keys.access_key,  # type: ignore[union-attr]
        secretKey=FULL.keys.secret_key, token=FULL.keys.token))  # type: ignore[union-attr]
    assert from_config == FULL


@pytest.mark.parametrize(("config", "problem"), [
    (raw(assumeRoles={"roleArn": DEPLOY}), "aws:assumeRoles: expected a list such as"),
    (raw(assumeRoles=[{"roleArn": "deploy"}]),
     "aws:assumeRoles[0].roleArn: expected an IAM role ARN such as "
     "arn:aws:iam::123456789012:role/deploy"),
    (raw(assumeRoles=[{"roleArn": DEPLOY, "duration": "10m"}]),
     "aws:assumeRoles[0].duration: expected a duration from 15m to 12h such as 1h or 3600s"),
    (raw(assumeRoles=[{"roleArn": DEPLOY, "roleSessionName": "x"}]),
     "aws:assumeRoles[0].roleSessionName: unknown field; expected roleArn, sessionName"),
    (raw(sharedConfigFiles="~/.aws/config"),
     'aws:sharedConfigFiles: expected a list of file paths such as ["~/.aws/config"]'),
    (raw(sharedConfigFiles=["/a", "/b"]), "aws:sharedConfigFiles: 2 files given"),
    (raw(accessKey="AKIAEXAMPLEACCESS01"), "aws:accessKey and aws:secretKey: set both"),
    (raw(assumeRole={"roleArn": DEPLOY}), "aws:assumeRole is set: the deploy-time checks "
                                          "cannot use it; pulumi-aws v7 reads aws:assumeRoles"),
    (raw(assumeRoleWithWebIdentity={"roleArn": DEPLOY}), "set AWS_ROLE_ARN and "
                                                         "AWS_WEB_IDENTITY_TOKEN_FILE"),
])
def test_bad_provider_settings_name_the_key(config: dict[str, str], problem: str) -> None:
    with pytest.raises(SettingsError) as caught:
        aws_session.parse({"aws:region": REGION, **config})
    assert problem in str(caught.value)
    assert "AKIAEXAMPLEACCESS01" not in str(caught.value)


def test_a_role_option_before_its_role_is_argparse_usage(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert readiness_check.main([*CHECK, "--external-id", "x1"]) == 2
    assert ("error: argument --external-id: must follow the --role-arn it applies to"
            in capsys.readouterr().err)


@pytest.mark.parametrize(("flags", "message"), [
    (["--role-arn", DEPLOY, "--role-duration", "5m"],
     "error: --role-duration (role 1): expected a duration from 15m to 12h such as 1h or "
     "3600s\n"),
    (["--account", "12345"], "error: --account '12345': expected a 12-digit AWS account id\n"),
])
def test_bad_identity_flags_are_one_line_exit_2(aws_env: str, flags: list[str],
                                                message: str) -> None:
    out, err = io.StringIO(), io.StringIO()
    code = readiness_check.main(CHECK + flags, out=out, err=err)
    assert (code, err.getvalue()) == (2, message)
