"""The ci stack (components/ci.py, components/ci_policy.py): GitHub's OIDC trust, exactly one
subject per role, and permissions that are exact actions, real API calls, within IAM's limits;
the coverage of every type the program registers is in test_program.py (it plans them all)."""

from __future__ import annotations

import json
import re

import botocore.session
import pytest
import yaml

from components import ci, ci_policy
from components.aws_names import RULES
from components.config import PROJECT_DIR
from components.instance_role import MANAGED_POLICIES
from devtools.mockrun import MockRun, run_ci
from tests.cases import CI_SETTINGS
from tests.unit.test_names import physical_names

ACCOUNT = "123456789012"
SCOPE = ci_policy.Scope(ACCOUNT, "shop", ("staging", "prod"), MANAGED_POLICIES, "state")
_BOTOCORE = {"elasticloadbalancing": "elbv2"}  # IAM prefix -> botocore service


@pytest.fixture(scope="module")
def run(aws_env_module) -> MockRun:
    out = run_ci("ci", CI_SETTINGS)
    assert out.error is None, out.error
    return out


def _docs(role: str) -> list[dict]:
    return [json.loads(d) for d in ci_policy.role_documents(role, SCOPE)]


def _actions(docs: list[dict]) -> set[str]:
    out: set[str] = set()
    for d in docs:
        for st in d["Statement"]:
            acts = st["Action"]
            out.update([acts] if isinstance(acts, str) else acts)
    return out


# --- the actions ---------------------------------------------------------------------------------

def test_every_action_is_exact_and_a_real_api_call_or_a_known_permission():
    session = botocore.session.get_session()
    for action in sorted(ci_policy.every_action()):
        assert ci_policy.ACTION.match(action), f"{action}: not an exact action (no wildcards)"
        prefix, operation = action.split(":")
        if action in ci_policy.PERMISSION_ONLY:
            continue
        operations: list[str] = session.get_service_model(
            _BOTOCORE.get(prefix, prefix)).operation_names  # type: ignore[assignment]
        assert operation in operations, f"{action}: no such {prefix} operation"


def test_a_type_without_a_row_is_a_key_error_naming_it():
    with pytest.raises(KeyError, match="aws:sqs/queue:Queue"):
        ci_policy.needed({"aws:sqs/queue:Queue"})


@pytest.mark.parametrize("role", ci.ROLES)
def test_no_statement_has_a_wildcard_action_and_every_document_fits_iam(role):
    docs = _docs(role)
    assert 1 <= len(docs) <= 10  # IAM's default quota of managed policies per role
    for d in docs:
        assert len("".join(json.dumps(d).split())) <= ci_policy.MANAGED_POLICY_CHARS
        sids = [st["Sid"] for st in d["Statement"]]
        assert len(sids) == len(set(sids))
        for st in d["Statement"]:
            acts = [st["Action"]] if isinstance(st["Action"], str) else st["Action"]
            assert st["Effect"] == "Allow" and "NotAction" not in st
            assert all("*" not in a and "?" not in a for a in acts), st["Sid"]


def test_preview_reads_no_secret_values_and_writes_nothing():
    acts = _actions(_docs("preview")) - {"s3:PutObject", "s3:DeleteObject"}
    assert acts and not acts & ci_policy.SECRET_READS
    assert all(ci_policy.READ.match(a) for a in acts), acts
    # the lookups a pull request's plan makes
    assert {"ec2:DescribeImages", "ec2:DescribeInstanceTypes", "sts:GetCallerIdentity"} <= acts


def test_drift_reads_everything_back_and_writes_nothing():
    acts = _actions(_docs("drift")) - {"s3:PutObject", "s3:DeleteObject"}
    assert acts >= ci_policy.SECRET_READS  # refresh reads the secret versions back
    assert all(ci_policy.READ.match(a) for a in acts), acts
    assert "ecr:BatchGetImage" in acts  # the image's manifest, read back
    assert {a for a in acts if ":Batch" in a} == {"ecr:BatchGetImage",
                                                  "ecr:BatchCheckLayerAvailability"}
    assert _actions(_docs("preview")) <= _actions(_docs("drift")) | {"s3:PutObject"}


