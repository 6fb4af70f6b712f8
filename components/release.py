"""Zero-downtime app deploys: new code (a new appSource bundle, or a change of `appRef`) alone
rolls the new release onto the running servers, one at a time, through SSM Run Command
(`python -m deploy.rollout`), with the servers' own release script switching, health-checking
and rolling back. No server is replaced."""

from __future__ import annotations

import shlex
from collections.abc import Sequence

import pulumi
import pulumi_command as command

from components.config import StackConfig
from components.readiness import PYTHON, AwsIdentity, target_args

MODULE = "deploy.rollout"


def rollout_command(cfg: StackConfig, *, ref: str, aws_args: Sequence[str],
                    instance_ids: Sequence[str] = (), group_name: str | None = None,
                    target_group_arn: str | None = None) -> str:
    """The rollout's command line: ids, the release pointer and the provider's profile, roles
    and account."""
    args = [PYTHON, "-m", MODULE, "--region", cfg.region, "--app", cfg.app.name,
            # servers release one after another, each building a venv: a budget per server
            "--ref", ref,
            "--timeout", str(cfg.readiness.timeout_seconds * cfg.server.ceiling),
            "--name", cfg.prefix, *target_args(instance_ids, group_name, target_group_arn),
            *aws_args]
    return shlex.join(args)


class Rollout(pulumi.ComponentResource):
    """The `<name>-rollout` command: deploy.rollout's one-at-a-time release of `pointer`, run when
    `code` changes (appRef, or the bundle's sha256: known at preview, unlike its S3 version)."""

    def __init__(self, name: str, cfg: StackConfig, identity: AwsIdentity, *,
                 pointer: pulumi.Input[str], code: pulumi.Input[str],
                 instance_id: pulumi.Output[str] | None = None,
                 group_name: pulumi.Output[str] | None = None,
                 target_group_arn: pulumi.Output[str] | None = None,
                 depends_on: Sequence[pulumi.Resource] = (),
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("webstack:release:Rollout", name, None, opts)
        create = pulumi.Output.all(instance_id, group_name, target_group_arn,
                                   identity.args, pointer).apply(
            lambda a: rollout_command(cfg, ref=a[4], aws_args=a[3],
                                      instance_ids=[a[0]] if a[0] else [],
                                      group_name=a[1], target_group_arn=a[2]))
        self.command = command.local.Command(
            f"{name}-rollout", create=create, triggers=[code],
            environment=identity.environment,
            logging=command.local.Logging.STDOUT_AND_STDERR,
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(depends_on)))
        self.register_outputs({})
