"""What every deploy tool's command line shares: the flags and their checks, the clock, and
`run()`, the `main()` wrapper that turns each outcome into an exit code and one clear message.

Exit 0: done. 1 (`Failure`): the check or the change did not succeed; the message says where
and why. 2 (`deploy.aws.UsageError`): the command line, region, credentials, permissions or
endpoint are wrong; one line says what to do. Never a traceback.
"""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TextIO

from components import aws_session
from deploy.aws import UsageError, known_region, short_error

OK, FAILED, USAGE = 0, 1, 2
_INSTANCE_ID = re.compile(r"i-[0-9a-f]{8,17}")


class Failure(Exception):
    """Exit 1: the check or the change did not succeed; the message says where and why."""


@dataclass(frozen=True)
class Clock:
    """Time as the tools see it: tests pass one that moves only when the code sleeps."""

    now: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep


SYSTEM_CLOCK = Clock()


def elapsed(seconds: float) -> str:
    s = int(seconds)
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def parser(module: str, description: str, *, servers: str, group: str, target_group: str,
           name: str) -> argparse.ArgumentParser:
    """The flags every tool spells the same way (the program builds them: components.readiness
    `target_args`): the region, the servers, the deadline, a label; the provider's identity
    flags (aws_session) come last, after the tool's own (`identity_flags`)."""
    p = argparse.ArgumentParser(prog=f"python -m {module}", description=description)
    p.add_argument("--region", required=True, help="AWS region of the servers")
    p.add_argument("--instance-id", action="append", default=[], dest="instance_ids",
                   metavar="ID", help=servers)
    p.add_argument("--asg-name", help=group)
    p.add_argument("--target-group-arn", help=target_group)
    p.add_argument("--timeout", type=float, default=900.0, metavar="SECONDS",
                   help="overall deadline (default 900)")
    p.add_argument("--name", help=name)
    return p


def identity_flags(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The Pulumi AWS provider's identity as flags (--profile, --role-arn, --account, ...)."""
    aws_session.add_arguments(p)
    return p


def check_region(region: str) -> None:
    if not known_region(region):
        raise UsageError(f"unknown region {region!r}: use an AWS region code such as "
                         "us-east-1 or eu-west-1")


def check_instance_ids(instance_ids: Sequence[str]) -> None:
    for iid in instance_ids:
        if not _INSTANCE_ID.fullmatch(iid):
            raise UsageError(f"--instance-id {iid!r}: expected an EC2 instance id like "
                             "i-0123456789abcdef0")


def check_seconds(args: argparse.Namespace, *names: str) -> None:
    """Each of the flags `names` (e.g. "timeout") is a positive number of seconds."""
    if any(getattr(args, n) <= 0 for n in names):
        flags = " and ".join(f"--{n}" for n in names)
        raise UsageError(f"{flags} must be positive numbers of seconds" if len(names) > 1
                         else f"{flags} must be a positive number of seconds")


def run(p: argparse.ArgumentParser, argv: Sequence[str] | None, err: TextIO,
        body: Callable[[argparse.Namespace], int], failed: str = "") -> int:
    """Parse `argv`, run `body` and return its exit code; a UsageError prints "error: ..."
    and returns 2, a Failure prints `failed` and its message and returns 1, anything else is
    one line too (a bug or an unforeseen failure is still no traceback)."""
    try:
        args = p.parse_args(argv)
    except SystemExit as exc:  # argparse printed the usage line
        return USAGE if exc.code else OK
    try:
        return body(args)
    except UsageError as exc:
        print(f"error: {exc}", file=err)
        return USAGE
    except Failure as exc:
        print(f"{failed}{exc}", file=err)
        return FAILED
    except KeyboardInterrupt:
        print("interrupted", file=err)
        return FAILED
    except Exception as exc:
        print(f"error: unexpected {type(exc).__name__}: {short_error(exc)}", file=err)
        return FAILED
