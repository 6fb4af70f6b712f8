"""Roll a release onto running servers, one at a time, without replacing any:

    python -m components.rollout --region eu-west-1 --app shop --ref v1.4.2 \\
        --asg-name shop-prod-web --target-group-arn arn:aws:elasticloadbalancing:...

For each server in turn (an Auto Scaling group's InService servers, sorted, or the given
--instance-id ones in order), SSM Run Command (`AWS-RunShellScript`) runs the server's own
`/usr/local/lib/webstack/<app>/release REF` as root: it fetches REF into a new release, checks
it before it takes traffic, switches, restarts gunicorn on the socket systemd holds (no failed
request), checks health through nginx and rolls itself back on failure. With
--target-group-arn the next server starts only once this one is `healthy` in the target group
again. The first failure stops the rollout: the servers after it keep the release they serve.

Exit 0: every server serves REF. 1: a release failed or did not finish in --timeout (the
message names the server and quotes its reason). 2: usage, region, credential, permission or
endpoint problem, or running as another account than --account (one line). Progress goes to
stdout, the failure to stderr, never a traceback. The AWS identity is the Pulumi provider's
(components.aws_session flags); boto3 honours AWS_ENDPOINT_URL (tests point it at moto).
"""

from __future__ import annotations

import argparse
import contextlib
import re
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from botocore.exceptions import BotoCoreError, ClientError

from components import aws_session
from components.aws_cli import (
    AWS_CONFIG,
    UsageError,
    aws_error,
    check_identity,
    elapsed,
    known_region,
    session_from,
    short_error,
)

OK, FAILED, USAGE = 0, 1, 2
RELEASE_SCRIPT = "/usr/local/lib/webstack/{app}/release"
POLL_SECONDS = 3.0
TAIL_LINES = 6
_APP = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
_INSTANCE = re.compile(r"^i-[0-9a-f]{8,17}$")
# Run Command states: https://docs.aws.amazon.com/systems-manager/latest/userguide/monitor-commands.html
_BUSY = {"Pending", "InProgress", "Delayed", "Cancelling"}


class Failed(Exception):
    """Exit 1: a release failed or timed out; the message says where and why."""


@dataclass(frozen=True)
class Clock:
    now: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep


def release_command(app: str, ref: str) -> str:
    """The shell line Run Command runs: the ref is one literal word."""
    return f"{RELEASE_SCRIPT.format(app=app)} {shlex.quote(ref)}"


def _tail(text: str, lines: int = TAIL_LINES) -> str:
    kept = [line for line in text.strip().splitlines() if line.strip()][-lines:]
    return " | ".join(kept)


def _call(what: str, fn: Callable[..., Any], **kwargs: Any) -> Any:
    """One AWS call; credential, permission and endpoint failures become exit 2."""
    try:
        return fn(**kwargs)
    except (ClientError, BotoCoreError) as exc:
        raise aws_error(exc, what) or Failed(f"{what}: {short_error(exc)}") from exc


