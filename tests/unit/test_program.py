"""The whole program (`__main__.py`) under mocks, for every variant of the one table
(tests/variants.py): the stack files and the variants the renderer and the real tools check.

Sizing goes through the real boto3 adapter against a moto server on 127.0.0.1 (`aws_env`), so
these runs exercise exactly what `pulumi up` runs, minus the engine.
"""

from __future__ import annotations

import base64
import importlib
import inspect
import json
from functools import cache
from pathlib import Path

import pytest

from components import bundle, ci_policy, config, naming, outputs, sizing
from components.loadbalancer import TLS_POLICY
from devtools.mockrun import MockRun, Registration, run_program, stack_config
from devtools.provider import REPLACES
from tests import variants
from tests.cases import BAD_INPUTS
from tests.cases import SECRET_VALUES as CASE_SECRETS

WORLD = {"0.0.0.0/0", "::/0"}
TLS12_POLICIES = {TLS_POLICY, "ELBSecurityPolicy-TLS13-1-2-Res-2021-06",
                  "ELBSecurityPolicy-TLS13-1-3-2021-06"}
STANDARD_TAGS = ("webstack:project", "webstack:stack", "webstack:app", "ManagedBy")

SECRET_VALUES = ("hunter2-plain", "s3ss10n-k3y")


def run_stack(stack: str, overrides: dict[str, str] | None = None) -> MockRun:
    return run_program(stack, stack_config(stack, overrides))


@pytest.fixture(scope="module")
def runs(planned, aws_env_module) -> dict[str, MockRun]:
    return {key: planned[key] for key in variants.NAMES}


# --- outputs contract --------------------------------------------------------------------------

@pytest.mark.parametrize("key", variants.NAMES)
def test_exports_equal_the_contract(runs, key):
    assert list(runs[key].outputs) == outputs.expected_names(variants.cfg(key))


def test_dev_outputs(runs):
    out = runs["dev"].outputs
    prices = sizing.PriceTable.load()
    assert out["url"] == f"http://{out['publicIps'][0]}/"
    assert len(out["instanceIds"]) == 1 and out["instanceIds"][0].startswith("i-")
    assert out["sizingReason"].startswith(f"{out['instanceType']}: cheapest of ")
    assert "albDnsName" not in out and "certificateArn" not in out
    cost = out["estimatedMonthlyCost"]
    assert cost["estimate"] is True and cost["currency"] == "USD"
    hourly = prices.instance_hourly("us-east-1", out["instanceType"])
    assert hourly is not None
    assert cost["total"] == pytest.approx(sum(cost["breakdown"].values()), abs=0.02)
    assert cost["total"] > hourly * 730  # servers plus volume plus IPv4
    assert out["ssmSessionCommands"] == [
        f"aws ssm start-session --region us-east-1 --target {out['instanceIds'][0]}"]


def test_prod_outputs(runs):
    out = runs["prod"].outputs
    assert out["url"] == "https://app.example.com/"
    assert out["dnsNames"] == ["app.example.com", "www.example.com"]
    assert out["albDnsName"].endswith(".elb.amazonaws.com")
    assert out["certificateArn"].startswith("arn:")
    assert out["autoScalingGroupName"] and len(out["subnetIds"]) == 2
    assert "instanceIds" not in out and "publicIps" not in out
    assert out["dashboardUrl"].startswith("https://us-east-1.console.aws.amazon.com/cloudwatch/")
    assert out["logGroupNames"] == list(naming.log_groups(variants.cfg("prod")).values())
    assert any(k.startswith("load balancer") for k in out["estimatedMonthlyCost"]["breakdown"])


def test_reference_spec_yields_cheapest_in_table(runs):
    """prod uses the reference spec: 2 vCPU, 4 GiB, 20 GB, x86_64, burstable allowed."""
    out = runs["prod"].outputs
    prices = sizing.PriceTable.load()
    catalog = {t.name: t for t in sizing.fetch_catalog("us-east-1", "x86_64")}
    fits = [(p, name) for name in prices.priced_types("us-east-1")
            if (t := catalog.get(name)) and t.vcpus >= 2 and t.memory_mib >= 4096
            and (p := prices.instance_hourly("us-east-1", name)) is not None]
    assert out["instanceType"] == min(fits)[1]


