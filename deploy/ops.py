"""The operations CLI, `webstack`: a deployed stack's day-2 commands, from its outputs, with
boto3 and SSM only (no SSH keys, no open port):

    webstack status                          # each server, its release, the health URL
    webstack logs --follow --since 30m app   # CloudWatch Logs, merged across servers
    webstack run -- python manage.py migrate # once, on one server, in the serving release
    webstack releases                        # each server's releases, the current one marked
    webstack rollback [RELEASE]              # every server, one at a time
    webstack ssh [--instance ID]             # an SSM session

The outputs come from `pulumi stack output --json` in this project (--stack NAME, else the
selected stack) or from a saved copy (--outputs FILE or WEBSTACK_OUTPUTS). On the servers the
commands are the release program's verbs (server/release.sh: --list, --rollback, --run), sent
through SSM Run Command as root. The AWS identity is the stack's provider's (the profile and
roles its healthCheckCommand names; --profile overrides the profile), in the stack's region.

exit codes:
  0  done; status: every server and the health URL healthy
  1  failed: a server or the URL unhealthy, a failed rollback, releases not read
  2  usage or setup: no stack selected, pulumi missing, an output missing, no usable AWS
     credentials, a server not managed by SSM, a wrong --instance, the session plugin missing
  run exits with the command's own code
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, TextIO

from components import aws_session, registry
from deploy import cli, ops_logs, servers
from deploy.aws import AWS_CONFIG, UsageError, check_identity, session_from
from deploy.cli import FAILED, OK, SYSTEM_CLOCK, Clock, Failure
from deploy.readiness_check import UrlCheck
from deploy.rollout import (
    OneAtATime,
    SsmTransport,
    Transport,
    aws_call,
    progress,
    release_command,
)

# the --help epilog: the docstring's exit codes (one text)
EXIT_CODES = "exit codes:" + (__doc__ or "").partition("exit codes:")[2].rstrip()
PROJECT = Path(__file__).resolve().parents[1]
PULUMI_INSTALL = "https://www.pulumi.com/docs/install/"
PLUGIN_INSTALL = ("https://docs.aws.amazon.com/systems-manager/latest/userguide/"
                  "session-manager-working-with-install-plugin.html")
# From this version on the plugin reads StartSession's answer (its token) from the environment
# variable named in place of it, as the AWS CLI passes it: the token stays off the command line.
PLUGIN_ENV = "AWS_SSM_START_SESSION_RESPONSE"
PLUGIN_ENV_SINCE = (1, 2, 536, 0)
SSM_OUTPUT_CAP = 24_000  # GetCommandInvocation's StandardOutputContent keeps this much
QUICK_SECONDS = 120.0  # the deadline of --list on a server (status, releases)
FINAL_READS = 3  # polls for the CloudWatch output still on its way after the command ended


class Outputs:
    """The stack's outputs; a missing one is exit 2 naming it."""

    def __init__(self, values: Mapping[str, Any], source: str) -> None:
        self.values, self.source = values, source

    def missing(self, *names: str) -> UsageError:
        return UsageError(f"{self.source}: no output {' or '.join(map(repr, names))}: deploy "
                          "this version of the project first (`pulumi up`)")

    def text(self, name: str) -> str:
        value = self.values.get(name)
        if not isinstance(value, str) or not value:
            raise self.missing(name)
        return value

    def texts(self, name: str) -> list[str]:
        value = self.values.get(name)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.missing(name)
        return value

    def optional(self, name: str) -> str | None:
        value = self.values.get(name)
        return value if isinstance(value, str) and value else None


def load_outputs(stack: str | None, path: str | None, environ: Mapping[str, str]) -> Outputs:
    """The outputs of `stack` (the selected one when None), or those saved in `path`."""
    path = path or environ.get("WEBSTACK_OUTPUTS") or None
    if path:
        source = f"outputs file {path}"
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise UsageError(f"{source}: cannot read it ({exc.strerror})") from exc
    else:
        source = f"stack {stack}" if stack else "the selected stack"
        text = _pulumi_outputs(stack)
    try:
        values = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"{source}: not JSON (expected `pulumi stack output --json`'s)") \
            from exc
    if not isinstance(values, dict):
        raise UsageError(f"{source}: expected a JSON object of outputs")
    if not values:
        raise UsageError(f"{source} has no outputs yet: it was never deployed (`pulumi up`)")
    return Outputs(values, source)


