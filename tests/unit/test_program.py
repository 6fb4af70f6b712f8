"""The whole program (`__main__.py`) under mocks, per stack file and variants.

Sizing goes through the real boto3 adapter against a moto server on 127.0.0.1 (`aws_env`), so
these runs exercise exactly what `pulumi up` runs, minus the engine.
"""

from __future__ import annotations

import base64
import importlib
import inspect
import json
from functools import cache

import pytest

from components import config, outputs, sizing
from components.loadbalancer import TLS_POLICY
from devtools.mockrun import MockRun, run_program, stack_config
from tests.cases import BAD_INPUTS, GOOD_ZONE, arr

WORLD = {"0.0.0.0/0", "::/0"}
TLS12_POLICIES = {TLS_POLICY, "ELBSecurityPolicy-TLS13-1-2-Res-2021-06",
                  "ELBSecurityPolicy-TLS13-1-3-2021-06"}
STANDARD_TAGS = ("webstack:project", "webstack:stack", "webstack:app", "ManagedBy")

VARIANTS: dict[str, tuple[str, dict[str, str]]] = {
    "dev": ("dev", {}),
    "prod": ("prod", {}),
    "dev-letsencrypt-ssh-secrets": ("dev", {
        **GOOD_ZONE, "webstack:domainExtraNames": arr("www.example.com"),
        "webstack:tlsMode": "letsencrypt", "webstack:tlsEmail": "ops@example.com",
        "webstack:adminCidrs": arr("203.0.113.0/24"),
        "webstack:sshPublicKey": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB me@laptop",
        "webstack:appSecrets": arr("DATABASE_URL=/hello/dev/database-url")}),
    "prod-ubuntu-arm-3": ("prod", {"webstack:serverOs": "ubuntu-24.04",
                                   "webstack:serverArch": "arm64", "webstack:serverCount": "3",
                                   "webstack:networkAzCount": "3"}),
    "dev-two-plain-http": ("dev", {"webstack:serverCount": "2"}),
}


def run_stack(stack: str, overrides: dict[str, str] | None = None) -> MockRun:
    return run_program(stack, stack_config(stack, overrides))


def cfg_for(stack: str, overrides: dict[str, str]) -> config.StackConfig:
    raw = stack_config(stack, overrides)
    return config.parse(raw, project="webstack", stack=stack, region=raw["aws:region"],
                        supported_regions=sizing.PriceTable.load().regions())


@pytest.fixture(scope="module")
def runs(aws_env_module) -> dict[str, MockRun]:
    out = {}
    for key, (stack, overrides) in VARIANTS.items():
        run = run_stack(stack, overrides)
        if run.error is not None:
            raise run.error
        assert run.resources, f"{key}: nothing registered"
        out[key] = run
    return out


# --- outputs contract --------------------------------------------------------------------------

@pytest.mark.parametrize("key", list(VARIANTS))
def test_exports_equal_the_contract(runs, key):
    stack, overrides = VARIANTS[key]
    cfg = cfg_for(stack, overrides)
    assert list(runs[key].outputs) == outputs.expected_names(cfg)


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
    assert len(out["instanceIds"]) == 2 and len(out["subnetIds"]) == 2
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
    assert len(instances) == 1 + 2 + 1 + 3 + 2
    for key, reg in instances:
        assert reg.inputs["metadataOptions"]["httpTokens"] == "required", key
        assert reg.inputs["rootBlockDevice"]["encrypted"] is True, key
        assert all(d.get("encrypted") for d in reg.inputs.get("ebsBlockDevices", [])), key
        assert base64.b64decode(reg.inputs["userDataBase64"])  # valid base64, non-empty


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
    assert policies >= len(runs) + 1  # a trust policy per stack, plus the secrets policy


def test_https_listeners_are_tls12_or_better(runs):
    https = [r for _, r in all_resources(runs) if r.type == "aws:lb/listener:Listener"
             and r.inputs.get("protocol") == "HTTPS"]
    assert len(https) == 2  # prod and prod-ubuntu-arm-3
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
    for text in expected:
        assert text in str(run.error), f"{case}: {text!r} not in {run.error}"
    assert run.resources == [], f"{case}: registered {[r.name for r in run.resources]}"


