"""The AWS identity of the Pulumi AWS provider, for every boto3 call the program makes.

The provider reads its account, region and role from stack config (`aws:profile`,
`aws:assumeRoles`, `aws:sharedConfigFiles`, static keys, ...); boto3 alone sees only the
environment, so sizing at preview and the deploy-time commands (readiness gate, rollout) would
ask another account, or none. `parse()` reads those settings (raw config strings, as
`pulumi.runtime.config` holds them) into `Settings`; `session()` builds the boto3 session from
them — profile and shared files, static keys, then each role of the chain through STS — and
both the program and the commands call it. `flags()` carries the settings to a command line
and `from_args()` reads them back: never a key (those go through `environment()` only, which
the program passes as Pulumi secrets).

Kept free of Pulumi imports except in `provider_settings()`: the commands import this module.
"""

from __future__ import annotations

import argparse
import functools
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import boto3.session
import botocore.session
from botocore.config import Config
from botocore.credentials import (
    AssumeRoleCredentialFetcher,
    CredentialProvider,
    CredentialResolver,
    DeferredRefreshableCredentials,
)
from botocore.exceptions import NoCredentialsError

# What the provider reads from stack config and we honour (pulumi-aws v7 names).
KEYS = ("aws:region", "aws:profile", "aws:sharedConfigFiles", "aws:sharedCredentialsFiles",
        "aws:accessKey", "aws:secretKey", "aws:token", "aws:assumeRoles")
# Provider settings that change the identity but that we cannot follow: refused, not ignored.
_UNSUPPORTED = {
    "aws:assumeRoleWithWebIdentity": "set AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE in the "
                                     "environment instead (the provider and boto3 both read them)",
    "aws:assumeRole": "pulumi-aws v7 reads aws:assumeRoles (a list of {roleArn, ...})",
}
# Environment variables through which a command receives the stack's static keys.
KEY_ENV = {"access_key": "WEBSTACK_AWS_ACCESS_KEY_ID",
           "secret_key": "WEBSTACK_AWS_SECRET_ACCESS_KEY",
           "token": "WEBSTACK_AWS_SESSION_TOKEN"}
STS_CONFIG = Config(connect_timeout=3, read_timeout=10,
                    retries={"mode": "standard", "total_max_attempts": 3})

_ROLE_ARN = re.compile(r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}")
_POLICY_ARN = re.compile(r"arn:aws[a-z-]*:iam::(aws|\d{12}):policy/[\w+=,.@/-]{1,512}")
_SESSION_NAME = re.compile(r"[\w+=,.@-]{2,64}")
_EXTERNAL_ID = re.compile(r"[\w+=,.@:/-]{2,1224}")
_GO_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
MIN_DURATION, MAX_DURATION = 900, 43200  # AssumeRole: 15 minutes to 12 hours


class SettingsError(ValueError):
    """The provider settings (or the flags carrying them) are malformed; one line each."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


@dataclass(frozen=True)
class AssumeRole:
    """One `aws:assumeRoles` entry; empty/zero fields are not sent to STS."""

    role_arn: str
    session_name: str = ""
    external_id: str = ""
    duration_seconds: int = 0
    source_identity: str = ""
    policy: str = ""
    policy_arns: tuple[str, ...] = ()
    tags: tuple[tuple[str, str], ...] = ()
    transitive_tag_keys: tuple[str, ...] = ()

    def sts_arguments(self) -> dict[str, Any]:
        """AssumeRole's parameters besides RoleArn (botocore names a session if we do not)."""
        args: dict[str, Any] = {
            "RoleSessionName": self.session_name, "ExternalId": self.external_id,
            "DurationSeconds": self.duration_seconds, "SourceIdentity": self.source_identity,
            "Policy": self.policy, "PolicyArns": [{"arn": a} for a in self.policy_arns],
            "Tags": [{"Key": k, "Value": v} for k, v in self.tags],
            "TransitiveTagKeys": list(self.transitive_tag_keys)}
        return {k: v for k, v in args.items() if v}


@dataclass(frozen=True)
class StaticKeys:
    access_key: str = field(repr=False)
    secret_key: str = field(repr=False)
    token: str = field(default="", repr=False)


@dataclass(frozen=True)
class Settings:
    region: str
    profile: str = ""
    config_file: str = ""
    credentials_file: str = ""
    roles: tuple[AssumeRole, ...] = ()
    keys: StaticKeys | None = field(default=None, repr=False)


# A role field: its aws:assumeRoles key, the command-line flag and the kind of value.
@dataclass(frozen=True)
class _RoleField:
    key: str
    flag: str
    kind: str  # text | list | tags | duration


