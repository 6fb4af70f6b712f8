"""Wait until servers are really serving: EC2 running, cloud-init done, target group healthy,
health URL answering 200. `pulumi up` runs this so it returns only when the site works, or
fails with the reason; it is also the "is prod healthy?" command after a deploy:

    python -m deploy.readiness_check --region eu-west-1 --instance-id i-0abc --name web-1 \\
        --url https://app.example.org/healthz

With --asg-name it first waits for the group's latest instance refresh (the provider starts
it and returns) to succeed, then for the group's servers of --launch-template-version.
cloud-init is read through SSM Run Command when the instance's agent is Online (the probe
script of deploy.cloudinit_status), else from the EC2 console output (Debian's AMIs have no
SSM agent). The same probe script runs over any command that feeds a script to `sh -s`
(`probe_command`, e.g. ssh). Exit 0 ready, 1 not ready (reason on stderr), 2 usage, region,
credential or endpoint problem. Progress goes to stdout, one line per change or every 30 s.
"""

from __future__ import annotations

import argparse
import http.client
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
)

from deploy import cli, servers, ssm
from deploy.aws import AWS_CONFIG, UsageError, aws_error, check_identity, session_from, short_error
from deploy.cli import elapsed
from deploy.cloudinit_status import PROBE_SCRIPT, CloudInit, clean, parse_console, parse_probe

MAX_INTERVAL = 30.0
HEARTBEAT = 30.0
BODY_EXCERPT = 500
# SSM only speeds things up (the console answers too): do not spend the deadline retrying it.
SSM_CONFIG = AWS_CONFIG.merge(Config(retries={"mode": "standard", "total_max_attempts": 2}))
_NOT_FOUND = {"InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed"}
# Instance refresh states: https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_InstanceRefresh.html
_REFRESH_BUSY = {"Pending", "InProgress", "Cancelling", "RollbackInProgress", "Baking"}


@dataclass
class Poll:
    """One look at a check: `waiting`, `ready` or `failed`, with a progress line; `details`
    are the lines a failure message adds (status, failing modules, log tail)."""

    state: str
    line: str
    details: list[str] = field(default_factory=list)


_SOURCES = {"ssm": "SSM Run Command", "console": "EC2 console output", "ssh": "ssh probe"}


def cloud_init_details(ci: CloudInit) -> list[str]:
    """The failure message's lines about cloud-init: status, modules, errors, last lines."""
    lines = [f"cloud-init: {ci.summary()} (read from the {_SOURCES.get(ci.source, ci.source)})"]
    if ci.failed_modules:
        lines.append("failing module(s): " + ", ".join(ci.failed_modules))
    lines += [f"error: {e}" for e in ci.errors]
    lines += [f"warning: {w}" for w in ci.warnings]
    if ci.tail:
        log = ("/var/log/cloud-init-output.log" if ci.source != "console"
               else "the console output")
        lines.append(f"last {len(ci.tail)} lines of {log}:")
        lines += [f"  | {line}" for line in ci.tail]
    return lines


def probe_command(argv: Sequence[str], timeout: float = 30.0) -> CloudInit:
    """Run the probe script through a command that executes its stdin with sh, e.g.
    ["ssh", "-i", KEY, "-p", PORT, "admin@HOST", "sh -s"]; raises OSError or
    subprocess.TimeoutExpired when the command cannot run."""
    proc = subprocess.run(list(argv), input=PROBE_SCRIPT, capture_output=True, text=True,
                          timeout=timeout, check=False)
    if proc.returncode != 0:
        raise OSError(f"{argv[0]} exited with {proc.returncode}: "
                      + " ".join(proc.stderr.split())[-300:])
    return parse_probe(proc.stdout, "ssh")


