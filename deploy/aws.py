"""AWS calls of the deploy tools and scripts/image.py: the provider's identity
(`session_from`), short per-call limits so an overall deadline holds, and every credential,
permission or endpoint failure told in one line that says what to do — never a traceback."""

from __future__ import annotations

import argparse
import os
from typing import Any

import boto3.session
import botocore.session
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
    ProfileNotFound,
)

from components import aws_session

# Short per-call limits so the overall deadline holds; standard mode retries throttling.
AWS_CONFIG = Config(connect_timeout=3, read_timeout=10,
                    retries={"mode": "standard", "total_max_attempts": 3})
_AUTH_ERRORS = {"AuthFailure", "UnrecognizedClientException", "InvalidClientTokenId",
                "SignatureDoesNotMatch", "ExpiredToken", "ExpiredTokenException",
                "RequestExpired", "InvalidAccessKeyId", "IncompleteSignature"}
_DENIED = {"UnauthorizedOperation", "AccessDenied", "AccessDeniedException"}


class UsageError(Exception):
    """Exit 2: the command line, region, credentials or endpoint are wrong; one line says
    what failed and what to do."""


def aws_error(exc: Exception, what: str) -> UsageError | None:
    """The exit-2 error for a credential, permission or endpoint failure; None otherwise."""
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return UsageError(f"{what}: no usable AWS credentials ({exc}); set AWS_PROFILE or "
                          "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or run `aws configure`")
    if isinstance(exc, ProfileNotFound):
        return UsageError(f"{what}: --profile {exc.kwargs.get('profile')!r} is not in the "
                          "shared config or credentials file (--shared-config-file, "
                          "AWS_CONFIG_FILE)")
    if isinstance(exc, EndpointConnectionError):
        return UsageError(f"{what}: cannot reach the AWS endpoint ({exc}); check the network, "
                          "proxy settings and AWS_ENDPOINT_URL")
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        message = exc.response.get("Error", {}).get("Message", "")
        if code in _AUTH_ERRORS:
            return UsageError(f"{what}: AWS rejected the credentials ({code}: {message}); "
                              "refresh them or choose another profile")
        if code in _DENIED:
            return UsageError(f"{what}: not allowed ({code}: {message}); grant this "
                              "permission to the identity that runs the check")
    return None


def session_from(args: argparse.Namespace) -> boto3.session.Session:
    """The session of the provider's identity flags (aws_session.add_arguments) and the static
    keys in the environment; bad flags are a UsageError."""
    try:
        return aws_session.session(aws_session.from_args(args, args.region, os.environ))
    except aws_session.SettingsError as exc:
        raise UsageError(str(exc)) from exc
    except BotoCoreError as exc:  # e.g. the profile is not in the files
        raise aws_error(exc, "AWS session") or UsageError(f"AWS session: {exc}") from exc


def check_identity(session: Any, account: str | None) -> None:
    """Credentials work, and belong to `account` when given: a check run as another account
    would look at another account's servers."""
    what = "AWS credentials check (sts get-caller-identity)"
    try:  # creating the client reads the profile: a missing one fails here
        identity = session.client("sts", config=AWS_CONFIG).get_caller_identity()
    except (ClientError, BotoCoreError) as exc:
        raise aws_error(exc, what) or UsageError(f"{what}: {short_error(exc)}") from exc
    if account and identity.get("Account") != account:
        raise UsageError(f"running as {identity.get('Arn', '?')} in account "
                         f"{identity.get('Account')}, but the stack deploys to account "
                         f"{account} (--account): give the provider's --profile/--role-arn")


def short_error(exc: Exception) -> str:
    """One line of at most 200 characters (an endpoint may answer with a whole HTML page)."""
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        code = str(err.get("Code", "?"))
        # botocore names an unparsable error by its HTTP status; its message is the raw body
        text = (f"HTTP {code} from the endpoint" if code.isdigit()
                else f"{code}: {err.get('Message', '')}")
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split())[:200]


def known_region(region: str) -> bool:
    session = botocore.session.get_session()
    return any(region in session.get_available_regions("ec2", partition)
               for partition in session.get_available_partitions())