# --- security and structure invariants, over every registered resource ------------------------

def all_resources(runs):
    for key, run in runs.items():
        for reg in run.resources:
            yield key, reg


def test_no_ssh_from_the_world(runs):
    checked = 0
    for key, reg in all_resources(runs):
        if reg.type == "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule":
            checked += 1
            port_range = range(int(reg.inputs.get("fromPort", 0)),
                               int(reg.inputs.get("toPort", 65535)) + 1)
            source = reg.inputs.get("cidrIpv4") or reg.inputs.get("cidrIpv6")
            assert not (22 in port_range and source in WORLD), (key, reg.name)
            assert reg.inputs.get("ipProtocol") != "-1", (key, reg.name)
        if reg.type == "aws:ec2/securityGroup:SecurityGroup":
            assert not reg.inputs.get("ingress"), "inline rules bypass the one-rule-per-resource"
    assert checked >= 10


def test_imdsv2_and_encrypted_volumes_everywhere(runs):
    instances = [(k, r) for k, r in all_resources(runs) if r.type == "aws:ec2/instance:Instance"]
    templates = [(k, r) for k, r in all_resources(runs)
                 if r.type == "aws:ec2/launchTemplate:LaunchTemplate"]
    single = [k for k in variants.NAMES if not variants.cfg(k).server.autoscaling]
    assert sorted(k for k, _ in instances) == sorted(single)
    assert sorted(k for k, _ in templates) == sorted(set(variants.NAMES) - set(single))
    for key, reg in instances:
        assert reg.inputs["metadataOptions"]["httpTokens"] == "required", key
        assert reg.inputs["rootBlockDevice"]["encrypted"] is True, key
        assert all(d.get("encrypted") for d in reg.inputs.get("ebsBlockDevices", [])), key
        assert base64.b64decode(reg.inputs["userDataBase64"])  # valid base64, non-empty
    for key, reg in templates:
        assert reg.inputs["metadataOptions"]["httpTokens"] == "required", key
        assert all(d["ebs"]["encrypted"] == "true" for d in reg.inputs["blockDeviceMappings"])
        assert base64.b64decode(reg.inputs["userData"])
        group = next(r for r in runs[key].of_type("aws:autoscaling/group:Group"))
        assert len(group.inputs["vpcZoneIdentifiers"]) >= 2, key


def test_no_iam_wildcards(runs):
    policies = 0
    for key, reg in all_resources(runs):
        for field in ("policy", "assumeRolePolicy"):
            if field in reg.inputs and reg.type.startswith("aws:iam/"):
                policies += 1
                for st in json.loads(reg.inputs[field])["Statement"]:
                    actions = st.get("Action", [])
                    actions = [actions] if isinstance(actions, str) else actions
                    resources = st.get("Resource", [])
                    resources = [resources] if isinstance(resources, str) else resources
                    assert not ("*" in actions and "*" in resources), (key, reg.name)
                    assert "*" not in actions, (key, reg.name)
        if reg.type == "aws:iam/rolePolicyAttachment:RolePolicyAttachment":
            assert "AdministratorAccess" not in reg.inputs["policyArn"]
    assert policies >= len(runs) + 2  # a trust policy per stack, plus parameter policies


def test_https_listeners_are_tls12_or_better(runs):
    https = [r for _, r in all_resources(runs) if r.type == "aws:lb/listener:Listener"
             and r.inputs.get("protocol") == "HTTPS"]
    assert len(https) == sum(variants.cfg(k).tls.mode == "acm" for k in runs) >= 3
    assert all(r.inputs["sslPolicy"] in TLS12_POLICIES for r in https)


@cache
def _taggable(type_token: str) -> bool:
    """Whether the SDK's resource class takes `tags`: asked of pulumi_aws itself."""
    _, module_path, cls_name = type_token.split(":")
    module = module_path.split("/")[0]
    mod = importlib.import_module("pulumi_aws" if module == "index" else f"pulumi_aws.{module}")
    cls = getattr(mod, cls_name)
    return "tags" in inspect.signature(cls._internal_init).parameters


