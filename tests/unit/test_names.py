"""Physical names: every registration, over configs at the edges of what the settings allow,
obeys AWS's length and character rules (components/aws_names.py), with the engine's
auto-naming simulated. Mocks accept any name; AWS does not."""

from __future__ import annotations

import pytest

from components import naming
from components.aws_names import AUTONAME_SUFFIX, RULES, NameRule, fit, rule_for
from devtools.mockrun import MockRun, run_ci, run_program, stack_config
from devtools.provider import REPLACES
from devtools.waits import SHORT_WAITS, WAITS
from tests.cases import CI_SETTINGS, ED25519_KEY, arr
from tests.unit.test_private_repo import KEY as DEPLOY_KEY
from tests.unit.test_private_repo import PINNED

# Types that carry no physical name of ours (AWS gives them an id), with what does name them.
UNNAMED = {
    "aws:acm/certificateValidation:CertificateValidation", "aws:ec2/eip:Eip",
    "aws:ec2/eipAssociation:EipAssociation", "aws:ec2/instance:Instance",
    "aws:ec2/internetGateway:InternetGateway", "aws:ec2/routeTable:RouteTable",
    "aws:ec2/routeTableAssociation:RouteTableAssociation", "aws:ec2/subnet:Subnet",
    "aws:ec2/vpc:Vpc", "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
    "aws:lb/listener:Listener", "aws:lb/targetGroupAttachment:TargetGroupAttachment",
    "aws:route53/record:Record",  # its name is a DNS name, validated as a setting
    # The bucket's configuration: named by the bucket (checked in RULES)
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
    "aws:s3/bucketOwnershipControls:BucketOwnershipControls", "aws:s3/bucketPolicy:BucketPolicy",
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
    "aws:s3/bucketVersioning:BucketVersioning",
    "aws:sns/topicSubscription:TopicSubscription",
    "aws:secretsmanager/secretVersion:SecretVersion",  # a value of the secret (checked in RULES)
    "command:local:Command",  # runs on the deployer's machine: no AWS name
    "aws:ecr/lifecyclePolicy:LifecyclePolicy",  # the repository's rule (named in RULES)
    "docker-build:index:Image",  # an image in the repository: its tag, not an AWS name
    "aws:iam/openIdConnectProvider:OpenIdConnectProvider",  # the ci stack's: named by its URL
}

PRIVATE_REPO = "ssh://git@git.example.com:2222/acme/shop.git"
LONG_APP = "internal-" + "b" * 23  # 32 characters, the longest appName; an ALB-reserved start
ZONE = "example.com"
LONG_LABEL = "l" * 63
LONG_HOST = f"{'h' * 52}.{ZONE}"  # 64 characters: ACM's limit for a certificate's first name
LONG_EXTRA = [f"{LONG_LABEL}.{LONG_LABEL}.{LONG_LABEL}.{'x' * 49}.{ZONE}"]  # 253 characters