ROLE_ARN_FLAG = "--role-arn"
_ROLE_FIELDS = (
    _RoleField("sessionName", "--session-name", "text"),
    _RoleField("externalId", "--external-id", "text"),
    _RoleField("duration", "--role-duration", "duration"),
    _RoleField("sourceIdentity", "--source-identity", "text"),
    _RoleField("policy", "--role-policy", "text"),
    _RoleField("policyArns", "--role-policy-arn", "list"),
    _RoleField("tags", "--role-tag", "tags"),
    _RoleField("transitiveTagKeys", "--role-transitive-tag-key", "list"),
)
_ROLE_KEYS = ("roleArn", *(f.key for f in _ROLE_FIELDS))


def go_duration_seconds(text: str) -> int | None:
    """A Go duration ("1h", "90m", "1h30m", "3600s") in whole seconds; None if malformed."""
    if not text or _GO_DURATION.sub("", text):
        return None
    return round(sum(float(n) * _UNIT_SECONDS[u] for n, u in _GO_DURATION.findall(text)))


def _text(value: Any, name: str, pattern: re.Pattern[str] | None, form: str,
          problems: list[str]) -> str:
    if not isinstance(value, str) or (pattern is not None and not pattern.fullmatch(value)):
        problems.append(f"{name}: expected {form}")
        return ""
    return value


def _strings(value: Any, name: str, problems: list[str]) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        problems.append(f"{name}: expected a list of non-empty strings")
        return ()
    return tuple(value)


def _role(item: Any, name: Callable[[str], str], problems: list[str]) -> AssumeRole | None:
    """One role from its aws:assumeRoles shape; `name(key)` says where a value came from."""
    if not isinstance(item, dict):
        problems.append(f"{name('')}: expected an object such as "
                        '{"roleArn": "arn:aws:iam::123456789012:role/deploy"}')
        return None
    unknown = sorted(set(item) - set(_ROLE_KEYS))
    if unknown:
        problems.append(f"{name(unknown[0])}: unknown field; expected "
                        + ", ".join(_ROLE_KEYS))
    start = len(problems)
    arn = _text(item.get("roleArn"), name("roleArn"), _ROLE_ARN,
                "an IAM role ARN such as arn:aws:iam::123456789012:role/deploy", problems)
    fields: dict[str, Any] = {}
    if "sessionName" in item:
        fields["session_name"] = _text(item["sessionName"], name("sessionName"), _SESSION_NAME,
                                       "2-64 of letters, digits and +=,.@_-", problems)
    if "externalId" in item:
        fields["external_id"] = _text(item["externalId"], name("externalId"), _EXTERNAL_ID,
                                      "2-1224 of letters, digits and +=,.@:/_-", problems)
    if "sourceIdentity" in item:
        fields["source_identity"] = _text(item["sourceIdentity"], name("sourceIdentity"),
                                          _SESSION_NAME, "2-64 of letters, digits and +=,.@_-",
                                          problems)
    if "duration" in item:
        seconds = go_duration_seconds(item["duration"]) if isinstance(item["duration"], str) \
            else None
        if seconds is None or not MIN_DURATION <= seconds <= MAX_DURATION:
            problems.append(f"{name('duration')}: expected a duration from 15m to 12h such as "
                            "1h or 3600s")
        fields["duration_seconds"] = seconds or 0
    if "policy" in item:
        fields["policy"] = _text(item["policy"], name("policy"), None, "a JSON policy document",
                                 problems)
        try:
            if not isinstance(json.loads(fields["policy"] or "null"), dict):
                raise ValueError
        except ValueError:
            problems.append(f"{name('policy')}: expected a JSON policy document (an object)")
    if "policyArns" in item:
        fields["policy_arns"] = _strings(item["policyArns"], name("policyArns"), problems)
        bad = [a for a in fields["policy_arns"] if not _POLICY_ARN.fullmatch(a)]
        if bad:
            problems.append(f"{name('policyArns')}: {bad[0]!r} is not an IAM policy ARN")
    if "tags" in item:
        tags = item["tags"]
        if not isinstance(tags, dict) or not all(
                isinstance(k, str) and k and isinstance(v, str) for k, v in tags.items()):
            problems.append(f"{name('tags')}: expected a map of tag names to strings")
        else:
            fields["tags"] = tuple(sorted(tags.items()))
    if "transitiveTagKeys" in item:
        fields["transitive_tag_keys"] = _strings(item["transitiveTagKeys"],
                                                 name("transitiveTagKeys"), problems)
    return AssumeRole(arn, **fields) if len(problems) == start else None


def _roles(items: Sequence[Any], name: Callable[[int, str], str],
           problems: list[str]) -> tuple[AssumeRole, ...]:
    roles = [_role(item, functools.partial(name, i), problems) for i, item in enumerate(items)]
    return tuple(r for r in roles if r is not None)


def _config_name(i: int, key: str) -> str:
    return f"aws:assumeRoles[{i}]" + (f".{key}" if key else "")