class InstanceCheck:
    """EC2 state `running`, then cloud-init finished with status done (SSM or console)."""

    def __init__(self, ec2: Any, ssm_client: Any, instance_id: str, region: str,
                 ssm_poll: float = 1.0, ssm_wait: float = 20.0) -> None:
        self.ec2, self.ssm, self.instance_id, self.region = ec2, ssm_client, instance_id, region
        self.ssm_poll, self.ssm_wait = ssm_poll, ssm_wait
        self.ssm_unusable = ""  # why SSM cannot be used, once it failed for good
        self.console_latest = True
        self.ec2_state = ""
        self.last: CloudInit | None = None
        self.notes: list[str] = []

    def poll(self) -> Poll:
        try:
            found = self.ec2.describe_instances(InstanceIds=[self.instance_id])
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _NOT_FOUND:
                return Poll("failed", "ec2: not found",
                            [f"instance {self.instance_id} does not exist in region "
                             f"{self.region} (check --region and the id)"])
            raise
        instances = [i for r in found.get("Reservations", []) for i in r.get("Instances", [])]
        if not instances:
            return Poll("failed", "ec2: not found",
                        [f"instance {self.instance_id} does not exist in region {self.region}"])
        state = self.ec2_state = instances[0].get("State", {}).get("Name", "unknown")
        if state == "pending":
            return Poll("waiting", "ec2: pending")
        if state != "running":
            reason = instances[0].get("StateReason", {}).get("Message", "")
            return Poll("failed", f"ec2: {state}",
                        [f"instance is {state}" + (f": {reason}" if reason else "")])
        ci = self._cloud_init()
        self.last = ci
        line = f"cloud-init: {ci.summary()}"
        if ci.ok:
            return Poll("ready", line, [f"warning: {w}" for w in ci.warnings])
        if ci.status == "error" or ci.status == "disabled":
            return Poll("failed", line, self.details())
        return Poll("waiting", line)

    def details(self) -> list[str]:
        """What is known about cloud-init, for a failure or timeout message."""
        if self.last is None:
            return [f"cloud-init: not read (EC2 state: {self.ec2_state or 'not checked yet'})"]
        return self.notes + cloud_init_details(self.last)

    def _cloud_init(self) -> CloudInit:
        if not self.ssm_unusable:
            try:
                if self._ssm_online():
                    output = self._ssm_run(PROBE_SCRIPT)
                    if output is not None:
                        return parse_probe(output, "ssm")
            except (ClientError, BotoCoreError) as exc:  # e.g. no ssm:* permission
                self.ssm_unusable = short_error(exc)
                self.notes.append(f"SSM not usable ({self.ssm_unusable}): read the console")
        return parse_console(self._console())

    def _ssm_online(self) -> bool:
        info = self.ssm.describe_instance_information(
            Filters=[{"Key": "InstanceIds", "Values": [self.instance_id]}])
        return any(i.get("PingStatus") == "Online"
                   for i in info.get("InstanceInformationList", []))

    def _ssm_run(self, script: str) -> str | None:
        """The script's stdout, or None when the command did not complete in time."""
        command_id = ssm.send(self.ssm, self.instance_id, script,
                              comment="webstack readiness probe", deliver_seconds=60)
        inv = ssm.wait(self.ssm, command_id, self.instance_id,
                       until=time.monotonic() + self.ssm_wait, poll=self.ssm_poll)
        # Cancelled, TimedOut, Undeliverable or not done yet: read the console this time
        return inv.stdout if inv.status in ("Success", "Failed") else None

    def _console(self) -> str:
        try:
            out = self.ec2.get_console_output(InstanceId=self.instance_id,
                                              Latest=self.console_latest)
        except ClientError as exc:
            if not self.console_latest or exc.response.get("Error", {}).get("Code") != \
                    "UnsupportedOperation":
                raise
            self.console_latest = False  # Latest=True is for Nitro instances only
            out = self.ec2.get_console_output(InstanceId=self.instance_id)
        return out.get("Output") or ""


class TargetGroupCheck:
    """Every instance `healthy` in the load balancer's target group."""

    def __init__(self, elbv2: Any, arn: str, instance_ids: Sequence[str]) -> None:
        self.elbv2, self.arn, self.instance_ids = elbv2, arn, list(instance_ids)
        self.last: list[str] = []

    def poll(self) -> Poll:
        try:
            targets = servers.target_health(self.elbv2, self.arn, self.instance_ids)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "TargetGroupNotFound":
                return Poll("failed", "target group: not found",
                            [f"target group {self.arn} does not exist"])
            raise
        states = [f"{t.instance_id} {t}" for t in targets]
        self.last = states
        all_healthy = bool(targets) and all(t.healthy for t in targets)
        return Poll("ready" if all_healthy else "waiting",
                    "targets: " + (", ".join(states) or "none registered"))

    def details(self) -> list[str]:
        return [f"target group {self.arn}:"] + [f"  {s}" for s in self.last or ["no answer"]]


