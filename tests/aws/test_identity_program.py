"""The whole program under mocks with the provider configured through stack config: the
commands act as the provider's role and account, and its static keys reach them only as
secrets in their environment (sizing asks moto as that role)."""

from __future__ import annotations

import json
import shlex

import pytest

from devtools.mockrun import ACCOUNT_ID, run_program, stack_config

pytestmark = pytest.mark.aws

ROLE = "arn:aws:iam::123456789012:role/deploy"
KEYS = {"aws:accessKey": "AKIAEXAMPLEACCESS01",
        "aws:secretKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "aws:token": "FwoGZXIvYXdzEXAMPLETOKEN"}
ENVELOPE = "4dabf18193072939515e22adb298388d"  # Pulumi's secret signature


def test_commands_take_role_and_account_as_flags_and_keys_only_as_secrets(aws_env_module):
    config = stack_config("prod", {
        "webstack:appRepo": "https://git.example.com/acme/shop.git", "webstack:appRef": "v3",
        "aws:assumeRoles": json.dumps([{"roleArn": ROLE, "sessionName": "webstack"}]),
        **KEYS})
    run = run_program("prod", config, secret_keys=list(KEYS))
    assert run.error is None, run.error
    commands = {c.name.rsplit("-", 1)[1]: c for c in run.of_type("command:local:Command")}
    assert set(commands) == {"servers", "url", "rollout"}
    for name in ("servers", "rollout"):
        argv = shlex.split(commands[name].inputs["create"])
        assert argv[-6:] == ["--role-arn", ROLE, "--session-name", "webstack",
                             "--account", ACCOUNT_ID], name
        envelope = commands[name].inputs["environment"]  # a secret: encrypted in state
        assert set(envelope) == {ENVELOPE, "value"}, name
        assert envelope["value"] == {"WEBSTACK_AWS_ACCESS_KEY_ID": KEYS["aws:accessKey"],
                                     "WEBSTACK_AWS_SECRET_ACCESS_KEY": KEYS["aws:secretKey"],
                                     "WEBSTACK_AWS_SESSION_TOKEN": KEYS["aws:token"]}
    assert "environment" not in commands["url"].inputs  # the URL gate calls no AWS API
    visible = json.dumps([c.inputs["create"] for c in commands.values()]) + json.dumps(
        run.outputs)
    for key in KEYS.values():
        assert key not in visible
    assert f"--account {ACCOUNT_ID}" in run.outputs["healthCheckCommand"]


def test_without_static_keys_commands_get_no_environment(aws_env_module):
    run = run_program("dev", stack_config("dev"))
    assert run.error is None, run.error
    for cmd in run.of_type("command:local:Command"):
        assert "environment" not in cmd.inputs, cmd.name
