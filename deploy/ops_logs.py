"""`webstack logs`: the stack's CloudWatch log groups (the agent ships each server's nginx, app
and cloud-init logs to one stream per instance id), merged by time across servers and groups,
one line per event: `TIME INSTANCE KIND message`. With --follow it polls, with a backoff
bounded to FOLLOW_MAX while nothing comes, until Ctrl-C."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO

from deploy.aws import UsageError
from deploy.cli import OK, Clock
from deploy.rollout import aws_call

# what the positional argument selects: kinds are the groups' last name parts (naming.log_groups)
KINDS = {"nginx": ("nginx-access", "nginx-error"), "app": ("app",),
         "cloud-init": ("cloud-init",)}
_SINCE = re.compile(r"([1-9][0-9]*)([smhd])")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}
FOLLOW_MIN, FOLLOW_MAX = 2.0, 30.0
# Agents ship in batches, so an event can land after a later one from another server: each
# poll re-reads this window before the newest event seen (the event ids dedupe).
LATE_MS = 60_000


def since_seconds(text: str) -> int:
    m = _SINCE.fullmatch(text)
    if m is None:
        raise UsageError(f"--since {text!r}: expected a number and a unit: 30s, 10m, 2h or 1d")
    return int(m.group(1)) * _UNIT[m.group(2)]


def groups(names: Sequence[str], kind: str | None) -> dict[str, str]:
    """The log groups to read by kind, the servers' four without `kind` (not `run`'s: its
    streams are commands' output, which `webstack run` shows)."""
    by_kind = {name.rsplit("/", 1)[-1]: name for name in names}
    wanted = KINDS[kind] if kind else tuple(k for kinds in KINDS.values() for k in kinds)
    missing = [k for k in wanted if k not in by_kind]
    if missing:
        raise UsageError(f"the stack's logGroupNames has no {', '.join(missing)} group "
                         f"({', '.join(names) or 'none'})")
    return {k: by_kind[k] for k in wanted}


@dataclass(frozen=True, order=True)
class Line:
    timestamp: int  # ms since the epoch
    instance: str
    kind: str
    message: str
    event_id: str = field(compare=False)

    def __str__(self) -> str:
        when = datetime.fromtimestamp(self.timestamp / 1000, UTC)
        return (f"{when.strftime('%Y-%m-%dT%H:%M:%S.')}{when.microsecond // 1000:03d}Z "
                f"{self.instance} {self.kind} {self.message.rstrip()}")


def fetch(logs: Any, by_kind: Mapping[str, str], start_ms: int) -> list[Line]:
    """Every event of the groups since `start_ms`, all pages, in time order."""
    lines: list[Line] = []
    for kind, group in by_kind.items():
        kwargs: dict[str, Any] = {"logGroupName": group, "startTime": start_ms}
        while True:
            page = aws_call(f"logs filter-log-events on {group}", logs.filter_log_events,
                            **kwargs)
            lines += [Line(e["timestamp"], e.get("logStreamName", "?"), kind,
                           e.get("message", ""), e["eventId"]) for e in page.get("events", [])]
            token = page.get("nextToken")
            if not token or token == kwargs.get("nextToken"):
                break
            kwargs["nextToken"] = token
    return sorted(lines)


def show(logs: Any, by_kind: Mapping[str, str], *, since: int, follow: bool, out: TextIO,
         clock: Clock, wall: Callable[[], float] = time.time) -> int:
    """Print the events of the last `since` seconds; with `follow`, then the new ones as they
    come until Ctrl-C (exit 0 then too)."""
    start = int((wall() - since) * 1000)
    seen: dict[str, int] = {}  # event id -> timestamp, within the window re-read
    delay = FOLLOW_MIN
    try:
        while True:
            new = [line for line in fetch(logs, by_kind, start) if line.event_id not in seen]
            for line in new:
                print(line, file=out, flush=True)
                seen[line.event_id] = line.timestamp
            if not follow:
                return OK
            if new:
                start = max(start, new[-1].timestamp - LATE_MS)
                seen = {e: t for e, t in seen.items() if t >= start}
                delay = FOLLOW_MIN
            else:
                delay = min(delay * 2, FOLLOW_MAX)
            clock.sleep(delay)
    except KeyboardInterrupt:
        return OK