def test_standard_tags_on_every_taggable_resource(runs):
    tagged = 0
    for key, reg in all_resources(runs):
        if reg.custom and reg.type.startswith("aws:") and _taggable(reg.type):
            tags = reg.inputs.get("tags", {})
            if isinstance(tags, list):  # an Auto Scaling group's tags are key/value items
                tags = {t["key"]: t["value"] for t in tags}
            missing = [t for t in STANDARD_TAGS if t not in tags]
            assert not missing, f"{key}: {reg.type} {reg.name} lacks {missing}"
            tagged += 1
    assert tagged > 40


def test_urns_unique_and_every_resource_inside_a_component(runs):
    for key, run in runs.items():
        urns = [r.urn for r in run.resources]
        assert len(urns) == len(set(urns)), f"{key}: duplicate URNs"
        components = {r.urn: r for r in run.resources if not r.custom}
        for comp in components.values():
            assert comp.type.startswith("webstack:") and comp.type.count(":") == 2
        for reg in run.resources:
            if reg.custom:
                assert reg.parent in components, f"{key}: {reg.type} {reg.name} not parented"


def test_listeners_wait_for_the_validated_certificate(runs):
    run = runs["prod"]
    by_urn = run.by_urn()
    (https,) = [r for r in run.of_type("aws:lb/listener:Listener") if r.inputs["port"] == 443]
    deps = {by_urn[u].type for u in https.dependencies if u in by_urn}
    assert "aws:acm/certificateValidation:CertificateValidation" in deps


# --- bad input: one clear error, nothing registered ------------------------------------------