MATRIX: dict[str, tuple[str, str, dict[str, str]]] = {  # id: (stack file, stack name, overrides)
    "single-dotted-stack": ("dev", "staging.eu-west-1_blue", {
        "webstack:appName": LONG_APP, "webstack:sshPublicKey": ED25519_KEY,
        "webstack:appRepo": "https://git.example.com/acme/shop.git"}),
    "fleet-dotted-stack": ("prod", "prod.eu-west-1_blue", {
        "webstack:appName": LONG_APP, "webstack:serverMaxCount": "4",
        "webstack:alertEmails": arr("ops@example.com"),
        "webstack:sshPublicKey": "", "webstack:appSecrets": arr("DB_URL=/shop/db")}),
    "fleet-100-char-stack": ("prod", "s." + "x_y-" * 24 + "zz", {
        "webstack:appName": LONG_APP, "webstack:serverMinCount": "2",
        "webstack:serverMaxCount": "6", "webstack:domainHostname": LONG_HOST,
        "webstack:domainExtraNames": arr(*LONG_EXTRA)}),
    "sg-prefixed-app": ("dev", "dev", {"webstack:appName": "sg-shop"}),
    # a private repository's credential parameter under a 100-character stack name
    "private-repo-100-char-stack": ("prod", "s." + "x_y-" * 24 + "zz", {
        "webstack:appName": LONG_APP, "webstack:appRepo": PRIVATE_REPO,
        "webstack:appRepoSshKey": DEPLOY_KEY, "webstack:appRepoHostKeys": arr(PINNED)}),
    # a database and a cache under a 100-character stack name, and under a dotted one
    "db-valkey-100-char-stack": ("prod", "s." + "x_y-" * 24 + "zz", {
        "webstack:appName": LONG_APP, "webstack:database": "postgres",
        "webstack:cache": "valkey", "webstack:cacheNodes": "2"}),
    "db-memcached-dotted-stack": ("dev", "Staging.eu-west-1--Blue", {
        "webstack:appName": "shop", "webstack:networkCreateVpc": "true",
        "webstack:database": "mysql", "webstack:cache": "memcached"}),
    # the stack's image repository under a 100-character stack name, and a dotted one with "--"
    "docker-100-char-stack": ("prod", "s." + "x_y-" * 24 + "zz", {
        "webstack:appName": LONG_APP, "webstack:appRuntime": "docker",
        "webstack:appSource": "examples/docker-app"}),
    "docker-dotted-stack": ("dev", "Staging.eu-west-1--Blue", {
        "webstack:appName": "shop", "webstack:appRuntime": "docker",
        "webstack:appSource": "examples/docker-app"}),
    "letsencrypt-long": ("dev", "Prod_2", {
        "webstack:appName": LONG_APP, "webstack:domainZone": ZONE,
        "webstack:domainHostname": LONG_HOST, "webstack:tlsMode": "letsencrypt",
        "webstack:tlsEmail": "ops@example.com"}),
}


@pytest.fixture(scope="module")
def runs(aws_env_module) -> dict[str, MockRun]:
    out = {}
    for key, (stack_file, stack, overrides) in MATRIX.items():
        run = run_program(stack, stack_config(stack_file, overrides),
                          secret_keys=["webstack:appRepoSshKey"])
        if run.error is not None:
            raise run.error
        assert run.resources, key
        out[key] = run
    out["ci"] = run_ci("ci", CI_SETTINGS)  # the ci stack's types have their rows too
    assert out["ci"].error is None, out["ci"].error
    return out


def physical_names(reg) -> list[tuple[NameRule, str]]:
    """What AWS would be asked to accept for `reg`, auto-naming as the engine does."""
    out = []
    for rule in RULES.get(reg.type, ()):
        given = reg.inputs.get(rule.field)
        if given is None and rule.autonamed:
            given = f"{reg.name}-{'7' * (AUTONAME_SUFFIX - 1)}"
        if given is not None:
            out.append((rule, str(given)))
    return out


@pytest.mark.parametrize("key", [*MATRIX, "ci"])
def test_every_physical_name_is_one_aws_accepts(runs, key):
    checked = []
    for reg in runs[key].resources:
        if not reg.custom:
            continue
        assert reg.type in RULES or reg.type in UNNAMED, (
            f"{reg.type} has no row in components/aws_names.RULES (or UNNAMED here)")
        for rule, name in physical_names(reg):
            checked.append(name)
            assert rule.problem(name) is None, (
                f"{reg.type} {rule.field} {name!r}: {rule.problem(name)} ({rule.source})")
    if key == "ci":
        assert len(checked) >= 6
        return
    assert len(checked) >= 20
    assert any(n.endswith("/release-ref") for n in checked)  # the release pointer
    if key.startswith("private-repo"):
        assert any(n.endswith("/repo/ssh-key") for n in checked)


@pytest.mark.parametrize("key", list(MATRIX))
def test_tags_fit_aws_limits(runs, key):
    tagged = 0
    for reg in runs[key].resources:
        if not reg.type.startswith("aws:"):  # an image's `tags` are its registry tags
            continue
        tags = reg.inputs.get("tags") or {}
        pairs = ([(t["key"], t["value"]) for t in tags] if isinstance(tags, list)  # a group's
                 else list(tags.items()))
        tagged += bool(pairs)
        for k, v in pairs:
            assert len(k) <= 128 and len(str(v)) <= 256, (reg.type, k)
    assert tagged >= 10