class Rollout:
    def __init__(self, ssm: Any, elbv2: Any | None, *, app: str, ref: str,
                 target_group_arn: str | None, deadline: float, label: str,
                 out: TextIO, clock: Clock = Clock()) -> None:
        self.ssm, self.elbv2 = ssm, elbv2
        self.app, self.ref, self.tg = app, ref, target_group_arn
        self.deadline, self.label, self.out, self.clock = deadline, label, out, clock

    def say(self, text: str) -> None:
        print(f"rollout{self.label}: {text}", file=self.out, flush=True)

    def _remaining(self) -> float:
        return self.deadline - self.clock.now()

    def release_on(self, instance_id: str) -> str:
        """Run the release on one server; its last line of output on success."""
        timeout = int(self._remaining())
        if timeout < 30:
            raise Failed(f"{instance_id}: not started, {max(timeout, 0)} s left of --timeout")
        sent = _call(f"ssm send-command to {instance_id}", self.ssm.send_command,
                     InstanceIds=[instance_id], DocumentName="AWS-RunShellScript",
                     Comment=f"webstack release {self.ref}"[:100],
                     TimeoutSeconds=max(30, min(timeout, 2592000)),  # to deliver it
                     Parameters={"commands": [release_command(self.app, self.ref)],
                                 "executionTimeout": [str(min(timeout, 172800))]})
        command_id = sent["Command"]["CommandId"]
        self.say(f"{instance_id}: release {self.ref} (command {command_id})")
        while True:
            try:
                inv = self.ssm.get_command_invocation(CommandId=command_id,
                                                      InstanceId=instance_id)
            except ClientError as exc:  # not registered yet, right after send_command
                if exc.response.get("Error", {}).get("Code") != "InvocationDoesNotExist":
                    raise aws_error(exc, f"ssm get-command-invocation on {instance_id}") \
                        or Failed(f"{instance_id}: {short_error(exc)}") from exc
                inv = {"Status": "Pending"}
            status = inv.get("Status", "?")
            if status not in _BUSY:
                break
            if self._remaining() <= 0:
                # best effort: the server's own executionTimeout stops it anyway
                with contextlib.suppress(ClientError, BotoCoreError):
                    self.ssm.cancel_command(CommandId=command_id, InstanceIds=[instance_id])
                raise Failed(f"{instance_id}: the release of {self.ref} did not finish within "
                             f"--timeout (Run Command {command_id} was {status}; cancelled)")
            self.clock.sleep(min(POLL_SECONDS, max(self._remaining(), 0.1)))
        stdout = inv.get("StandardOutputContent", "") or ""
        stderr = inv.get("StandardErrorContent", "") or ""
        if status == "Success":
            last = _tail(stdout, 1) or "(no output)"
            self.say(f"{instance_id}: {last}")
            return last
        code = inv.get("ResponseCode", -1)
        reason = _tail(stderr) or _tail(stdout) or inv.get("StatusDetails", "") or "no output"
        raise Failed(f"{instance_id}: the release of {self.ref} ended {status} (exit {code}): "
                     f"{reason}")

    def wait_healthy(self, instance_id: str) -> None:
        if self.elbv2 is None or self.tg is None:
            return
        last = ""
        while True:
            health = _call("elbv2 describe-target-health", self.elbv2.describe_target_health,
                           TargetGroupArn=self.tg, Targets=[{"Id": instance_id}])
            states = health.get("TargetHealthDescriptions", [])
            th = states[0].get("TargetHealth", {}) if states else {}
            state = th.get("State", "unknown")
            why = ": ".join(x for x in (th.get("Reason"), th.get("Description")) if x)
            last = state + (f" ({why})" if why else "")
            if state == "healthy":
                self.say(f"{instance_id}: healthy in the target group")
                return
            if self._remaining() <= 0:
                raise Failed(f"{instance_id}: released, but not healthy in the target group "
                             f"within --timeout (last: {last})")
            self.clock.sleep(min(POLL_SECONDS, max(self._remaining(), 0.1)))


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m components.rollout",
        description="Release REF on running servers one at a time through SSM Run Command; "
                    "each server checks, switches and rolls back by itself.")
    p.add_argument("--region", required=True, help="AWS region of the servers")
    p.add_argument("--app", required=True, help="app name (webstack:appName)")
    p.add_argument("--ref", required=True, help="git tag, branch or commit SHA to release")
    p.add_argument("--instance-id", action="append", default=[], dest="instance_ids",
                   metavar="ID", help="server to release on, in this order (repeatable)")
    p.add_argument("--asg-name", help="Auto Scaling group: its InService servers, sorted")
    p.add_argument("--target-group-arn", help="wait until each server is healthy in this "
                   "ALB target group before the next one")
    p.add_argument("--timeout", type=float, default=900.0, metavar="SECONDS",
                   help="overall deadline (default 900)")
    p.add_argument("--name", help="label for messages, e.g. shop-prod")
    aws_session.add_arguments(p)
    return p


