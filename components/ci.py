"""The `ci` stack's one component: GitHub Actions assumes AWS roles with its OIDC token, so no
AWS key is stored in GitHub. Made once per AWS account and repository by someone allowed to
create IAM roles (`cd ci && pulumi up`); the workflows (scripts/ci_workflows.py) then assume:
preview (pull requests), drift (the default branch's schedule) and deploy (the protected
environment). What each may do is components/ci_policy.py's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components import ci_policy, naming
from components.aws_names import logical
from components.config.reader import ConfigError, shown
from components.instance_role import MANAGED_POLICIES

PROJECT = "webstack-ci"
# its settings, as ci/Pulumi.yaml declares them and the README's table lists them (a test checks)
SETTINGS = ("repository", "appName", "stacks", "environment", "defaultBranch", "stateBucket",
            "oidcProviderArn", "project")
ROLES = ("preview", "drift", "deploy")
# An up that creates a database or cache waits up to an hour for each (devtools/waits.py): the
# deploy's credentials must outlive the whole up, or the provider fails half-way. Its workflow
# asks for these hours (role-duration-seconds).
SESSION_HOURS = {"preview": 1, "drift": 1, "deploy": 4}
_STACK = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
_PROVIDER_ARN = re.compile(
    rf"^arn:aws[a-z-]*:iam::\d{{12}}:oidc-provider/{re.escape(ci_policy.OIDC_HOST)}$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
# Role names are `<app>-<stack>-role-<7 random>` (64 at most): a longer prefix would be cut
# and the deploy role's IAM scope would no longer match it.
MAX_PREFIX = 40


@dataclass(frozen=True)
class CiConfig:
    repository: str
    app: str
    stacks: tuple[str, ...]
    environment: str = "production"
    default_branch: str = "main"
    state_bucket: str = ""
    oidc_provider_arn: str = ""  # an account has one provider per URL: reuse it when it exists
    project: str = "webstack"  # the webstack project's name (Pulumi.yaml): its SSM paths


def parse(raw: Mapping[str, object]) -> CiConfig:
    """The `webstack-ci:*` settings, every problem at once (before any resource)."""
    problems: list[str] = []

    def text(key: str, default: str, pattern: re.Pattern[str] | str, form: str) -> str:
        value = raw.get(key, default)
        if not isinstance(value, str) or not re.match(pattern, value):
            problems.append(f"{PROJECT}:{key} = {shown(value)}: expected {form}")
            return default
        return value

    repository = text("repository", "", ci_policy.REPOSITORY,
                      "the GitHub repository as OWNER/NAME, e.g. acme/shop")
    app = text("appName", "hello", naming.APP_NAME,
               "the webstack appName of the stacks CI deploys (1-32 of a-z, 0-9, '-')")
    stacks = raw.get("stacks", ["dev"])
    if (not isinstance(stacks, list) or not stacks
            or not all(isinstance(s, str) and _STACK.match(s) for s in stacks)):
        problems.append(f"{PROJECT}:stacks = {shown(stacks)}: expected a list of the webstack "
                        "stack names CI deploys, e.g. [staging, prod]")
        stacks = []
    for prefix in (naming.resource_prefix(app, s) for s in stacks):
        if len(prefix) > MAX_PREFIX:
            problems.append(f"{PROJECT}:stacks: {prefix} is longer than {MAX_PREFIX} "
                            "characters: its role names would be cut and fall outside the "
                            "deploy role's IAM scope; use a shorter stack name")
    cfg = CiConfig(
        repository=repository, app=app, stacks=tuple(stacks),
        environment=text("environment", "production", ci_policy.ENVIRONMENT,
                         "a GitHub environment name (letters, digits, space, _ . -)"),
        default_branch=text("defaultBranch", "main", ci_policy.BRANCH,
                            "a branch name such as main"),
        state_bucket=text("stateBucket", "", rf"^$|{_BUCKET.pattern}",
                          "the S3 bucket of `pulumi login s3://BUCKET`, or empty"),
        oidc_provider_arn=text("oidcProviderArn", "", rf"^$|{_PROVIDER_ARN.pattern}",
                               "empty, or the ARN of the account's existing "
                               f"{ci_policy.OIDC_HOST} provider"),
        project=text("project", "webstack", r"^[A-Za-z0-9_.-]{1,100}$",
                     "the webstack project's name (Pulumi.yaml's name)"))
    unknown = sorted(set(raw) - set(SETTINGS))
    problems += [f"{PROJECT}:{k} is not a setting of the ci stack" for k in unknown]
    if problems:
        raise ConfigError(problems)
    return cfg


class GitHubCi(pulumi.ComponentResource):
    """GitHub's OIDC provider (or the account's existing one) and the three roles."""

    role_arns: dict[str, pulumi.Output[str]]
    provider_arn: pulumi.Output[str]

    def __init__(self, name: str, cfg: CiConfig, *, account: str,
                 tags: Mapping[str, str], opts: pulumi.ResourceOptions | None = None):
        super().__init__("webstack:ci:GitHubCi", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        if cfg.oidc_provider_arn:
            self.provider_arn = pulumi.Output.from_input(cfg.oidc_provider_arn)
        else:
            # IAM has fetched GitHub's certificate thumbprints itself since 2023: none given
            self.provider_arn = aws.iam.OpenIdConnectProvider(
                f"{name}-github", url=f"https://{ci_policy.OIDC_HOST}",
                client_id_lists=[ci_policy.OIDC_AUDIENCE], tags=dict(tags), opts=child).arn
        scope = ci_policy.Scope(account=account, app=cfg.app, stacks=cfg.stacks,
                                managed_policies=MANAGED_POLICIES,
                                state_bucket=cfg.state_bucket, project=cfg.project)
        subjects = ci_policy.subjects(cfg.repository, environment=cfg.environment,
                                      branch=cfg.default_branch)
        self.role_arns = {}
        for role in ROLES:
            self.role_arns[role] = self._role(name, role, subjects[role],
                                              ci_policy.role_documents(role, scope), tags)
        self.register_outputs({f"{r}_role_arn": a for r, a in self.role_arns.items()})

    def _role(self, name: str, role: str, subject: str, documents: Sequence[str],
              tags: Mapping[str, str]) -> pulumi.Output[str]:
        child = pulumi.ResourceOptions(parent=self)
        created = aws.iam.Role(
            logical("aws:iam/role:Role", f"{name}-{role}"),
            assume_role_policy=self.provider_arn.apply(
                lambda arn: ci_policy.trust_policy(arn, subject)),
            description=f"GitHub Actions {role} ({subject})",
            max_session_duration=SESSION_HOURS[role] * 3600,
            tags=dict(tags), opts=child)
        for n, document in enumerate(documents, 1):
            policy = aws.iam.Policy(logical("aws:iam/policy:Policy", f"{name}-{role}-{n}"),
                                    policy=document, tags=dict(tags),
                                    description=f"webstack CI {role} ({n}/{len(documents)})",
                                    opts=child)
            aws.iam.RolePolicyAttachment(f"{name}-{role}-{n}", role=created.name,
                                         policy_arn=policy.arn, opts=child)
        return created.arn