@pytest.mark.parametrize(("case", "overrides", "expected"), BAD_INPUTS,
                         ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_registers_nothing(aws_env_module, case, overrides, expected):
    run = run_stack("dev", overrides)
    assert isinstance(run.error, config.ConfigError), f"{case}: {run.error!r}"
    assert not any(v in str(run.error) for v in CASE_SECRETS)
    for text in expected:
        assert text in str(run.error), f"{case}: {text!r} not in {run.error}"
    assert run.resources == [], f"{case}: registered {[r.name for r in run.resources]}"


def test_impossible_spec_registers_nothing(aws_env_module):
    run = run_stack("dev", {"webstack:serverVcpus": "192", "webstack:serverMemoryGib": "1024"})
    assert isinstance(run.error, sizing.SizingError)
    assert "webstack:serverVcpus" in str(run.error)
    assert run.resources == []


# --- readiness gate ---------------------------------------------------------------------------

GATE = "command:local:Command"
GATE_FLAGS = {"--region", "--timeout", "--interval", "--name", "--instance-id", "--asg-name",
              "--target-group-arn", "--url", "--launch-template-version", "--account"}


def _gate_by_kind(run: MockRun) -> dict[str, Registration]:
    return {g.name.rsplit("-", 1)[1]: g for g in run.of_type(GATE)
            if g.name.endswith(("-servers", "-url"))}


def _gates(run: MockRun) -> tuple[Registration, Registration]:
    gates = _gate_by_kind(run)
    assert set(gates) == {"servers", "url"}
    return gates["servers"], gates["url"]


@pytest.mark.parametrize("key", variants.NAMES)
def test_gates_for_the_servers_and_the_url(runs, key):
    run = runs[key]
    by_urn = run.by_urn()
    if variants.cfg(key).tls.mode == "selfsigned":  # not verifiable from here: servers alone
        gates = _gate_by_kind(run)
        assert set(gates) == {"servers"}
        servers, url_gate = gates["servers"], None
    else:
        servers, url_gate = _gates(run)
    cfg = variants.cfg(key)
    digest = run.outputs["userDataSha256"]
    # the code the URL gate vouches for: appRef, or the bundle's sha256
    ref = (run.outputs["appImage"] if cfg.app.container else
           cfg.app.ref if cfg.app.from_git else bundle.pack(Path(cfg.app.source)).sha256)
    server_deps = {by_urn[u].type for u in servers.dependencies if u in by_urn}
    if "instanceIds" in run.outputs:
        (instance_id,) = run.outputs["instanceIds"]
        assert "aws:ec2/instance:Instance" in server_deps
        assert servers.inputs["triggers"] == [instance_id, 0, digest]  # a new ref: a rollout
        assert f"--instance-id {instance_id}" in servers.inputs["create"]
    else:
        group = run.outputs["autoScalingGroupName"]
        assert "aws:autoscaling/group:Group" in server_deps
        assert servers.inputs["triggers"] == [group, 1, digest]  # + template version
        assert f"--asg-name {group} " in servers.inputs["create"]
        assert "--launch-template-version 1 " in servers.inputs["create"]
    assert servers.inputs["create"].endswith(" --account 123456789012")  # the provider's
    assert servers.inputs["create"].startswith(".venv/bin/python -m deploy.readiness_check")
    if "albDnsName" in run.outputs:  # no target is health-checked before its listener
        assert "aws:lb/listener:Listener" in server_deps
    else:  # the address moves to the server once it is ready
        (association,) = run.of_type("aws:ec2/eipAssociation:EipAssociation")
        assert servers.urn in association.dependencies
    if url_gate is None:
        return
    assert url_gate.inputs["triggers"][1:] == servers.inputs["triggers"] + [ref]
    deps = {by_urn[u].type for u in url_gate.dependencies if u in by_urn}
    assert GATE in deps  # waits for the servers' gate (and the rollout: below)
    if run.outputs.get("dnsNames"):
        assert "aws:route53/record:Record" in deps
    if "certificateArn" in run.outputs:
        assert "aws:acm/certificateValidation:CertificateValidation" in deps
        assert "aws:lb/listener:Listener" in deps
    if "albDnsName" not in run.outputs:  # and the URL is checked once the address has moved
        assert "aws:ec2/eipAssociation:EipAssociation" in deps
    health = variants.cfg(key).app.health_path  # /healthz, a static site's /
    assert f"--url {run.outputs['url'].rstrip('/')}{health}" in url_gate.inputs["create"]


def test_commands_carry_only_ids_urls_and_numbers(runs):
    import shlex

    for key in ("dev-letsencrypt-ssh-secrets", "git-app-secrets-alerts"):
        for cmd in runs[key].of_type(GATE):
            argv = shlex.split(cmd.inputs["create"])
            flags = argv[3::2]
            assert set(flags) <= GATE_FLAGS | {"--app", "--ref"}, flags
            text = cmd.inputs["create"] + json.dumps(cmd.inputs["triggers"])
            for secret_ish in ("DATABASE_URL", "hello from", "ssh-ed25519", *SECRET_VALUES):
                assert secret_ish not in text


def test_load_balanced_servers_are_gated_on_target_health(runs):
    servers, _ = _gates(runs["prod"])
    assert "--target-group-arn arn:" in servers.inputs["create"]
    dev_servers, _ = _gates(runs["dev"])
    assert "--target-group-arn" not in dev_servers.inputs["create"]


def test_gate_can_be_turned_off_and_timeout_configured(aws_env_module):
    off = run_stack("dev", {"webstack:readinessCheck": "false"})
    assert off.error is None and off.resources
    assert [g.name for g in off.of_type(GATE)] == ["hello-dev-rollout"]  # no gate, a rollout
    slow = run_stack("dev", {"webstack:readinessTimeoutSeconds": "1800"})
    assert slow.error is None
    assert all("--timeout 1800" in g.inputs["create"] for g in slow.of_type(GATE))


def test_health_check_command_output_checks_everything(runs):
    out = runs["prod"].outputs
    command_line = out["healthCheckCommand"]
    assert f"--asg-name {out['autoScalingGroupName']}" in command_line
    assert "--url https://app.example.com/healthz" in command_line
    dev = runs["dev"].outputs
    assert f"--instance-id {dev['instanceIds'][0]}" in dev["healthCheckCommand"]


# --- operations: rollout, secrets, parameters ----------------------------------------------

def test_every_stack_rolls_out_new_code_after_the_gates(runs):
    for key, run in runs.items():
        rollouts = [c for c in run.of_type(GATE) if c.name.endswith("-rollout")]
        assert len(rollouts) == 1, key
    (rollout,) = [c for c in runs["git-app-secrets-alerts"].of_type(GATE)
                  if c.name.endswith("-rollout")]
    by_urn = runs["git-app-secrets-alerts"].by_urn()
    deps = {by_urn[u].type for u in rollout.dependencies if u in by_urn}
    assert {GATE, "aws:ssm/parameter:Parameter", "aws:autoscaling/group:Group"} <= deps
    servers, url_gate = _gates(runs["git-app-secrets-alerts"])
    # the release follows the servers' gate; the URL is checked after it, so that on an appRef
    # change it vouches for the new release
    assert servers.urn in rollout.dependencies and url_gate.urn not in rollout.dependencies
    assert rollout.urn in url_gate.dependencies
    assert rollout.inputs["triggers"] == ["v3.1.0"] and "--ref v3.1.0" in rollout.inputs["create"]


def test_a_bundle_is_uploaded_then_named_by_the_pointer_the_rollout_releases(runs):
    run, cfg = runs["dev"], variants.cfg("dev")
    by_urn = run.by_urn()
    sha = bundle.pack(Path(cfg.app.source)).sha256
    (obj,) = [o for o in run.of_type("aws:s3/bucketObjectv2:BucketObjectv2")
              if o.name == "hello-dev-bundle"]
    assert obj.inputs["source"].path == f".webstack/bundles/{sha}.tar"
    (pointer,) = [p for p in run.of_type("aws:ssm/parameter:Parameter")
                  if p.inputs["name"] == "/webstack/dev/hello/release-ref"]
    assert obj.urn in pointer.dependencies  # the pointer moves once the upload has its version
    assert pointer.inputs["insecureValue"].startswith(sha)
    (rollout,) = [c for c in run.of_type(GATE) if c.name.endswith("-rollout")]
    assert rollout.inputs["triggers"] == [sha]
    assert f"--ref {pointer.inputs['insecureValue']}" in rollout.inputs["create"]
    assert pointer.urn in rollout.dependencies and by_urn[pointer.urn]
    assert run.outputs["releaseRefParameter"] == "/webstack/dev/hello/release-ref"


@pytest.mark.parametrize(("key", "servers"), [("git-app-secrets-alerts", "autoscaling/group:Group"),
                                              ("dev", "ec2/instance:Instance")])
def test_servers_boot_after_their_parameters_and_log_groups(runs, key, servers):
    run = runs[key]
    by_urn = run.by_urn()
    (server,) = run.of_type(f"aws:{servers}")
    before = [by_urn[u] for u in server.dependencies if u in by_urn]
    parameters = {r.inputs["name"] for r in before if r.type == "aws:ssm/parameter:Parameter"}
    groups = {r.inputs["name"] for r in before if r.type == "aws:cloudwatch/logGroup:LogGroup"}
    assert groups == set(run.outputs["logGroupNames"]) and len(groups) == 5
    # and the grants to read and write them: a first boot before them fails AccessDenied
    grants = {r.urn for r in run.resources if r.type in (
        "aws:iam/rolePolicy:RolePolicy", "aws:iam/rolePolicyAttachment:RolePolicyAttachment")}
    assert len(grants) >= 2 and grants <= set(server.dependencies)
    if key == "dev":
        assert parameters == {"/webstack/dev/hello/release-ref"}  # the bundle's pointer
    else:
        assert parameters == {"/webstack/prod/hello/release-ref",
                              "/webstack/prod/hello/secrets/API_KEY",
                              "/webstack/prod/hello/secrets/SESSION_KEY"}


def _plain_strings(value) -> list[str]:
    """Every string in an input, except inside Pulumi secret envelopes."""
    if isinstance(value, dict):
        if "4dabf18193072939515e22adb298388d" in value:
            return []
        return [s for v in value.values() for s in _plain_strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _plain_strings(v)]
    return [value] if isinstance(value, str) else []


def test_secret_values_only_inside_secret_envelopes(runs):
    run = runs["git-app-secrets-alerts"]
    stored = [r for r in run.of_type("aws:ssm/parameter:Parameter")
              if r.inputs["type"] == "SecureString"]
    assert sorted(r.inputs["value"]["value"] for r in stored) == sorted(SECRET_VALUES)
    for reg in run.resources:
        for text in _plain_strings(reg.inputs):
            assert not any(v in text for v in SECRET_VALUES), (reg.type, reg.name)
    for value in run.outputs.values():
        assert not any(v in json.dumps(value) for v in SECRET_VALUES)
    assert run.outputs["secretParameterNames"] == ["/webstack/prod/hello/secrets/API_KEY",
                                                   "/webstack/prod/hello/secrets/SESSION_KEY"]


def test_role_reads_exactly_the_stacks_parameters(runs):
    run = runs["git-app-secrets-alerts"]
    (policy,) = [r for r in run.of_type("aws:iam/rolePolicy:RolePolicy")
                 if r.name.endswith("-parameters")]
    read, decrypt = json.loads(policy.inputs["policy"])["Statement"]
    arns = [f"arn:aws:ssm:us-east-1:123456789012:parameter/webstack/prod/hello/{n}"
            for n in ("release-ref", "secrets/API_KEY", "secrets/SESSION_KEY")]
    assert read["Resource"] == arns
    # a customer-managed key's Decrypt: only through SSM, only for these parameters
    assert decrypt["Action"] == "kms:Decrypt"
    assert decrypt["Condition"] == {"StringEquals": {
        "kms:ViaService": "ssm.us-east-1.amazonaws.com",
        "kms:EncryptionContext:PARAMETER_ARN": arns}}


def test_every_stack_has_alarms_on_a_topic(runs):
    for key, run in runs.items():
        topic = run.one("aws:sns/topic:Topic")
        alarms = run.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
        assert len(alarms) >= 4, key
        assert all(a.inputs["alarmActions"][0] == topic.state["arn"] for a in alarms), key
        assert run.outputs["alertTopicArn"] == topic.state["arn"]


# --- what CI may do (components/ci_policy.py) -------------------------------------------------

def test_ci_may_do_everything_the_program_registers_and_looks_up(runs):
    """A new resource type or lookup fails here until its actions are in ci_policy: the deploy
    role is derived from what the program really registers."""
    types = {r.type for run in runs.values() for r in run.resources if r.custom}
    invokes = {i.token for run in runs.values() for i in run.invokes}
    assert len(types) >= 40 and len(invokes) >= 8
    assert not types - set(ci_policy.RESOURCE_ACTIONS), "types without CI permissions"
    assert not invokes - set(ci_policy.INVOKE_ACTIONS), "lookups without CI permissions"
    assert ci_policy.needed(types, invokes) <= ci_policy.every_action()
    # no row for a type the program no longer creates (a stale grant): the provider model
    # lists every type it creates (the ci stack's own two are deployed by a person, not CI)
    created = set(REPLACES) - {"aws:iam/policy:Policy",
                               "aws:iam/openIdConnectProvider:OpenIdConnectProvider"}
    assert set(ci_policy.RESOURCE_ACTIONS) == created, set(ci_policy.RESOURCE_ACTIONS) ^ created


@pytest.mark.parametrize("key", ["dev", "prod"])
def test_servers_carry_the_tags_ci_s_run_command_grant_is_conditioned_on(runs, key):
    """ci_policy lets CI's deploy role run commands only on instances with these tags."""
    run, cfg = runs[key], variants.cfg(key)
    wanted = {"webstack:project": cfg.project, "webstack:app": cfg.app.name,
              "webstack:stack": cfg.stack}
    tag_sets = [r.inputs["tags"] for r in run.of_type("aws:ec2/instance:Instance")]
    for template in run.of_type("aws:ec2/launchTemplate:LaunchTemplate"):
        tag_sets += [spec["tags"] for spec in template.inputs["tagSpecifications"]
                     if spec["resourceType"] == "instance"]
    assert tag_sets
    for tags in tag_sets:
        assert wanted.items() <= tags.items()
