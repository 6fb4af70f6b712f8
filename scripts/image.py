"""The stack's OS image: which one is pinned, which is the newest official one, and one command
to move to it.

    python scripts/image.py --stack prod          # pinned vs newest, changes nothing
    python scripts/image.py --stack prod --pin    # pin the newest: pulumi config set ...
    python scripts/image.py --stack prod --pin ami-0123456789abcdef0

Pinning writes `webstack:serverImage` with `pulumi config set`; the next `pulumi up` rolls it
out: a fleet through its instance refresh (refreshMinHealthyPercent stays in service), a single
server by a replacement that takes the Elastic IP only once it is healthy. Exit 0 done, 1 the
lookup found nothing, 2 usage, credentials or Pulumi CLI problem (one line says which).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from botocore.exceptions import BotoCoreError, ClientError

from components import aws_session
from components.config import (
    PROJECT_DIR,
    ConfigError,
    StackConfig,
    full_key,
    parse_stack,
    stack_file_settings,
)
from components.placement import ami_query
from deploy.aws import AWS_CONFIG, UsageError, aws_error, short_error

KEY = full_key("serverImage")


def newest_official(ec2: Any, cfg: StackConfig) -> dict[str, str] | None:
    """The newest image the program would pick with serverImage unset (most_recent)."""
    query = ami_query(replace(cfg.server, image=""))
    images = ec2.describe_images(
        Owners=list(query.owners),
        Filters=[{"Name": k, "Values": [v]} for k, v in query.filters])["Images"]
    return max(images, key=lambda i: (i.get("CreationDate", ""), i["ImageId"]), default=None)


def pin_command(stack: str, image_id: str) -> list[str]:
    return ["pulumi", "config", "set", "--stack", stack, KEY, image_id]


# The provider settings a stack file holds in the clear; its encrypted keys need the Pulumi
# CLI to read, so without them the environment's credentials are used, as boto3 does.
_PLAIN_PROVIDER_KEYS = ("aws:region", "aws:profile", "aws:sharedConfigFiles",
                        "aws:sharedCredentialsFiles", "aws:assumeRoles")


def _client(stack: str, project_dir: Path) -> Any:
    """EC2 as the stack's provider would call it: its region, profile and assumed roles."""
    raw = stack_file_settings(stack, project_dir)
    try:
        settings = aws_session.parse({k: raw.get(k) for k in _PLAIN_PROVIDER_KEYS})
    except aws_session.SettingsError as exc:
        raise UsageError("; ".join(exc.problems)) from None
    return aws_session.session(settings).client("ec2", config=AWS_CONFIG)


def main(argv: Sequence[str] | None = None, *, ec2: Any = None,
         run: Any = subprocess.run) -> int:
    parser = argparse.ArgumentParser(description="Show or pin the stack's OS image.")
    parser.add_argument("--stack", required=True, help="stack name: reads Pulumi.<stack>.yaml")
    parser.add_argument("--pin", nargs="?", const="newest", metavar="AMI",
                        help="pin the newest official image, or the AMI given")
    parser.add_argument("--project-dir", type=Path, default=PROJECT_DIR)
    args = parser.parse_args(argv)
    try:
        cfg = parse_stack(args.stack, project_dir=args.project_dir)
        if args.pin not in (None, "newest"):  # the id given is checked like the setting
            parse_stack(args.stack, {KEY: args.pin}, project_dir=args.project_dir)
        image = None
        if args.pin in (None, "newest"):
            try:
                image = newest_official(ec2 or _client(args.stack, args.project_dir), cfg)
            except (BotoCoreError, ClientError) as exc:
                raise aws_error(exc, "describe-images") or UsageError(
                    f"describe-images failed: {short_error(exc)}") from None
    except (ConfigError, UsageError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    pinned = cfg.server.image or "unset (servers keep the image they were created with)"
    print(f"{args.stack}: {KEY} = {pinned}")
    if args.pin in (None, "newest"):
        if image is None:
            print(f"no official {cfg.server.os} {cfg.server.arch} image found in {cfg.region}",
                  file=sys.stderr)
            return 1
        print(f"newest official {cfg.server.os} {cfg.server.arch} in {cfg.region}: "
              f"{image['ImageId']} ({image.get('Name', '?')}, {image.get('CreationDate', '?')})")
    if args.pin is None:
        return 0
    target = image["ImageId"] if image is not None else args.pin
    if target == cfg.server.image:
        print("already pinned: nothing to do")
        return 0
    command = pin_command(args.stack, target)
    if shutil.which("pulumi") is None and run is subprocess.run:
        print("error: the Pulumi CLI is not on PATH; run: " + " ".join(command), file=sys.stderr)
        return 2
    done = run(command, cwd=args.project_dir, check=False)
    if done.returncode != 0:
        print("error: `" + " ".join(command) + f"` exited {done.returncode}", file=sys.stderr)
        return 2
    print(f"pinned {target}: `pulumi up --stack {args.stack}` rolls it out")
    return 0


if __name__ == "__main__":
    sys.exit(main())
