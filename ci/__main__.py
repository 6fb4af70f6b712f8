"""webstack's `ci` stack: GitHub Actions' OIDC provider and roles (components/ci.py)."""

import sys
from pathlib import Path

# Pulumi runs this program from ci/: the project's components are one level up.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pulumi
from pulumi.runtime import config as runtime_config

from components import ci, placement

prefix = f"{ci.PROJECT}:"
passed = set(runtime_config.CONFIG.get()) | set(runtime_config.get_config_env() or {})
raw = {}
for key in sorted(k for k in passed if k.startswith(prefix)):
    short = key.removeprefix(prefix)
    raw[short] = (pulumi.Config(ci.PROJECT).get_object(short) if short == "stacks"
                  else runtime_config.get_config(key))
cfg = ci.parse(raw)
account = placement.account_id()
github = ci.GitHubCi(f"webstack-ci-{pulumi.get_stack()}", cfg, account=account, tags={
    "webstack:project": ci.PROJECT, "webstack:repository": cfg.repository,
    "ManagedBy": "pulumi"})

pulumi.export("oidcProviderArn", github.provider_arn)
for role, arn in github.role_arns.items():
    pulumi.export(f"{role}RoleArn", arn)
pulumi.export("environment", cfg.environment)
pulumi.export("defaultBranch", cfg.default_branch)
pulumi.export("repository", cfg.repository)