def test_impossible_spec_registers_nothing(aws_env_module):
    run = run_stack("dev", {"webstack:serverVcpus": "192", "webstack:serverMemoryGib": "1024"})
    assert isinstance(run.error, sizing.SizingError)
    assert "webstack:serverVcpus" in str(run.error)
    assert run.resources == []


# --- readiness gate --------------------------------------------------------------------------

GATE = "command:local:Command"
GATE_FLAGS = {"--region", "--timeout", "--interval", "--name", "--instance-id",
              "--target-group-arn", "--url"}


def _gates(run: MockRun) -> tuple[list, list]:
    gates = run.of_type(GATE)
    servers = sorted((g for g in gates if not g.name.endswith("-url")), key=lambda g: g.name)
    return servers, [g for g in gates if g.name.endswith("-url")]


@pytest.mark.parametrize("key", list(VARIANTS))
def test_a_gate_per_server_and_one_for_the_url(runs, key):
    run = runs[key]
    by_urn = run.by_urn()
    servers, url_gates = _gates(run)
    instances = sorted(run.of_type("aws:ec2/instance:Instance"), key=lambda r: r.name)
    assert len(servers) == len(instances) and len(url_gates) == 1
    digest = run.outputs["userDataSha256"]
    for gate, instance in zip(servers, instances, strict=True):
        assert instance.urn in gate.dependencies
        assert instance.name.rsplit("-", 1)[1] == gate.name.rsplit("-", 1)[1]
        instance_id, *rest = gate.inputs["triggers"]
        assert instance_id in run.outputs["instanceIds"]
        assert f"--instance-id {instance_id}" in gate.inputs["create"]
        assert rest == [digest, "main"]
        assert gate.inputs["create"].startswith(".venv/bin/python -m components.readiness_check")
    (url_gate,) = url_gates
    deps = {by_urn[u].type for u in url_gate.dependencies if u in by_urn}
    assert GATE in deps  # waits for every server's gate
    if run.outputs.get("dnsNames"):
        assert "aws:route53/record:Record" in deps
    if "certificateArn" in run.outputs:
        assert "aws:acm/certificateValidation:CertificateValidation" in deps
        assert "aws:lb/listener:Listener" in deps
    if "albDnsName" not in run.outputs:
        assert "aws:ec2/eip:Eip" in deps
    assert f"--url {run.outputs['url'].rstrip('/')}/healthz" in url_gate.inputs["create"]


def test_gate_commands_carry_only_ids_urls_and_numbers(runs):
    import shlex

    run = runs["dev-letsencrypt-ssh-secrets"]
    servers, url_gates = _gates(run)
    for gate in [*servers, *url_gates]:
        argv = shlex.split(gate.inputs["create"])
        flags = argv[3::2]
        assert set(flags) <= GATE_FLAGS, flags
        text = gate.inputs["create"] + json.dumps(gate.inputs["triggers"])
        for secret_ish in ("DATABASE_URL", "/hello/dev/database-url", "hello from dev",
                           "ssh-ed25519"):
            assert secret_ish not in text
    (server_gate,) = servers
    assert f"--instance-id {run.outputs['instanceIds'][0]}" in server_gate.inputs["create"]


def test_load_balanced_server_gates_wait_for_target_health(runs):
    servers, _ = _gates(runs["prod"])
    assert all("--target-group-arn arn:" in g.inputs["create"] for g in servers)
    dev_servers, _ = _gates(runs["dev"])
    assert all("--target-group-arn" not in g.inputs["create"] for g in dev_servers)


def test_gate_can_be_turned_off_and_timeout_configured(aws_env_module):
    off = run_stack("dev", {"webstack:readinessCheck": "false"})
    assert off.error is None and off.resources and not off.of_type(GATE)
    slow = run_stack("dev", {"webstack:readinessTimeoutSeconds": "1800"})
    assert slow.error is None
    assert all("--timeout 1800" in g.inputs["create"] for g in slow.of_type(GATE))


def test_health_check_command_output_checks_everything(runs):
    out = runs["prod"].outputs
    command_line = out["healthCheckCommand"]
    for instance_id in out["instanceIds"]:
        assert f"--instance-id {instance_id}" in command_line
    assert "--url https://app.example.com/healthz" in command_line