class GroupCheck:
    """An Auto Scaling group's servers, ready to be checked one by one: its latest instance
    refresh has finished Successful, and as many servers as the group wants run the deployed
    launch-template version (pending or in service). `instances` holds them once ready.

    The latest refresh is this deploy's: the provider cancels a refresh in progress and starts
    one whenever the launch template's version changes, and a gate re-run for the same version
    (new gate flags, say) vouches for the refresh that rolled it in. A group without refreshes
    was just created. Given no version (the health-check command), a finished refresh that failed
    is history, not news: the servers in service are checked as they are."""

    def __init__(self, autoscaling: Any, name: str, region: str, version: str | None) -> None:
        self.autoscaling, self.name, self.region, self.version = autoscaling, name, region, version
        self.instances: list[str] = []
        self.last: list[str] = []

    def poll(self) -> Poll:
        group = servers.group(self.autoscaling, self.name, self.region)
        refreshes = self.autoscaling.describe_instance_refreshes(
            AutoScalingGroupName=self.name, MaxRecords=10).get("InstanceRefreshes", [])
        self.last = []
        if refreshes:
            latest = max(refreshes, key=_started)
            status = latest.get("Status", "?")
            line = _refresh_line(latest)
            self.last = [line]
            if status in _REFRESH_BUSY:
                return Poll("waiting", line)
            if status != "Successful" and self.version is not None:
                return Poll("failed", line, _refresh_details(latest, self.name))
        wanted = int(group.get("DesiredCapacity", 0))
        current = sorted(
            i["InstanceId"] for i in group.get("Instances", [])
            if i.get("LifecycleState", "").startswith(("Pending", "InService"))
            and (self.version is None
                 or str(i.get("LaunchTemplate", {}).get("Version")) == self.version))
        of = f" of launch template version {self.version}" if self.version else ""
        self.last = [*self.last[:1], f"servers{of}: {len(current)} of {wanted} pending or in "
                     "service: " + (", ".join(
                         f"{i['InstanceId']} {i.get('LifecycleState')} version "
                         f"{i.get('LaunchTemplate', {}).get('Version', '?')}"
                         for i in group.get("Instances", [])) or "none")]
        if wanted == 0:
            return Poll("failed", "servers: none wanted", [
                "the Auto Scaling group has no pending or in-service servers: see its "
                "activity history (aws autoscaling describe-scaling-activities "
                f"--auto-scaling-group-name {self.name})"])
        if len(current) < wanted:
            return Poll("waiting", f"servers{of}: {len(current)}/{wanted}")
        self.instances = current
        return Poll("ready", f"servers{of}: {', '.join(current)}")

    def details(self) -> list[str]:
        return [f"Auto Scaling group {self.name}:", *(f"  {s}" for s in self.last or
                                                      ["no answer"])]


def _started(refresh: dict[str, Any]) -> tuple[int, Any]:
    """Newest first; a pending refresh has no start time yet and is the newest."""
    start = refresh.get("StartTime")
    return (1, 0) if start is None else (0, start)


def _refresh_line(refresh: dict[str, Any]) -> str:
    reason = " ".join(str(refresh.get("StatusReason", "")).split())
    percent = refresh.get("PercentageComplete")
    return (f"instance refresh {refresh.get('InstanceRefreshId', '?')}: "
            f"{refresh.get('Status', '?')}" + (f", {percent}% done" if percent is not None
                                               else "") + (f" ({reason})" if reason else ""))


def _refresh_details(refresh: dict[str, Any], group: str) -> list[str]:
    lines = [_refresh_line(refresh)]
    rollback = refresh.get("RollbackDetails", {})
    if rollback.get("RollbackReason"):
        lines.append("rolled back: " + " ".join(str(rollback["RollbackReason"]).split()))
    lines.append("the servers still run the previous launch template version; see aws "
                 "autoscaling describe-instance-refreshes --auto-scaling-group-name " + group)
    return lines


