"""SSM Run Command on one server: send a shell script (`AWS-RunShellScript`), then poll its
invocation until it has finished or the caller's time is up."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from deploy.cli import SYSTEM_CLOCK, Clock

# Run Command states: https://docs.aws.amazon.com/systems-manager/latest/userguide/monitor-commands.html
BUSY = {"Pending", "InProgress", "Delayed", "Cancelling"}


@dataclass(frozen=True)
class Invocation:
    """The command on one server as last seen: finished (Success, Failed, TimedOut, ...) or
    still BUSY when the caller's time ran out."""

    command_id: str
    status: str
    stdout: str = ""
    stderr: str = ""
    code: int = -1
    details: str = ""

    @property
    def finished(self) -> bool:
        return self.status not in BUSY


def send(ssm: Any, instance_id: str, script: str, *, comment: str, deliver_seconds: int,
         execution_seconds: int | None = None, log_group: str | None = None) -> str:
    """Send `script` to the server; its command id. `deliver_seconds` is how long SSM may try
    to deliver it, `execution_seconds` how long the agent lets it run (SSM's default: 1 h);
    with `log_group` the agent also writes its output there as it comes (streams
    `<command id>/<instance id>/aws-runShellScript/stdout` and `.../stderr`)."""
    parameters = {"commands": [script]}
    if execution_seconds is not None:
        parameters["executionTimeout"] = [str(execution_seconds)]
    extra: dict[str, Any] = {}
    if log_group:
        extra["CloudWatchOutputConfig"] = {"CloudWatchLogGroupName": log_group,
                                           "CloudWatchOutputEnabled": True}
    sent = ssm.send_command(InstanceIds=[instance_id], DocumentName="AWS-RunShellScript",
                            Parameters=parameters, TimeoutSeconds=deliver_seconds,
                            Comment=comment[:100], **extra)
    return sent["Command"]["CommandId"]


def wait(ssm: Any, command_id: str, instance_id: str, *, until: float, poll: float,
         clock: Clock = SYSTEM_CLOCK) -> Invocation:
    """Poll every `poll` seconds until the command has finished on the server or `clock.now()`
    reaches `until`. Right after send() SSM may not know the invocation yet: that is Pending."""
    while True:
        try:
            inv: dict[str, Any] = ssm.get_command_invocation(CommandId=command_id,
                                                             InstanceId=instance_id)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "InvocationDoesNotExist":
                raise
            inv = {"Status": "Pending"}
        seen = Invocation(command_id, inv.get("Status", "?"),
                          inv.get("StandardOutputContent", "") or "",
                          inv.get("StandardErrorContent", "") or "",
                          inv.get("ResponseCode", -1), inv.get("StatusDetails", "") or "")
        remaining = until - clock.now()
        if seen.finished or remaining <= 0:
            return seen
        clock.sleep(min(poll, max(remaining, 0.1)))