def _pulumi_outputs(stack: str | None) -> str:
    exe = shutil.which("pulumi")
    if exe is None:
        raise UsageError(f"pulumi is not on PATH: install the Pulumi CLI ({PULUMI_INSTALL}) or "
                         "give --outputs FILE (saved `pulumi stack output --json`)")
    argv = [exe, "stack", "output", "--json", *(["--stack", stack] if stack else [])]
    try:
        proc = subprocess.run(argv, cwd=PROJECT, capture_output=True, text=True, timeout=120,
                              stdin=subprocess.DEVNULL, check=False,
                              env={**os.environ, "PULUMI_SKIP_UPDATE_CHECK": "true"})
    except subprocess.TimeoutExpired as exc:
        raise UsageError("pulumi stack output did not answer within 120 s") from exc
    if proc.returncode != 0:
        said = " ".join(proc.stderr.split())
        if "no stack selected" in said.lower():
            raise UsageError("no stack selected: pass --stack NAME or run `pulumi stack select "
                             "NAME` in this project")
        raise UsageError(f"pulumi stack output failed: {said[:300] or f'exit {proc.returncode}'}")
    return proc.stdout


def _identity(health_check: str | None, profile: str | None) -> argparse.Namespace:
    """The provider's identity flags from the stack's healthCheckCommand (its profile, roles
    and account), --profile overriding the profile."""
    p = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    aws_session.add_arguments(p)
    found, _ = p.parse_known_args(shlex.split(health_check or ""))
    if profile:
        found.profile = profile
    return found


def parse_list(instance_id: str, stdout: str) -> list[dict[str, Any]]:
    """`release --list`'s lines: one JSON object per release, newest first."""
    releases = []
    for line in stdout.splitlines():
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError:
            item = None
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            raise Failure(f"{instance_id}: release --list printed {line[:200]!r}, not a "
                          "release (one JSON object per line)")
        releases.append(item)
    return releases


@dataclass
class _Stream:
    """One of a command's CloudWatch streams, as far as it was printed."""

    name: str
    file: TextIO
    token: str | None = None
    shown: int = 0  # characters


class StreamingSsm(SsmTransport):
    """`run`'s Run Command: the output read from CloudWatch Logs between the polls and printed
    as it comes; SSM's own copy (its first 24,000 characters) when CloudWatch had none."""

    def __init__(self, ssm_client: Any, logs: Any, *, out: TextIO, err: TextIO,
                 **kwargs: Any) -> None:
        super().__init__(ssm_client, **kwargs)
        self.logs, self.out, self.err = logs, out, err
        self.streams: list[_Stream] = []  # stdout, stderr

    def sent(self, instance_id: str, command_id: str) -> Clock:
        base = f"{command_id}/{instance_id}/aws-runShellScript"
        self.streams = [_Stream(f"{base}/stdout", self.out), _Stream(f"{base}/stderr", self.err)]
        super().sent(instance_id, command_id)

        def sleep(seconds: float) -> None:
            self.read()
            self.clock.sleep(seconds)
        return Clock(now=self.clock.now, sleep=sleep)

    def read(self) -> None:
        """Print what CloudWatch has of the output since the last read."""
        for stream in self.streams:
            while True:
                kwargs: dict[str, Any] = {"logGroupName": self.log_group,
                                          "logStreamName": stream.name, "startFromHead": True}
                if stream.token:
                    kwargs["nextToken"] = stream.token
                try:
                    page = self.logs.get_log_events(**kwargs)
                except self.logs.exceptions.ResourceNotFoundException:
                    break  # nothing written yet
                for event in page.get("events", []):
                    message = event.get("message", "")
                    print(message, file=stream.file, flush=True)
                    stream.shown += len(message) + 1
                if page.get("nextForwardToken") in (None, stream.token):
                    break
                stream.token = page["nextForwardToken"]

    def run(self, instance_id: str, script: str) -> tuple[int, str, str]:
        inv = self.invoke(instance_id, script)
        for attempt in range(FINAL_READS):  # CloudWatch may still be behind SSM's own copy
            if attempt:
                self.clock.sleep(1.0)
            self.read()
            if self.streams[0].shown >= len(inv.stdout.strip()):
                break
        if any(stream.shown for stream in self.streams):
            return inv.code, "", ""
        if len(inv.stdout) >= SSM_OUTPUT_CAP:
            print(f"webstack: the output was cut at SSM's {SSM_OUTPUT_CAP:,} characters and "
                  f"CloudWatch log group {self.log_group} has none of it", file=self.err)
        return inv.code, inv.stdout, inv.stderr


