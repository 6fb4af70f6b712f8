"""Roll a release onto running servers, one at a time, without replacing any:

    python -m deploy.rollout --region eu-west-1 --app shop --ref v1.4.2 \\
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
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TextIO

from botocore.exceptions import BotoCoreError, ClientError

from components import gitref, naming, registry
from components.naming import Paths
from deploy import cli, servers, ssm
from deploy.aws import AWS_CONFIG, UsageError, aws_error, check_identity, session_from, short_error
from deploy.cli import OK, SYSTEM_CLOCK, Clock, elapsed

POLL_SECONDS = 3.0
TAIL_LINES = 6
_APP = re.compile(naming.APP_NAME)


class Failed(cli.Failure):
    """Exit 1: a release failed or timed out; the message says where and why."""


def release_command(app: str, *args: str, root: str = "") -> str:
    """The shell line Run Command runs: the server's release program (under `root`: a loopback
    stack's), each argument one literal word (a ref, or a verb: --list, --rollback, --run)."""
    return shlex.join([Paths(root=root, app=app).program("release"), *args])


def _tail(text: str, lines: int = TAIL_LINES) -> str:
    kept = [line for line in text.strip().splitlines() if line.strip()][-lines:]
    return " | ".join(kept)


def aws_call(what: str, fn: Callable[..., Any], **kwargs: Any) -> Any:
    """One AWS call; credential, permission and endpoint failures become exit 2."""
    try:
        return fn(**kwargs)
    except (ClientError, BotoCoreError) as exc:
        raise aws_error(exc, what) or Failed(f"{what}: {short_error(exc)}") from exc


def progress(name: str, out: TextIO) -> Callable[[str], None]:
    """Progress lines on `out`, each starting with `name` ("rollout shop-prod: ...")."""
    def say(text: str) -> None:
        print(f"{name}: {text}", file=out, flush=True)
    return say


class Transport(Protocol):
    """How a shell line reaches a server and runs there as root: SSM Run Command
    (`SsmTransport`) in production, bash on a loopback stack in tests."""

    def run(self, instance_id: str, script: str) -> tuple[int, str, str]:
        """The script's exit code, and what there is left to show of its stdout and stderr."""
        ...


class SsmTransport:
    """SSM Run Command (`AWS-RunShellScript`) as the transport, within one deadline: a command
    not finished by then is cancelled, and that is a Failed; so is one that SSM ended before it
    ran to its end (TimedOut, Undeliverable, ...). `what` names the command in messages,
    `comment` is what Run Command's history shows; `log_group` also sends the output to
    CloudWatch Logs."""

    def __init__(self, ssm_client: Any, *, what: str, comment: str, deadline: float,
                 clock: Clock = SYSTEM_CLOCK, say: Callable[[str], None] = lambda _: None,
                 log_group: str | None = None) -> None:
        self.ssm, self.what, self.comment, self.log_group = ssm_client, what, comment, log_group
        self.deadline, self.clock, self.say = deadline, clock, say

    def run(self, instance_id: str, script: str) -> tuple[int, str, str]:
        inv = self.invoke(instance_id, script)
        return inv.code, inv.stdout, inv.stderr

    def sent(self, instance_id: str, command_id: str) -> Clock:
        """Called once the command is sent: the clock to wait for it on (a subclass reads its
        output between the polls)."""
        self.say(f"{instance_id}: {self.what} (command {command_id})")
        return self.clock

    def invoke(self, instance_id: str, script: str) -> ssm.Invocation:
        timeout = int(self.deadline - self.clock.now())
        if timeout < 30:
            raise Failed(f"{instance_id}: not started, {max(timeout, 0)} s left of --timeout")
        command_id = aws_call(f"ssm send-command to {instance_id}", ssm.send,
                           ssm=self.ssm, instance_id=instance_id, script=script,
                           comment=self.comment, deliver_seconds=max(30, min(timeout, 2592000)),
                           execution_seconds=min(timeout, 172800), log_group=self.log_group)
        clock = self.sent(instance_id, command_id)
        inv: ssm.Invocation = aws_call(f"ssm get-command-invocation on {instance_id}", ssm.wait,
                                    ssm=self.ssm, command_id=command_id,
                                    instance_id=instance_id, until=self.deadline,
                                    poll=POLL_SECONDS, clock=clock)
        if not inv.finished:
            # best effort: the server's own executionTimeout stops it anyway
            with contextlib.suppress(ClientError, BotoCoreError):
                self.ssm.cancel_command(CommandId=command_id, InstanceIds=[instance_id])
            raise Failed(f"{instance_id}: {self.what} did not finish within --timeout (Run "
                         f"Command {command_id} was {inv.status}; cancelled)")
        if inv.status not in ("Success", "Failed"):
            reason = _tail(inv.stderr) or _tail(inv.stdout) or inv.details or "no output"
            raise Failed(f"{instance_id}: {self.what} ended {inv.status} (exit {inv.code}): "
                         f"{reason}")
        return inv