def test_only_the_state_lock_is_writable_without_deploying():
    for role in ("preview", "drift"):
        writes = [st for d in _docs(role) for st in d["Statement"]
                  if set(st["Action"]) & {"s3:PutObject", "s3:DeleteObject"}]
        assert [st["Resource"] for st in writes] == ["arn:aws:s3:::state/.pulumi/locks/*"]


@pytest.mark.parametrize("role", ["drift", "deploy"])
def test_secret_values_are_readable_only_of_the_deployed_stacks(role):
    reads = [st for d in _docs(role) for st in d["Statement"]
             if set(st["Action"]) & ci_policy.SECRET_READS]
    by_sid = {st["Sid"]: st for st in reads}
    assert set(by_sid) == {"OurParameters", "OurSecretValues"}
    assert by_sid["OurParameters"]["Resource"] == [
        f"arn:aws:ssm:*:{ACCOUNT}:parameter/webstack/{s}/shop/*" for s in ("staging", "prod")]
    assert by_sid["OurSecretValues"]["Condition"] == {"StringEquals": {
        "aws:ResourceTag/webstack:project": "webstack", "aws:ResourceTag/webstack:app": "shop",
        "aws:ResourceTag/webstack:stack": ["staging", "prod"]}}


def test_run_command_runs_only_the_shell_document_on_the_deployed_stacks_servers():
    sends = [st for d in _docs("deploy") for st in d["Statement"]
             if "ssm:SendCommand" in st["Action"]]
    assert [st["Action"] for st in sends] == [["ssm:SendCommand"]] * 2
    assert sends[0]["Resource"] == "arn:aws:ssm:*::document/AWS-RunShellScript"
    assert sends[1]["Resource"] == f"arn:aws:ec2:*:{ACCOUNT}:instance/*"
    assert sends[1]["Condition"] == {"StringEquals": {
        "ssm:resourceTag/webstack:project": "webstack", "ssm:resourceTag/webstack:app": "shop",
        "ssm:resourceTag/webstack:stack": ["staging", "prod"]}}
    for role in ("preview", "drift"):
        assert "ssm:SendCommand" not in _actions(_docs(role))