def _one_file(raw: Mapping[str, str | None], key: str, problems: list[str]) -> str:
    """The provider takes a list of files; boto3 reads one of each kind."""
    text = raw.get(key)
    if not text:
        return ""
    try:
        files = json.loads(text)
    except ValueError:
        files = None
    if not isinstance(files, list) or not all(isinstance(f, str) and f for f in files):
        problems.append(f"{key}: expected a list of file paths such as [\"~/.aws/config\"]")
        return ""
    if len(files) > 1:
        problems.append(f"{key}: {len(files)} files given; the deploy-time checks read one of "
                        "each kind: merge them into one file")
        return ""
    return files[0] if files else ""


def parse(raw: Mapping[str, str | None]) -> Settings:
    """The provider's settings from raw `aws:*` config strings; SettingsError names each bad
    key (a secret's value is never quoted)."""
    problems = [f"{key} is set: the deploy-time checks cannot use it; {why}"
                for key, why in _UNSUPPORTED.items() if raw.get(key)]
    access, secret, token = (raw.get(k) or "" for k in ("aws:accessKey", "aws:secretKey",
                                                       "aws:token"))
    keys = None
    if access and secret:
        keys = StaticKeys(access, secret, token)
    elif access or secret or token:
        problems.append("aws:accessKey and aws:secretKey: set both (and aws:token only with "
                        "them), or neither")
    roles: tuple[AssumeRole, ...] = ()
    if raw.get("aws:assumeRoles"):
        try:
            items = json.loads(raw["aws:assumeRoles"] or "")
        except ValueError:
            items = None
        if not isinstance(items, list):
            problems.append('aws:assumeRoles: expected a list such as [{"roleArn": '
                            '"arn:aws:iam::123456789012:role/deploy"}]')
        else:
            roles = _roles(items, _config_name, problems)
    settings = Settings(
        region=raw.get("aws:region") or "", profile=raw.get("aws:profile") or "",
        config_file=_one_file(raw, "aws:sharedConfigFiles", problems),
        credentials_file=_one_file(raw, "aws:sharedCredentialsFiles", problems),
        roles=roles, keys=keys)
    if problems:
        raise SettingsError(problems)
    return settings


def provider_settings() -> Settings:
    """This stack's provider settings, inside a Pulumi program; a ConfigError if malformed."""
    from pulumi.runtime import config as runtime_config

    from components.config import ConfigError

    try:
        return parse({key: runtime_config.get_config(key)
                      for key in (*KEYS, *_UNSUPPORTED)})
    except SettingsError as exc:
        raise ConfigError(exc.problems) from exc


# --- the session ----------------------------------------------------------------------------


class _Given(CredentialProvider):
    """A credential chain of one: the role's deferred credentials."""

    METHOD = "assume-role"

    def __init__(self, credentials: DeferredRefreshableCredentials) -> None:
        super().__init__()
        self._credentials = credentials

    def load(self) -> Any:  # botocore types it as Literal[True]
        return self._credentials


def _core(settings: Settings) -> botocore.session.Session:
    core = botocore.session.Session(profile=settings.profile or None)
    if settings.config_file:
        core.set_config_variable("config_file", settings.config_file)
    if settings.credentials_file:
        core.set_config_variable("credentials_file", settings.credentials_file)
    return core


def _assumed(source: botocore.session.Session, role: AssumeRole,
             settings: Settings) -> botocore.session.Session:
    """A session that calls as `role`, assumed with `source`'s credentials on first use (a
    cached catalog at preview needs no STS call) and again before they expire."""

    @functools.cache
    def fetcher() -> AssumeRoleCredentialFetcher:
        credentials = source.get_credentials()
        if credentials is None:
            raise NoCredentialsError()
        return AssumeRoleCredentialFetcher(
            functools.partial(source.create_client, region_name=settings.region,
                              config=STS_CONFIG),
            credentials, role.role_arn, extra_args=role.sts_arguments())

    assumed = _core(settings)
    assumed.register_component("credential_provider", CredentialResolver([_Given(
        DeferredRefreshableCredentials(lambda: fetcher().fetch_credentials(), "assume-role"))]))
    return assumed


def session(settings: Settings) -> boto3.session.Session:
    """The provider's identity as a boto3 session: profile and shared files (or the stack's
    static keys), then each role of `aws:assumeRoles` in order, in the provider's region."""
    core = _core(settings)
    if settings.keys is not None:
        core.set_credentials(settings.keys.access_key, settings.keys.secret_key,
                             settings.keys.token or None)
    for role in settings.roles:
        core = _assumed(core, role, settings)
    return boto3.session.Session(botocore_session=core, region_name=settings.region or None)


# --- command lines ----------------------------------------------------------------------------