class Ops:
    """The verbs against one stack. `transport` replaces SSM Run Command (tests: bash on a
    loopback stack whose files are under `root`)."""

    def __init__(self, args: argparse.Namespace, outputs: Outputs, *, out: TextIO,
                 err: TextIO, clock: Clock, session: Any, transport: Transport | None,
                 root: str) -> None:
        self.args, self.outputs, self.out, self.err, self.clock = args, outputs, out, err, clock
        self._given_session, self.transport, self.root = session, transport, root
        self.region = outputs.text("region")
        self.app = outputs.text("appName")
        self.identity = _identity(outputs.optional("healthCheckCommand"), args.profile)

    @cached_property
    def session(self) -> Any:
        session = self._given_session
        if session is None:
            self.identity.region = self.region
            session = session_from(self.identity)
        check_identity(session, self.identity.account)
        return session

    def client(self, name: str) -> Any:
        return self.session.client(name, config=AWS_CONFIG)

    @cached_property
    def servers(self) -> list[str]:
        """The stack's servers: its instance, or its group's InService ones, sorted."""
        if "instanceIds" in self.outputs.values:
            found = self.outputs.texts("instanceIds")
        elif name := self.outputs.optional("autoScalingGroupName"):
            groups = aws_call(f"Auto Scaling group {name}",
                              self.client("autoscaling").describe_auto_scaling_groups,
                              AutoScalingGroupNames=[name])["AutoScalingGroups"]
            if not groups:
                raise UsageError(f"the stack's Auto Scaling group {name} (output "
                                 f"autoScalingGroupName) is not in {self.region}: is the "
                                 "stack's state current (`pulumi refresh`)?")
            found = servers.in_service(groups[0])
        else:
            raise self.outputs.missing("instanceIds", "autoScalingGroupName")
        if not found:
            raise Failure("the stack has no InService server now (new ones deploy the "
                          "release pointer when they start)")
        return found

    def one(self, instance: str | None) -> str:
        """--instance, one of the stack's servers, or the first."""
        if instance is None:
            return self.servers[0]
        if instance not in self.servers:
            raise UsageError(f"--instance {instance!r}: not one of the stack's servers "
                             f"({', '.join(self.servers)})")
        return instance

    def pings(self, instance_ids: Sequence[str]) -> dict[str, str]:
        """SSM's PingStatus (Online, ConnectionLost, Inactive) of the servers it knows."""
        pages = self.client("ssm").get_paginator("describe_instance_information").paginate(
            Filters=[{"Key": "InstanceIds", "Values": list(instance_ids)}])
        found = aws_call("ssm describe-instance-information", lambda: list(pages))
        return {i["InstanceId"]: i.get("PingStatus", "?") for page in found
                for i in page.get("InstanceInformationList", [])}

    def require_managed(self, instance_ids: Sequence[str]) -> None:
        pings = self.pings(instance_ids)
        for iid in instance_ids:
            if pings.get(iid) != "Online":
                why = (f"its SSM agent is {pings[iid]}" if iid in pings
                       else "Systems Manager has never heard from it")
                raise UsageError(f"{iid} is not managed by SSM (agent not running or no "
                                 f"instance role): {why}")

    def remote(self, instance_ids: Sequence[str], what: str, *, comment: str, deadline: float,
               say: Callable[[str], None]) -> Transport:
        """The transport to the servers: Run Command, once SSM manages every one of them."""
        if self.transport is not None:
            return self.transport
        self.require_managed(instance_ids)
        return SsmTransport(self.client("ssm"), what=what, comment=comment, deadline=deadline,
                            clock=self.clock, say=say)

    def release(self, *args: str) -> str:
        return release_command(self.app, *args, root=self.root)

    # --- the verbs ------------------------------------------------------------------------

    def status(self) -> int:
        ids = self.servers
        reservations = aws_call("ec2 describe-instances", self.client("ec2").describe_instances,
                                InstanceIds=ids)["Reservations"]
        states = {i["InstanceId"]: i["State"]["Name"] for r in reservations
                  for i in r["Instances"]}
        pings = self.pings(ids)
        tg = self.outputs.optional("targetGroupArn")
        targets = {t.instance_id: t for t in aws_call(
            "elbv2 describe-target-health", servers.target_health,
            elbv2=self.client("elbv2"), arn=tg, instance_ids=ids)} if tg else {}
        transport = self.transport or SsmTransport(
            self.client("ssm"), what="release --list", comment="webstack release --list",
            deadline=self.clock.now() + QUICK_SECONDS, clock=self.clock)
        healthy = True
        for iid in ids:
            state, ping = states.get(iid, "not found"), pings.get(iid)
            parts = [f"EC2 {state}", f"SSM {ping}" if ping else "SSM: not managed (agent not "
                     "running or no instance role)"]
            ok = state == "running" and ping == "Online"
            if tg:
                target = targets.get(iid)
                parts.append(f"target {target or 'not registered'}")
                ok = ok and target is not None and target.healthy
            if ping == "Online" or self.transport is not None:
                current = self._current(transport, iid)
                ok = ok and current.startswith("release ")
                parts.append(current)
            else:
                parts.append("release not read (no SSM)")
            healthy &= ok
            print(f"{'ok ' if ok else 'BAD'} {iid}: {', '.join(parts)}", file=self.out)
        url = self._health_url()
        poll = UrlCheck(url, None).poll()
        healthy &= poll.state == "ready"
        print(f"{'ok ' if poll.state == 'ready' else 'BAD'} {poll.line}", file=self.out)
        return OK if healthy else FAILED

    def _current(self, transport: Transport, instance_id: str) -> str:
        try:
            code, stdout, stderr = transport.run(instance_id, self.release("--list"))
            if code != 0:
                raise Failure(" ".join((stderr or stdout).split())[-200:] or f"exit {code}")
            current = [r for r in parse_list(instance_id, stdout) if r.get("current")]
        except Failure as exc:
            return f"release not read ({exc})"
        if not current:
            return "no release serving"
        return f"release {current[0]['id']} ({current[0].get('ref') or 'no ref'})"

    def _health_url(self) -> str:
        """healthCheckCommand's --url (the url output and the health path), else the url."""
        words = shlex.split(self.outputs.optional("healthCheckCommand") or "")
        if "--url" in words[:-1]:
            return words[words.index("--url") + 1]
        return self.outputs.text("url")

    def logs(self) -> int:
        since = ops_logs.since_seconds(self.args.since)
        by_kind = ops_logs.groups(self.outputs.texts("logGroupNames"), self.args.kind)
        return ops_logs.show(self.client("logs"), by_kind, since=since,
                             follow=self.args.follow, out=self.out, clock=self.clock)

    def run(self) -> int:
        iid = self.one(self.args.instance)
        script = self.release("--run", "--", *self.args.command)
        transport = self.transport
        if transport is None:
            group = self.outputs.text("runLogGroupName")
            self.require_managed([iid])
            transport = StreamingSsm(
                self.client("ssm"), self.client("logs"), out=self.out, err=self.err,
                what="the command", comment=f"webstack run {shlex.join(self.args.command)}",
                deadline=self.clock.now() + self.args.timeout, clock=self.clock,
                say=progress("run", self.err), log_group=group)
        code, stdout, stderr = transport.run(iid, script)
        print(stdout, end="", file=self.out, flush=True)
        print(stderr, end="", file=self.err, flush=True)
        return code

    def releases(self) -> int:
        ids = self.servers
        transport = self.remote(ids, "release --list", comment="webstack release --list",
                                deadline=self.clock.now() + QUICK_SECONDS, say=lambda _: None)
        failed = False
        for iid in ids:
            code, stdout, stderr = transport.run(iid, self.release("--list"))
            if code != 0:
                failed = True
                reason = " ".join((stderr or stdout).split())[-300:] or "no output"
                print(f"{iid}: release --list failed (exit {code}): {reason}", file=self.err)
                continue
            kept = parse_list(iid, stdout)
            print(f"{iid}: {len(kept)} release(s)", file=self.out)
            width = max((len(r["id"]) for r in kept), default=2)
            if kept:
                print(f"    {'ID':<{width}}  {'RELEASED':<20}  REF", file=self.out)
            for r in kept:
                mark = "*" if r.get("current") else " "
                print(f"  {mark} {r['id']:<{width}}  {r.get('released', '?'):<20}  "
                      f"{r.get('ref') or '-'}", file=self.out)
        return FAILED if failed else OK

    def rollback(self) -> int:
        ids = self.servers
        target = self.args.release
        deadline = self.clock.now() + self.args.timeout
        say = progress("rollback", self.out)
        transport = self.remote(ids, "the rollback", comment="webstack rollback "
                                f"{target or '(the previous release)'}", deadline=deadline,
                                say=say)
        tg = self.outputs.optional("targetGroupArn")
        steps = OneAtATime(transport, self.client("elbv2") if tg else None,
                           target_group_arn=tg, deadline=deadline, say=say, clock=self.clock)
        lasts = steps.each(ids, self.release("--rollback", *filter(None, [target])),
                           what="the rollback", title="rollback", done="Rolled back")
        refs = [m.group(1) for last in lasts
                if (m := re.match(r"release: serving (\S+) ", last))]
        print(self._pin_hint(refs), file=self.out)
        return OK

    def _pin_hint(self, refs: Sequence[str]) -> str:
        pointer = self.outputs.optional("releaseRefParameter") or "the release pointer"
        hint = (f"warning: the release pointer ({pointer}) is unchanged: the next `pulumi up`, "
                "and any server that starts (a new or replaced one), deploys its release again. "
                "To stay on this one, pin it in the stack's config: ")
        ref = refs[0] if refs and len(set(refs)) == 1 else None
        if ref and registry.pinned(ref):
            return hint + f"pulumi config set webstack:appImage {shlex.quote(ref)}"
        if ref and "@" not in ref and re.fullmatch(r"[0-9a-f]{7,40}", ref):
            return hint + f"pulumi config set webstack:appRef {ref}"
        return hint + ("webstack:appRef to its commit (git), webstack:appSource's directory "
                       "back to its code (a bundle), webstack:appImage to its digest (an image)")

    def ssh(self) -> int:
        iid = self.one(self.args.instance)
        plugin = shutil.which("session-manager-plugin")
        if plugin is None:
            raise UsageError("session-manager-plugin is not on PATH: install the Session "
                             f"Manager plugin ({PLUGIN_INSTALL})")
        self.require_managed([iid])
        ssm = self.client("ssm")
        answer = aws_call(f"ssm start-session on {iid}", ssm.start_session, Target=iid)
        answer.pop("ResponseMetadata", None)
        env = dict(os.environ)
        response = json.dumps(answer)
        if _plugin_version(plugin) >= PLUGIN_ENV_SINCE:
            env[PLUGIN_ENV], response = response, PLUGIN_ENV
        argv = [plugin, response, self.region, "StartSession", self.identity.profile or "",
                json.dumps({"Target": iid}), ssm.meta.endpoint_url]
        # Ctrl-C belongs to the remote shell: the plugin passes it on, this process ignores it
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            return subprocess.run(argv, env=env, check=False).returncode
        finally:
            signal.signal(signal.SIGINT, previous)