def test_deploy_writes_iam_only_for_its_stacks():
    statements = [st for d in _docs("deploy") for st in d["Statement"]]
    assert _actions(_docs("drift")) <= _actions(_docs("deploy"))
    ours = {f"arn:aws:iam::{ACCOUNT}:role/shop-{s}-*" for s in ("staging", "prod")}
    for st in statements:
        acts = [st["Action"]] if isinstance(st["Action"], str) else st["Action"]
        iam = [a for a in acts if a.startswith("iam:")]
        if not iam:
            continue
        assert st["Resource"] != "*", st["Sid"]
        if "iam:PassRole" in iam:
            assert set(st["Resource"]) == ours and st["Condition"] == {
                "StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}
        if "iam:AttachRolePolicy" in iam:
            assert st["Condition"] == {"ArnEquals": {"iam:PolicyARN": list(MANAGED_POLICIES)}}
        if "iam:CreateServiceLinkedRole" in iam:
            assert set(st["Condition"]["StringEquals"]["iam:AWSServiceName"]) == set(
                ci_policy.SERVICE_LINKED)


# --- trust -------------------------------------------------------------------------------------

def _trust(run: MockRun) -> dict[str, dict]:
    roles = run.of_type("aws:iam/role:Role")
    return {r.name.rsplit("-", 1)[1]: json.loads(r.inputs["assumeRolePolicy"]) for r in roles}


def test_each_role_trusts_exactly_one_subject_of_the_repository(run):
    trust = _trust(run)
    assert set(trust) == set(ci.ROLES)
    expected = {"preview": "repo:acme/shop:pull_request",
                "drift": "repo:acme/shop:ref:refs/heads/main",
                "deploy": "repo:acme/shop:environment:production"}
    provider = run.one("aws:iam/openIdConnectProvider:OpenIdConnectProvider")
    hours = {r.name.rsplit("-", 1)[1]: r.inputs["maxSessionDuration"] / 3600
             for r in run.of_type("aws:iam/role:Role")}
    assert hours == {"preview": 1, "drift": 1, "deploy": 4}  # an up may wait an hour for RDS
    for role, policy in trust.items():
        (st,) = policy["Statement"]
        assert st["Action"] == "sts:AssumeRoleWithWebIdentity" and st["Effect"] == "Allow"
        assert st["Principal"] == {"Federated": provider.state["arn"]}
        # StringEquals only: no StringLike, so no pattern can admit a fork or another branch
        assert st["Condition"] == {"StringEquals": {
            "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
            "token.actions.githubusercontent.com:sub": expected[role]}}
    assert provider.inputs["url"] == "https://token.actions.githubusercontent.com"
    assert provider.inputs["clientIdLists"] == ["sts.amazonaws.com"]


def test_the_stack_exports_the_role_arns_and_attaches_every_document(run):
    assert {"previewRoleArn", "driftRoleArn", "deployRoleArn", "oidcProviderArn",
            "environment", "defaultBranch", "repository"} <= set(run.outputs)
    policies = run.of_type("aws:iam/policy:Policy")
    attached = run.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
    assert len(policies) == len(attached) == sum(
        len(ci_policy.role_documents(r, ci_policy.Scope(
            ACCOUNT, "shop", ("staging", "prod"), MANAGED_POLICIES, "acme-pulumi-state")))
        for r in ci.ROLES)
    for reg in run.resources:
        if reg.custom:
            assert reg.parent and "GitHubCi" in reg.parent, reg.urn
            for rule, name in physical_names(reg):
                assert rule.problem(name) is None, (name, rule.source)
    assert {"aws:iam/policy:Policy"} <= set(RULES)


def test_an_existing_provider_is_reused_not_created(aws_env_module):
    arn = f"arn:aws:iam::{ACCOUNT}:oidc-provider/token.actions.githubusercontent.com"
    out = run_ci("ci", {**CI_SETTINGS, "webstack-ci:oidcProviderArn": arn})
    assert out.error is None, out.error
    assert not out.of_type("aws:iam/openIdConnectProvider:OpenIdConnectProvider")
    for policy in _trust(out).values():
        assert policy["Statement"][0]["Principal"]["Federated"] == arn


@pytest.mark.parametrize(("key", "value", "named"), [
    ("repository", "acme", "webstack-ci:repository"),
    ("repository", "acme/shop;rm", "webstack-ci:repository"),
    ("stacks", '["prod", "a b"]', "webstack-ci:stacks"),
    ("stacks", '["' + "s" * 40 + '"]', "longer than 40"),
    ("defaultBranch", "refs/../main", "webstack-ci:defaultBranch"),
    ("oidcProviderArn", "arn:aws:iam::1:oidc-provider/x", "webstack-ci:oidcProviderArn"),
    ("stateBucket", "Bad_Bucket", "webstack-ci:stateBucket"),
    ("reposiotry", "acme/shop", "webstack-ci:reposiotry is not a setting"),
])
def test_bad_settings_are_named_and_register_nothing(aws_env_module, key, value, named):
    out = run_ci("ci", {**CI_SETTINGS, f"webstack-ci:{key}": value})
    assert isinstance(out.error, ci.ConfigError) and named in str(out.error)
    assert not [r for r in out.resources if r.custom]


def test_a_missing_repository_is_named(aws_env_module):
    settings = {k: v for k, v in CI_SETTINGS.items() if k != "webstack-ci:repository"}
    out = run_ci("ci", settings)
    assert isinstance(out.error, ci.ConfigError)
    assert "webstack-ci:repository = ''" in str(out.error)


def test_the_settings_are_those_pulumi_yaml_declares_and_the_readme_lists():
    project = yaml.safe_load((PROJECT_DIR / "ci" / "Pulumi.yaml").read_text())
    assert project["name"] == ci.PROJECT
    assert list(project["config"]) == list(ci.SETTINGS)
    readme = (PROJECT_DIR / "README.md").read_text()
    table = re.findall(r"^   \| `(\w+)` \| (?:string|list\(string\)) \|", readme, re.M)
    assert table == list(ci.SETTINGS)
