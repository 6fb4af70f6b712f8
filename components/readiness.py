"""`pulumi up` returns when the app answers healthy, or fails with the reason.

One gate for the servers (each EC2 instance running, cloud-init done without errors, healthy in
the target group when behind a load balancer) and one for the public health URL, each a
`command.local.Command` running `python -m deploy.readiness_check` on the deployer's machine: no
SSH needed. A gate runs on create and re-runs only when what it vouches for changes (its
triggers: the instance or the group's launch-template version, the user-data hash, the app
ref), so a no-op `pulumi up` stays a no-op. Every command acts as the Pulumi AWS provider does
(`aws_identity`): its profile and roles as flags, its account as `--account` (a command run as
another account refuses), the stack's static keys only in its environment, as secrets.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

import pulumi
import pulumi_command as command

from components import aws_session
from components.config import StackConfig

# Relative to the project directory, where Pulumi runs the program and its local commands (so
# `-m deploy.<tool>` finds the package there); Pulumi.yaml's `virtualenv: .venv` puts boto3 in
# it. Relative, so the command line is the same on every deployer's machine.
PYTHON = ".venv/bin/python"
MODULE = "deploy.readiness_check"


def target_args(instance_ids: Sequence[str] = (), group_name: str | None = None,
                target_group_arn: str | None = None) -> list[str]:
    """Which servers a CLI of ours acts on: the same flags for the check and the rollout."""
    args: list[str] = []
    for instance_id in instance_ids:
        args += ["--instance-id", instance_id]
    if group_name:
        args += ["--asg-name", group_name]
    if target_group_arn:
        args += ["--target-group-arn", target_group_arn]
    return args


class AwsIdentity:
    """The provider's identity for our commands: `args` (its profile and roles as flags, and
    `--account`) and `environment` (its static keys as secrets; None without any). Built once
    by the program and shared by every command."""

    def __init__(self, account: str) -> None:
        settings = aws_session.provider_settings()
        self.args: pulumi.Output[list[str]] = pulumi.Output.from_input(
            [*aws_session.flags(settings), "--account", account])
        env = aws_session.environment(settings)
        self.environment: dict[str, pulumi.Output[str]] | None = {
            k: pulumi.Output.secret(v) for k, v in env.items()} or None


def gate_command(*, region: str, timeout: int, interval: int, name: str,
                 aws_args: Sequence[str], instance_ids: Sequence[str] = (),
                 group_name: str | None = None, launch_version: int | None = None,
                 url: str | None = None, target_group_arn: str | None = None) -> str:
    """The checker's command line: ids, URLs, numbers and the provider's profile and roles —
    nothing secret."""
    args = [PYTHON, "-m", MODULE, "--region", region, "--timeout", str(timeout),
            "--interval", str(interval), "--name", name,
            *target_args(instance_ids, group_name, target_group_arn)]
    if group_name and launch_version is not None:
        args += ["--launch-template-version", str(int(launch_version))]
    if url:
        args += ["--url", url]
    return shlex.join([*args, *aws_args])


def health_url(base_url: str, health_path: str) -> str:
    return base_url.rstrip("/") + health_path


def health_check_command(cfg: StackConfig, identity: AwsIdentity, *,
                         instance_id: pulumi.Output[str] | None,
                         group_name: pulumi.Output[str] | None,
                         url: pulumi.Input[str]) -> pulumi.Output[str]:
    """The same check as the gates, all at once: servers and URL ("is prod healthy?")."""
    r = cfg.readiness
    return pulumi.Output.all(instance_id, group_name, url, identity.args).apply(
        lambda a: gate_command(
            region=cfg.region, timeout=r.timeout_seconds, interval=r.interval_seconds,
            name=cfg.prefix, aws_args=a[3], instance_ids=[a[0]] if a[0] else [],
            group_name=a[1], url=health_url(a[2], cfg.app.health_path)))


class Readiness(pulumi.ComponentResource):
    server_gate: command.local.Command
    url_gate: command.local.Command | None

    def __init__(self, name: str, cfg: StackConfig, identity: AwsIdentity, *,
                 servers: pulumi.Resource,
                 instance_id: pulumi.Output[str] | None = None,
                 group_name: pulumi.Output[str] | None = None,
                 launch_version: pulumi.Output[int] | None = None,
                 user_data_sha256: str,
                 target_group_arn: pulumi.Output[str] | None = None,
                 servers_after: Sequence[pulumi.Resource] = (),
                 opts: pulumi.ResourceOptions | None = None):
        """`servers` is the single instance (with `instance_id`) or the Auto Scaling group
        (with `group_name` and `launch_version`, whose change rolls new servers in).
        `servers_after`: the load balancer's listeners — its targets get no health checks
        before a listener forwards to them (the HTTPS one waits for the certificate)."""
        super().__init__("webstack:readiness:Readiness", name, None, opts)
        self._name, self._cfg = name, cfg
        # what the server gate vouches for: these servers, booted from this user-data
        self._servers = [instance_id or group_name, launch_version or 0, user_data_sha256]
        r = cfg.readiness
        ids = pulumi.Output.all(instance_id, group_name, target_group_arn, launch_version,
                                identity.args)
        self.server_gate = command.local.Command(
            f"{name}-servers",
            create=ids.apply(lambda a: gate_command(
                region=cfg.region, timeout=r.timeout_seconds, interval=r.interval_seconds,
                name=cfg.prefix, aws_args=a[4], instance_ids=[a[0]] if a[0] else [],
                group_name=a[1], launch_version=a[3], target_group_arn=a[2])),
            environment=identity.environment,
            # not the app ref: a new ref is a release on these same servers (the rollout)
            triggers=self._servers,
            logging=command.local.Logging.STDOUT_AND_STDERR,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[servers, *servers_after]))
        self.url_gate: command.local.Command | None = None
        self.register_outputs({})

    def check_url(self, public_url: pulumi.Input[str], after: Sequence[pulumi.Resource],
                  code: pulumi.Input[str]) -> command.local.Command:
        """The public health URL answers 200, checked after `after`: the address, DNS,
        certificate and listeners that make the URL reach the servers, and the rollout, so
        that on new `code` (appRef, the bundle's sha256) it vouches for the new release, not
        the old one."""
        cfg, r = self._cfg, self._cfg.readiness
        url = pulumi.Output.from_input(public_url).apply(
            lambda u: health_url(u, cfg.app.health_path))
        self.url_gate = command.local.Command(
            f"{self._name}-url",
            create=url.apply(lambda u: gate_command(
                region=cfg.region, timeout=r.timeout_seconds, interval=r.interval_seconds,
                name=f"{cfg.prefix} {u}", aws_args=[], url=u)),
            triggers=[url, *self._servers, code],  # and the release they serve
            logging=command.local.Logging.STDOUT_AND_STDERR,
            opts=pulumi.ResourceOptions(parent=self,
                                        depends_on=[self.server_gate, *after]))
        return self.url_gate