def flags(settings: Settings) -> list[str]:
    """The settings as command-line flags for `from_args`: no key material (see
    `environment`); each role's options follow its --role-arn."""
    args: list[str] = []
    for flag, value in (("--profile", settings.profile),
                        ("--shared-config-file", settings.config_file),
                        ("--shared-credentials-file", settings.credentials_file)):
        if value:
            args += [flag, value]
    for role in settings.roles:
        args += [ROLE_ARN_FLAG, role.role_arn]
        values: dict[str, list[str]] = {
            "sessionName": [role.session_name], "externalId": [role.external_id],
            "duration": [f"{role.duration_seconds}s" if role.duration_seconds else ""],
            "sourceIdentity": [role.source_identity], "policy": [role.policy],
            "policyArns": list(role.policy_arns), "tags": [f"{k}={v}" for k, v in role.tags],
            "transitiveTagKeys": list(role.transitive_tag_keys)}
        for f in _ROLE_FIELDS:
            for value in values[f.key]:
                if value:
                    args += [f.flag, value]
    return args


def environment(settings: Settings) -> dict[str, str]:
    """The stack's static keys as the environment a command reads them from (empty if none):
    for `command.local.Command(environment=...)` as secrets, never a command line."""
    keys = settings.keys
    if keys is None:
        return {}
    values = {"access_key": keys.access_key, "secret_key": keys.secret_key, "token": keys.token}
    return {KEY_ENV[name]: value for name, value in values.items() if value}


class _RoleOption(argparse.Action):
    """--role-arn starts a role; the role options after it fill it in, in aws:assumeRoles
    shape, so that flags and config go through the same validation."""

    def __init__(self, *args: Any, role_field: _RoleField | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.role_field = role_field

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        roles: list[dict[str, Any]] = namespace.aws_roles
        if self.role_field is None:
            roles.append({"roleArn": values})
            return
        if not roles:
            raise argparse.ArgumentError(self, f"must follow the {ROLE_ARN_FLAG} it applies to")
        role, f = roles[-1], self.role_field
        if f.kind == "list":
            role.setdefault(f.key, []).append(values)
        elif f.kind == "tags":
            tag, sep, value = str(values).partition("=")
            if not sep or not tag:
                raise argparse.ArgumentError(self, f"{values!r}: expected KEY=VALUE")
            role.setdefault(f.key, {})[tag] = value
        else:
            role[f.key] = values


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The provider's identity flags (`flags()`), and --account to refuse another account."""
    group = parser.add_argument_group(
        "AWS identity", "the Pulumi AWS provider's settings (the program passes them); static "
        f"keys come only from {', '.join(KEY_ENV.values())}")
    group.add_argument("--profile", default="", help="shared config profile (aws:profile)")
    group.add_argument("--shared-config-file", default="", metavar="PATH")
    group.add_argument("--shared-credentials-file", default="", metavar="PATH")
    group.add_argument(ROLE_ARN_FLAG, action=_RoleOption, dest="aws_roles", default=[],
                       metavar="ARN", help="role to assume, after the ones before it "
                       "(aws:assumeRoles; repeatable)")
    for f in _ROLE_FIELDS:
        group.add_argument(f.flag, action=_RoleOption, role_field=f, dest="aws_roles",
                           metavar="KEY=VALUE" if f.kind == "tags" else "VALUE",
                           help=f"{f.key} of the --role-arn before it")
    group.add_argument("--account", metavar="ID", help="the provider's account: refuse to "
                       "run (exit 2) as any other")


def from_args(args: argparse.Namespace, region: str,
              environ: Mapping[str, str]) -> Settings:
    """The Settings `flags()` wrote, and the static keys from the environment `environment()`
    wrote; SettingsError names the flag."""
    problems: list[str] = []

    def flag(i: int, key: str) -> str:
        by_key = {"roleArn": ROLE_ARN_FLAG, **{f.key: f.flag for f in _ROLE_FIELDS}}
        return f"{by_key.get(key, ROLE_ARN_FLAG)} (role {i + 1})"

    roles = _roles(args.aws_roles, flag, problems)
    if args.account is not None and not re.fullmatch(r"\d{12}", args.account):
        problems.append(f"--account {args.account!r}: expected a 12-digit AWS account id")
    access, secret, token = (environ.get(KEY_ENV[k], "") for k in KEY_ENV)
    if bool(access) != bool(secret) or (token and not access):
        problems.append(f"{KEY_ENV['access_key']} and {KEY_ENV['secret_key']}: set both or "
                        "neither")
    if problems:
        raise SettingsError(problems)
    return Settings(region=region, profile=args.profile, config_file=args.shared_config_file,
                    credentials_file=args.shared_credentials_file, roles=roles,
                    keys=StaticKeys(access, secret, token) if access and secret else None)