def test_every_type_has_its_rows_in_the_provider_model(runs):
    """A new resource type comes with its name rules, its replacement-forcing inputs and what
    it waits for (components/aws_names.py, devtools/provider.py, devtools/waits.py)."""
    types = {r.type for run in runs.values() for r in run.resources if r.custom}
    waits = {w.type for w in WAITS} | set(SHORT_WAITS)
    assert len(types) >= 25
    assert not types - set(RULES) - UNNAMED, "no name rules"
    assert not types - set(REPLACES), "no replacement row"
    assert not types - waits, "no wait row"
    assert not set(SHORT_WAITS) & {w.type for w in WAITS}


def test_the_matrix_reaches_every_named_type(runs):
    seen = {r.type for run in runs.values() for r in run.resources if r.custom}
    assert set(RULES) <= seen, set(RULES) - seen


def test_fit_keeps_valid_names_and_shortens_others_stably():
    lb = rule_for("aws:lb/loadBalancer:LoadBalancer")
    assert fit("hello-dev-alb", lb) == "hello-dev-alb"  # existing stacks keep their names
    long = fit(f"{LONG_APP}-prod.eu-west-1-alb", lb)
    assert len(long) <= lb.limit - AUTONAME_SUFFIX and lb.problem(long + "-abcdefg") is None
    assert long == fit(f"{LONG_APP}-prod.eu-west-1-alb", lb)  # stable across runs
    assert long != fit(f"{LONG_APP}-prod.eu-west-2-alb", lb)  # distinct for distinct stacks
    assert not long.lower().startswith("internal-")
    sg = rule_for("aws:ec2/securityGroup:SecurityGroup")
    assert not fit("sg-shop-dev-web", sg).startswith("sg-")
    dash = rule_for("aws:cloudwatch/dashboard:Dashboard", "dashboardName")
    assert dash.problem(fit("hello-prod.eu", dash)) is None


def test_the_artefact_bucket_obeys_s3s_rules_whatever_the_stack():
    rule = rule_for("aws:s3/bucket:Bucket", "bucket")
    for bad in ("xn--shop", "sthree-shop", "amzn-s3-demo-shop", "shop-s3alias", "shop--ol-s3",
                "shop.mrap", "shop--x-s3", "shop--table-s3", "Shop", "shop_dev", "-shop"):
        assert rule.problem(bad) is not None, bad
    account = "123456789012"
    for prefix in ("hello-dev", "Shop_Prod.EU", f"{LONG_APP}-{'x' * 60}", "xn--app-dev",
                   "app-s3alias"):
        name = naming.artefact_bucket(prefix, account, "ap-southeast-2")
        assert rule.problem(name) is None and 3 <= len(name) <= 63, name
        assert name.endswith(f"-{account}-ap-southeast-2")
    assert naming.artefact_bucket("hello-dev", account, "us-east-1") == (
        "hello-dev-123456789012-us-east-1")  # a valid name is kept as it is


def test_rds_and_elasticache_identifiers_begin_with_a_letter_and_have_no_double_hyphen():
    for type_, field in (("aws:rds/instance:Instance", "identifier"),
                         ("aws:rds/instance:Instance", "finalSnapshotIdentifier"),
                         ("aws:rds/parameterGroup:ParameterGroup", "name"),
                         ("aws:elasticache/cluster:Cluster", "clusterId"),
                         ("aws:elasticache/replicationGroup:ReplicationGroup",
                          "replicationGroupId")):
        rule = rule_for(type_, field)
        assert rule.problem("shop-prod-db") is None, field
        for bad in ("9shop", "-shop", "shop-", "shop--prod"):
            assert rule.problem(bad) is not None, (field, bad)
        for text in ("9-shop--Staging.eu-west-1--db", "---", "-" + "x--" * 40):
            name = fit(text, rule)
            assert rule.problem(name) is None, (field, text, name)
    assert rule_for("aws:rds/instance:Instance", "identifier").problem("Shop") is not None
    assert fit("hello-prod-db", rule_for("aws:rds/instance:Instance", "identifier")) == (
        "hello-prod-db")  # a name that obeys the rules is kept as it is


def test_a_db_subnet_group_may_not_be_called_default():
    rule = rule_for("aws:rds/subnetGroup:SubnetGroup")
    assert rule.problem("Default".lower()) == "'default' is reserved"
    assert rule.problem("default-db") is None
    assert rule.problem(fit("default", rule)) is None