def _plugin_version(plugin: str) -> tuple[int, ...]:
    try:
        said = subprocess.run([plugin, "--version"], capture_output=True, text=True,
                              timeout=10, check=False).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ()
    return tuple(int(n) for n in re.findall(r"\d+", said)[:4])


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="webstack", epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Operate a deployed stack from its outputs: its servers, releases and\n"
                    "logs, through SSM and CloudWatch Logs (no SSH keys, no open port).")
    p.add_argument("--stack", metavar="NAME", help="Pulumi stack (default: the selected one)")
    p.add_argument("--outputs", metavar="FILE", help="the stack's outputs from this file "
                   "(saved `pulumi stack output --json`; also WEBSTACK_OUTPUTS) instead of "
                   "running pulumi")
    p.add_argument("--profile", metavar="P", help="AWS profile (default: the stack's provider's)")
    verbs = p.add_subparsers(dest="verb", required=True, metavar="VERB")

    def verb(name: str, text: str, epilog: str = "", **kwargs: Any) -> argparse.ArgumentParser:
        return verbs.add_parser(name, help=text, description=text, epilog=epilog or None,
                                **kwargs)

    verb("status", "each server's EC2 state, SSM agent, target health and current release, "
         "then the health URL (exit 0 all healthy, 1 otherwise)")
    logs = verb("logs", "the servers' CloudWatch logs merged by time: TIME INSTANCE KIND "
                "message")
    logs.add_argument("kind", nargs="?", choices=sorted(ops_logs.KINDS),
                      help="only these logs (nginx: access and error; default: all)")
    logs.add_argument("--since", default="10m", metavar="AGE",
                      help="from this long ago: 30s, 10m, 2h, 1d (default 10m)")
    logs.add_argument("--follow", "-f", action="store_true",
                      help="keep printing new events until Ctrl-C")
    run = verb("run", "run a command once on one server, in the serving release (its venv, "
               "environment and secrets, as the app's user); exits with its code; not "
               "interactive (see ssh)",
               "Not interactive (no TTY, no stdin): for a shell, or a command that asks "
               "questions, use `webstack ssh`. Django's `createsuperuser --noinput` works: it "
               "reads DJANGO_SUPERUSER_USERNAME, _EMAIL and _PASSWORD from the app's "
               "environment (the password from appSecrets, never on the command line).",
               usage="webstack run [-h] [--instance ID] [--timeout SECONDS] -- CMD [ARG ...]")
    run.add_argument("--instance", metavar="ID", help="server (default: the first)")
    run.add_argument("--timeout", type=float, default=3600.0, metavar="SECONDS",
                     help="stop the command after this long (default 3600)")
    run.add_argument("command", nargs="+", metavar="CMD", help="the command and its "
                     "arguments, after --")
    verb("releases", "each server's kept releases, newest first, the current one marked *")
    back = verb("rollback", "serve the previous (or the named) kept release again, on every "
                "server one at a time, each healthy before the next")
    back.add_argument("release", nargs="?", metavar="RELEASE",
                      help="a release id from `webstack releases` (default: the newest one "
                           "before the current)")
    back.add_argument("--timeout", type=float, default=900.0, metavar="SECONDS",
                      help="overall deadline (default 900)")
    ssh = verb("ssh", "an SSM session (a shell) on a server; needs the Session Manager plugin")
    ssh.add_argument("--instance", metavar="ID", help="server (default: the first)")
    return p


def main(argv: Sequence[str] | None = None, out: TextIO = sys.stdout,
         err: TextIO = sys.stderr, *, session: Any = None, clock: Clock = SYSTEM_CLOCK,
         transport: Transport | None = None, root: str = "",
         environ: Mapping[str, str] = os.environ) -> int:
    """`session`, `clock` and `transport` stand in for the real ones (tests: Stubber, a fake
    clock, bash on a loopback stack whose files are under `root`)."""
    def body(args: argparse.Namespace) -> int:
        if hasattr(args, "timeout"):
            cli.check_seconds(args, "timeout")
        outputs = load_outputs(args.stack, args.outputs, environ)
        ops = Ops(args, outputs, out=out, err=err, clock=clock, session=session,
                  transport=transport, root=root)
        return getattr(ops, args.verb)()

    return cli.run(parser(), argv, err, body, failed="FAILED: ")


if __name__ == "__main__":
    sys.exit(main())