def _check_usage(args: argparse.Namespace) -> None:
    if bool(args.instance_ids) == bool(args.asg_name):
        raise UsageError("give the servers either as --instance-id (repeatable) or as "
                         "--asg-name, not both and not neither")
    if not _APP.match(args.app):
        raise UsageError(f"--app {args.app!r}: expected an app name (1-32 of a-z, 0-9, '-', "
                         "starting with a letter)")
    ref = args.ref
    if (not ref or ref.startswith("-") or ".." in ref or len(ref) > 200
            or any(not ch.isprintable() or ch.isspace() for ch in ref)):
        raise UsageError(f"--ref {ref!r}: expected a git tag, branch or commit SHA (no "
                         "spaces, control characters or '..', not starting with '-')")
    for iid in args.instance_ids:
        if not _INSTANCE.match(iid):
            raise UsageError(f"--instance-id {iid!r}: expected an EC2 instance id like "
                             "i-0123456789abcdef0")
    if args.timeout <= 0:
        raise UsageError("--timeout must be a positive number of seconds")
    if not known_region(args.region):
        raise UsageError(f"unknown region {args.region!r}: use an AWS region code such as "
                         "us-east-1 or eu-west-1")


def in_service(autoscaling: Any, name: str, region: str) -> list[str]:
    groups = _call(f"Auto Scaling group {name}", autoscaling.describe_auto_scaling_groups,
                   AutoScalingGroupNames=[name])["AutoScalingGroups"]
    if not groups:
        raise UsageError(f"--asg-name {name!r}: no such Auto Scaling group in {region}")
    return sorted(i["InstanceId"] for i in groups[0].get("Instances", [])
                  if i.get("LifecycleState") == "InService")


def run(args: argparse.Namespace, session: Any, out: TextIO, clock: Clock) -> int:
    start = clock.now()
    check_identity(session, args.account)
    label = f" {args.name}" if args.name else ""
    if args.asg_name:
        instances = in_service(session.client("autoscaling", config=AWS_CONFIG),
                               args.asg_name, args.region)
        if not instances:
            print(f"rollout{label}: {args.asg_name} has no InService server: nothing to roll "
                  f"out (servers that start read {args.ref} at boot)", file=out)
            return OK
    else:
        instances = list(dict.fromkeys(args.instance_ids))
    elbv2 = (session.client("elbv2", config=AWS_CONFIG) if args.target_group_arn else None)
    rollout = Rollout(session.client("ssm", config=AWS_CONFIG), elbv2, app=args.app,
                      ref=args.ref, target_group_arn=args.target_group_arn,
                      deadline=start + args.timeout, label=label, out=out, clock=clock)
    done: list[str] = []
    for n, iid in enumerate(instances, 1):
        try:
            rollout.say(f"server {n}/{len(instances)}: {iid}")
            rollout.release_on(iid)
            rollout.wait_healthy(iid)
        except Failed as exc:
            left = instances[n:]
            parts = [f"rollout{label} of {args.ref} stopped at server {n}/{len(instances)}, "
                     f"{exc}."]
            if done:
                parts.append(f"Already serving {args.ref}: {', '.join(done)}.")
            if left:
                parts.append(f"Not attempted: {', '.join(left)}.")
            raise Failed(" ".join(parts)) from exc
        done.append(iid)
    print(f"rollout{label}: {len(instances)} server(s) serve {args.ref} "
          f"({elapsed(clock.now() - start)})", file=out, flush=True)
    return OK


def main(argv: Sequence[str] | None = None, out: TextIO = sys.stdout,
         err: TextIO = sys.stderr, session: Any = None, clock: Clock = Clock()) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse printed the usage line
        return USAGE if exc.code else OK
    try:
        _check_usage(args)
        return run(args, session or session_from(args), out, clock)
    except UsageError as exc:
        print(f"error: {exc}", file=err)
        return USAGE
    except Failed as exc:
        print(f"FAILED: {exc}", file=err)
        return FAILED
    except KeyboardInterrupt:
        print("interrupted", file=err)
        return FAILED
    except Exception as exc:  # a bug or an unforeseen failure: still one line, no traceback
        print(f"error: unexpected {type(exc).__name__}: {short_error(exc)}", file=err)
        return FAILED


if __name__ == "__main__":
    sys.exit(main())