class _SameHostRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects on the same host only (e.g. http to https); any other one is
    reported as the status it is."""

    def redirect_request(self, req: urllib.request.Request, fp: Any, code: int, msg: str,
                         headers: Any, newurl: str) -> urllib.request.Request | None:
        if _host(newurl) != _host(req.full_url):
            return None
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _excerpt(body: bytes) -> str:
    text = " ".join(clean(body.decode("utf-8", errors="replace")).split())
    return text[:BODY_EXCERPT]


class UrlCheck:
    """The health URL answers 200. Refused connections, 502, 503 and 504 are "not yet"; so is
    any other answer until the deadline, when it becomes the failure with a body excerpt."""

    def __init__(self, url: str, ca_file: str | None, timeout: float = 10.0) -> None:
        self.url, self.timeout = url, timeout
        context = ssl.create_default_context(cafile=ca_file)
        self.opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}) if _is_loopback(url) else
            urllib.request.ProxyHandler(), urllib.request.HTTPSHandler(context=context),
            _SameHostRedirects())
        self.last = "no answer yet"
        self.body = ""

    def poll(self) -> Poll:
        request = urllib.request.Request(self.url, headers={"User-Agent": "webstack-readiness"})
        try:
            with self.opener.open(request, timeout=self.timeout) as resp:
                status, reason, body = resp.status, resp.reason, resp.read(4096)
        except urllib.error.HTTPError as exc:
            # urllib's own reason for a redirect loop is a paragraph: use the status's phrase
            reason = http.client.responses.get(exc.code, " ".join(str(exc.reason).split()))
            status, body = exc.code, exc.read(4096)
            location = exc.headers.get("Location") if exc.headers else None
            if location:
                target = urllib.parse.urljoin(exc.url, location)
                why = ("another host" if _host(target) != _host(self.url) else "redirect loop")
                reason = f"{reason}, redirect to {location} (not followed: {why})"
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            why = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            self.last, self.body = f"no answer ({why})", ""
            return Poll("waiting", f"{self.url}: {self.last}")
        self.last, self.body = f"HTTP {status} {reason}", _excerpt(body)
        return Poll("ready" if status == 200 else "waiting", f"{self.url}: {self.last}")

    def details(self) -> list[str]:
        lines = [f"{self.url}: {self.last}"]
        if self.body:
            lines.append(f"body: {self.body}")
        return lines


def _host(url: str) -> str:
    return urllib.parse.urlsplit(url).hostname or ""


def _is_loopback(url: str) -> bool:
    host = _host(url)
    return host == "localhost" or host.startswith("127.") or host == "::1"


@dataclass
class Step:
    """A check with the label its lines carry, e.g. "web-1 i-0abc"."""

    label: str
    check: GroupCheck | InstanceCheck | TargetGroupCheck | UrlCheck
    shown: str = ""
    shown_at: float = 0.0


class NotReady(cli.Failure):
    """Exit 1: the multi-line message names the server and says why."""


def _bounded(fn: Callable[[], Poll], seconds: float) -> Poll | None:
    """fn() in a daemon thread, or None if it has not returned within `seconds`: no hung
    DNS lookup or socket can hold the deadline hostage."""
    result: list[Poll] = []
    error: list[BaseException] = []

    def run() -> None:
        try:
            result.append(fn())
        except BaseException as exc:  # re-raised in the caller's thread
            error.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(max(seconds, 0.1))
    if error:
        raise error[0]
    return result[0] if result else None


def wait(phases: Sequence[Callable[[], list[Step]]], timeout: float, interval: float,
         region: str, out: TextIO) -> float:
    """Poll each phase's steps until all are ready, phase after phase (each built when the
    one before it is done: a group's servers are known once its refresh is); returns the
    elapsed seconds. Raises NotReady on a failure or at the deadline, UsageError on AWS access
    errors."""
    start = time.monotonic()
    deadline = start + timeout
    for phase in phases:
        pending = phase()
        delay = interval
        while pending:
            changed = False
            for step in list(pending):
                remaining = deadline - time.monotonic()
                try:
                    poll = _bounded(step.check.poll, remaining + 1)
                except (ClientError, BotoCoreError) as exc:
                    # The endpoint answered the preflight: losing it now is retried, while
                    # rejected credentials or a missing permission will not fix themselves.
                    fatal = aws_error(exc, step.label)
                    if fatal and not isinstance(exc, EndpointConnectionError):
                        raise fatal from exc
                    poll = Poll("waiting", f"AWS error, retrying ({short_error(exc)})")
                now = time.monotonic()
                if poll is None:
                    break  # the deadline passed inside the call
                if poll.line != step.shown or now - step.shown_at >= HEARTBEAT:
                    changed |= poll.line != step.shown
                    step.shown, step.shown_at = poll.line, now
                    print(f"[{step.label}] {poll.line} {elapsed(now - start)}", file=out,
                          flush=True)
                if poll.state == "failed":
                    raise NotReady(_message([step.label], region, start, poll.details))
                if poll.state == "ready":
                    pending.remove(step)
                    for detail in poll.details:
                        print(f"[{step.label}] {detail}", file=out, flush=True)
            if not pending:
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                lines = [f"timed out: --timeout {timeout:g}s passed"]
                for step in pending:
                    lines += [f"[{step.label}]", *(f"  {d}" for d in step.check.details())]
                raise NotReady(_message([s.label for s in pending], region, start, lines))
            delay = interval if changed else min(delay * 1.5, max(MAX_INTERVAL, interval))
            time.sleep(min(delay, remaining))
    return time.monotonic() - start


def _message(labels: list[str], region: str, start: float, lines: list[str]) -> str:
    body = "\n".join(f"  {line}" for line in lines)
    return (f"not ready: {', '.join(labels)} ({region}) after "
            f"{elapsed(time.monotonic() - start)}\n{body}")


def _parser() -> argparse.ArgumentParser:
    p = cli.parser(
        "deploy.readiness_check",
        "Wait until EC2 instances finished cloud-init, are healthy behind their load balancer "
        "and the health URL answers 200.",
        servers="EC2 instance to wait for (repeatable)",
        group="Auto Scaling group: wait for its latest instance refresh, then for its servers "
              "like --instance-id each",
        target_group="ALB target group the instances must be healthy in",
        name="label of the server(s) in messages, e.g. web-1")
    p.add_argument("--launch-template-version", metavar="N", help="with --asg-name: the "
                   "version just deployed; a failed refresh fails the check, and only servers "
                   "of this version are checked")
    p.add_argument("--url", help="health URL that must answer 200")
    p.add_argument("--interval", type=float, default=5.0, metavar="SECONDS",
                   help="first delay between polls, backing off to 30 (default 5)")
    p.add_argument("--ca-file", metavar="PEM", help="CA bundle to trust for --url "
                   "(private CA or self-signed certificate)")
    return cli.identity_flags(p)


def _usage(args: argparse.Namespace) -> None:
    if not (args.instance_ids or args.asg_name or args.url or args.target_group_arn):
        raise UsageError("nothing to check: give --instance-id, --asg-name, "
                         "--target-group-arn or --url")
    cli.check_seconds(args, "timeout", "interval")
    cli.check_region(args.region)
    cli.check_instance_ids(args.instance_ids)
    if args.launch_template_version is not None and not (
            args.asg_name and args.launch_template_version.isdigit()):
        raise UsageError(f"--launch-template-version {args.launch_template_version!r}: "
                         "expected a version number, with --asg-name")
    if args.url and urllib.parse.urlsplit(args.url).scheme not in ("http", "https"):
        raise UsageError(f"--url {args.url!r}: expected an http:// or https:// URL")
    if args.ca_file:
        try:
            ssl.create_default_context(cafile=args.ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise UsageError(f"--ca-file {args.ca_file}: not a readable PEM bundle ({exc})") \
                from exc


def _phases(args: argparse.Namespace, session: Any) -> list[Callable[[], list[Step]]]:
    phases: list[Callable[[], list[Step]]] = []
    if not (args.instance_ids or args.asg_name or args.target_group_arn):
        return [lambda: [Step(args.name or "url", UrlCheck(args.url, args.ca_file))]]
    session = session or session_from(args)
    check_identity(session, args.account)
    group = None
    if args.asg_name:
        group = GroupCheck(session.client("autoscaling", config=AWS_CONFIG), args.asg_name,
                           args.region, args.launch_template_version)
        phases.append(lambda: [Step(f"{args.name or 'group'} {args.asg_name}", group)])

    def instance_ids() -> list[str]:
        if group is not None:  # the group's servers join the given ones, once known
            args.instance_ids = sorted({*args.instance_ids, *group.instances})
        return args.instance_ids

    ec2 = session.client("ec2", config=AWS_CONFIG)
    ssm_client = session.client("ssm", config=SSM_CONFIG)
    phases.append(lambda: [Step(" ".join(filter(None, (args.name, iid))),
                                InstanceCheck(ec2, ssm_client, iid, args.region))
                           for iid in instance_ids()])
    if args.target_group_arn:
        elbv2 = session.client("elbv2", config=AWS_CONFIG)
        phases.append(lambda: [Step(f"{args.name or 'load balancer'} targets",
                                    TargetGroupCheck(elbv2, args.target_group_arn,
                                                     args.instance_ids))])
    if args.url:
        phases.append(lambda: [Step(args.name or "url", UrlCheck(args.url, args.ca_file))])
    return phases


def main(argv: Sequence[str] | None = None, out: TextIO = sys.stdout,
         err: TextIO = sys.stderr, session: Any = None) -> int:
    """`session` stands in for the one the identity flags describe (tests: Stubber)."""
    def body(args: argparse.Namespace) -> int:
        _usage(args)
        took = wait(_phases(args, session), args.timeout, args.interval, args.region, out)
        things = [*args.instance_ids,
                  *([args.target_group_arn] if args.target_group_arn else []),
                  *([args.url] if args.url else [])]
        label = f"{args.name}: " if args.name else ""
        print(f"ready: {label}{', '.join(things)} in {elapsed(took)}", file=out, flush=True)
        return cli.OK

    return cli.run(_parser(), argv, err, body)


if __name__ == "__main__":
    sys.exit(main())