class OneAtATime:
    """A server program run on servers one at a time, each healthy again in the target group
    (when there is one) before the next starts; the first failure stops it, naming the server
    and its reason, and the servers after it are not touched. The rollout and
    `webstack rollback` (deploy.ops) share it."""

    def __init__(self, transport: Transport, elbv2: Any | None, *,
                 target_group_arn: str | None, deadline: float, say: Callable[[str], None],
                 clock: Clock = SYSTEM_CLOCK) -> None:
        self.transport, self.elbv2, self.tg = transport, elbv2, target_group_arn
        self.deadline, self.say, self.clock = deadline, say, clock

    def _remaining(self) -> float:
        return self.deadline - self.clock.now()

    def run_on(self, instance_id: str, script: str, what: str) -> str:
        """Run the script on one server; its last line of output on success."""
        code, stdout, stderr = self.transport.run(instance_id, script)
        if code == 0:
            last = _tail(stdout, 1) or "(no output)"
            self.say(f"{instance_id}: {last}")
            return last
        reason = _tail(stderr) or _tail(stdout) or "no output"
        raise Failed(f"{instance_id}: {what} ended Failed (exit {code}): {reason}")

    def wait_healthy(self, instance_id: str) -> None:
        if self.elbv2 is None or self.tg is None:
            return
        while True:
            targets = aws_call("elbv2 describe-target-health", servers.target_health,
                            elbv2=self.elbv2, arn=self.tg, instance_ids=[instance_id])
            if targets and targets[0].healthy:
                self.say(f"{instance_id}: healthy in the target group")
                return
            if self._remaining() <= 0:
                last = str(targets[0]) if targets else "unknown"
                raise Failed(f"{instance_id}: released, but not healthy in the target group "
                             f"within --timeout (last: {last})")
            self.clock.sleep(min(POLL_SECONDS, max(self._remaining(), 0.1)))

    def each(self, instances: Sequence[str], script: str, *, what: str, title: str,
             done: str) -> list[str]:
        """Each server's last line of output. `what` names the script in a server's failure
        ("the release of v2"), `title` starts the whole failure's message ("rollout of v2"),
        `done` names the servers that went through before it ("Already serving v2")."""
        through: list[str] = []
        lasts: list[str] = []
        for n, iid in enumerate(instances, 1):
            try:
                self.say(f"server {n}/{len(instances)}: {iid}")
                lasts.append(self.run_on(iid, script, what))
                self.wait_healthy(iid)
            except Failed as exc:
                left = instances[n:]
                parts = [f"{title} stopped at server {n}/{len(instances)}, {exc}."]
                if through:
                    parts.append(f"{done}: {', '.join(through)}.")
                if left:
                    parts.append(f"Not attempted: {', '.join(left)}.")
                raise Failed(" ".join(parts)) from exc
            through.append(iid)
        return lasts


def _parser() -> argparse.ArgumentParser:
    p = cli.parser(
        "deploy.rollout",
        "Release REF on running servers one at a time through SSM Run Command; each server "
        "checks, switches and rolls back by itself.",
        servers="server to release on, in this order (repeatable)",
        group="Auto Scaling group: its InService servers, sorted",
        target_group="wait until each server is healthy in this ALB target group before the "
                     "next one",
        name="label for messages, e.g. shop-prod")
    p.add_argument("--app", required=True, help="app name (webstack:appName)")
    p.add_argument("--ref", required=True, help="the release pointer: a git tag, branch or commit "
                   "SHA, a bundle's SHA256@VERSION, or an image by digest")
    return cli.identity_flags(p)


def _check_usage(args: argparse.Namespace) -> None:
    if bool(args.instance_ids) == bool(args.asg_name):
        raise UsageError("give the servers either as --instance-id (repeatable) or as "
                         "--asg-name, not both and not neither")
    if not _APP.match(args.app):
        raise UsageError(f"--app {args.app!r}: expected an app name (1-32 of a-z, 0-9, '-', "
                         "starting with a letter)")
    if not (gitref.valid(args.ref) or registry.pinned(args.ref)):
        raise UsageError(f"--ref {args.ref!r}: expected {gitref.EXPECTED}, or an image by "
                         "digest (host/name@sha256:<64 hex>)")
    cli.check_instance_ids(args.instance_ids)
    cli.check_seconds(args, "timeout")
    cli.check_region(args.region)


def run(args: argparse.Namespace, session: Any, out: TextIO, clock: Clock) -> int:
    start = clock.now()
    check_identity(session, args.account)
    label = f" {args.name}" if args.name else ""
    if args.asg_name:
        found = aws_call(f"Auto Scaling group {args.asg_name}", servers.group,
                      autoscaling=session.client("autoscaling", config=AWS_CONFIG),
                      name=args.asg_name, region=args.region)
        instances = servers.in_service(found)
        if not instances:
            print(f"rollout{label}: {args.asg_name} has no InService server: nothing to roll "
                  f"out (servers that start read {args.ref} at boot)", file=out)
            return OK
    else:
        instances = list(dict.fromkeys(args.instance_ids))
    elbv2 = (session.client("elbv2", config=AWS_CONFIG) if args.target_group_arn else None)
    deadline, say = start + args.timeout, progress(f"rollout{label}", out)
    what = f"the release of {args.ref}"
    transport = SsmTransport(session.client("ssm", config=AWS_CONFIG), what=what,
                             comment=f"webstack release {args.ref}", deadline=deadline,
                             clock=clock, say=say)
    OneAtATime(transport, elbv2, target_group_arn=args.target_group_arn, deadline=deadline,
               say=say, clock=clock).each(instances, release_command(args.app, args.ref),
                                          what=what, title=f"rollout{label} of {args.ref}",
                                          done=f"Already serving {args.ref}")
    print(f"rollout{label}: {len(instances)} server(s) serve {args.ref} "
          f"({elapsed(clock.now() - start)})", file=out, flush=True)
    return OK


def main(argv: Sequence[str] | None = None, out: TextIO = sys.stdout,
         err: TextIO = sys.stderr, session: Any = None, clock: Clock = SYSTEM_CLOCK) -> int:
    """`session` and `clock` stand in for the real ones (tests: Stubber, a fake clock)."""
    def body(args: argparse.Namespace) -> int:
        _check_usage(args)
        return run(args, session or session_from(args), out, clock)

    return cli.run(_parser(), argv, err, body, failed="FAILED: ")


if __name__ == "__main__":
    sys.exit(main())
