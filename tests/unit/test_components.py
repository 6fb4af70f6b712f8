"""Each component under Pulumi mocks: what it registers, with which inputs, under which parent."""

from __future__ import annotations

import base64
import ipaddress
import json

import pytest

from components import config, naming, topology
from components.artefact import ArtefactArgs, BundleArgs, ServerArtefact
from components.certificate import Certificate
from components.dns import Dns, Endpoint
from components.firewall import Firewall, rules
from components.fleet import ServerFleet
from components.instance_role import (
    MANAGED_POLICIES,
    InstanceRole,
    agent_policy,
    parameter_arn,
    role_args,
)
from components.loadbalancer import TLS_POLICY, LoadBalancer
from components.monitoring import LogGroups, Monitoring
from components.network import Network, subnet_cidrs
from components.parameters import TLS_PLACEHOLDER, AppParameters
from components.placement import Image, Placement, ami_query, lookup_image
from components.readiness import AwsIdentity
from components.release import Rollout, rollout_command
from components.webserver import WebServer
from devtools.mockrun import ACCOUNT_ID, MockRun, run_program, stack_config
from tests.cases import ED25519_KEY, GOOD_ZONE, arr

REGIONS = ("us-east-1",)
BUCKET = f"hello-dev-{ACCOUNT_ID}-us-east-1"
IMAGE = Image(id="ami-0123456789abcdef0", root_device_name="/dev/xvda", pinned=False)


def cfg_of(stack: str = "dev", **overrides: str) -> config.StackConfig:
    raw = stack_config(stack, overrides)
    return config.parse(raw, project="webstack", stack=stack, region="us-east-1",
                        supported_regions=REGIONS)


def build(fn) -> MockRun:
    run = run_program("test", {"aws:region": "us-east-1"}, program=fn)
    if run.error is not None:
        raise run.error
    assert run.resources, "nothing registered: the mocks were not active"
    return run


def firewall(name: str, cfg: config.StackConfig) -> Firewall:
    return Firewall(name, topology.derive(cfg), cfg.access, app_repo=cfg.app.repo, tags=cfg.tags,
                    vpc_id="vpc-1")


def firewall_rules(cfg: config.StackConfig) -> list:
    return rules(topology.derive(cfg), cfg.access, cfg.app.repo)


def parameters(name: str, cfg: config.StackConfig, secret_values: dict,
               pointer: str = "") -> AppParameters:
    tls = naming.tls_parameter(cfg) if topology.derive(cfg).certificate == "letsencrypt" else None
    return AppParameters(name, cfg.app, release_ref_parameter=naming.release_ref_parameter(cfg),
                         release_pointer=pointer or cfg.app.ref, tls_parameter=tls,
                         secret_values=secret_values, tags=cfg.tags)


def monitoring(name: str, cfg: config.StackConfig, **bound) -> Monitoring:
    return Monitoring(name, topology.derive(cfg), cfg.monitoring, region=cfg.region,
                      tags=cfg.tags, **bound)


def load_balancer(name: str, cfg: config.StackConfig, **wiring) -> LoadBalancer:
    return LoadBalancer(name, idle_timeout=cfg.lb_idle_timeout,
                        health_path=cfg.app.health_path, tags=cfg.tags, **wiring)


def children_of(run: MockRun, component_type: str) -> list:
    parent = [r for r in run.resources if r.type == component_type]
    assert len(parent) == 1, component_type
    return [r for r in run.resources if r.parent == parent[0].urn]


# --- Network ---------------------------------------------------------------------------------

def test_subnet_cidrs_split_without_overlap():
    nets = [ipaddress.ip_network(c) for c in subnet_cidrs("10.42.0.0/16", 3)]
    assert [str(n) for n in nets] == ["10.42.0.0/20", "10.42.16.0/20", "10.42.32.0/20"]
    assert subnet_cidrs("192.168.1.0/24", 2) == ["192.168.1.0/28", "192.168.1.16/28"]


def test_network_default_vpc_creates_nothing():
    cfg = cfg_of()
    site = Placement("vpc-1", "172.31.0.0/16", {"subnet-a": "us-east-1a", "subnet-e":
                                                "us-east-1e"}, ("us-east-1a", "us-east-1e"),
                     frozenset({"us-east-1a"}))
    seen: dict[str, list[str]] = {}

    def program() -> None:
        net = Network("net-a", cfg.network, cfg.tags, site)
        net.subnet_ids.apply(lambda ids: seen.setdefault("all", ids))
        net.server_subnet_ids.apply(lambda ids: seen.setdefault("servers", ids))
    run = build(program)
    assert [r.type for r in run.resources] == ["webstack:network:Network"]
    # the load balancer spans every subnet; servers go where their type is offered
    assert seen == {"all": ["subnet-a", "subnet-e"], "servers": ["subnet-a"]}


def test_network_created_vpc_spans_distinct_zones():
    cfg = cfg_of(**{"webstack:networkCreateVpc": "true", "webstack:networkAzCount": "3"})
    site = Placement("", cfg.network.cidr, {}, ("us-east-1a", "us-east-1b", "us-east-1c"),
                     frozenset({"us-east-1a", "us-east-1c"}))
    run = build(lambda: Network("net-b", cfg.network, cfg.tags, site))
    kids = children_of(run, "webstack:network:Network")
    assert len(kids) == len(run.resources) - 1  # everything is parented to the component
    assert run.one("aws:ec2/vpc:Vpc").inputs["cidrBlock"] == "10.42.0.0/16"
    subnets = sorted(run.of_type("aws:ec2/subnet:Subnet"), key=lambda r: r.name)
    assert len(subnets) == 3
    assert [s.inputs["availabilityZone"] for s in subnets] == list(site.zones)
    assert [s.inputs["cidrBlock"] for s in subnets] == subnet_cidrs("10.42.0.0/16", 3)
    routes = run.one("aws:ec2/routeTable:RouteTable").inputs["routes"]
    assert routes[0]["cidrBlock"] == "0.0.0.0/0" and routes[0]["gatewayId"]
    assert len(run.of_type("aws:ec2/routeTableAssociation:RouteTableAssociation")) == 3


# --- Firewall --------------------------------------------------------------------------------

INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"


def _ingress(run: MockRun) -> list[dict]:
    return [r.inputs for r in run.of_type(INGRESS)]


def test_single_server_firewall_opens_only_http_to_the_world():
    cfg = cfg_of()
    run = build(lambda: firewall("fw-a", cfg))
    groups = run.of_type("aws:ec2/securityGroup:SecurityGroup")
    assert len(groups) == 1 and "ingress" not in groups[0].inputs  # rules are separate resources
    ingress = _ingress(run)
    assert {(r["fromPort"], r.get("cidrIpv4") or r.get("cidrIpv6")) for r in ingress} == {
        (80, "0.0.0.0/0"), (80, "::/0")}
    egress = run.of_type("aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule")
    assert sorted({r.inputs["fromPort"] for r in egress}) == [80, 443]


def test_https_single_server_adds_443():
    cfg = cfg_of(**GOOD_ZONE, **{"webstack:tlsMode": "letsencrypt",
                                 "webstack:tlsEmail": "ops@example.com"})
    assert {(r.port, r.cidr) for r in firewall_rules(cfg) if r.direction == "ingress"} == {
        (80, "0.0.0.0/0"), (80, "::/0"), (443, "0.0.0.0/0"), (443, "::/0")}


def test_load_balanced_servers_accept_http_only_from_the_alb():
    cfg = cfg_of("prod")
    run = build(lambda: firewall("fw-b", cfg))
    assert len(run.of_type("aws:ec2/securityGroup:SecurityGroup")) == 2
    plan = firewall_rules(cfg)
    web_in = [r for r in plan if r.group == "web" and r.direction == "ingress"]
    assert [(r.port, r.peer, r.cidr) for r in web_in] == [(80, "alb", None)]
    alb_in = {(r.port, r.cidr) for r in plan if r.group == "alb" and r.direction == "ingress"}
    assert alb_in == {(80, "0.0.0.0/0"), (80, "::/0"), (443, "0.0.0.0/0"), (443, "::/0")}
    from_alb = [r for r in _ingress(run) if r.get("referencedSecurityGroupId")]
    assert len(from_alb) == 1 and from_alb[0]["fromPort"] == 80


def test_ssh_only_from_admin_cidrs():
    cfg = cfg_of(**{"webstack:adminCidrs": arr("203.0.113.0/24", "2001:db8::/32")})
    run = build(lambda: firewall("fw-c", cfg))
    ssh = [r for r in _ingress(run) if r["fromPort"] == 22]
    assert sorted(r.get("cidrIpv4") or r["cidrIpv6"] for r in ssh) == [
        "2001:db8::/32", "203.0.113.0/24"]


def test_ssh_git_remote_opens_egress_22():
    https_repo = cfg_of(**{"webstack:appRepo": "https://github.com/acme/app.git"})
    # an ssh appRepo's config needs its key and host keys (tests/unit/test_private_repo.py):
    # the rules read the URL alone
    ssh_rules = rules(topology.derive(https_repo), https_repo.access, "git@github.com:acme/app.git")
    assert 22 not in {r.port for r in firewall_rules(https_repo) if r.direction == "egress"}
    assert 22 in {r.port for r in ssh_rules if r.direction == "egress"}


# --- InstanceRole, WebServer, ServerFleet ----------------------------------------------------

def _server(cfg: config.StackConfig, name: str, user_data: str = "#cloud-config\n",
            image: Image = IMAGE) -> MockRun:
    encoded = base64.b64encode(user_data.encode()).decode()
    def program() -> None:
        server = WebServer(name, behind_load_balancer=cfg.load_balanced,
                           instance_type="t3a.micro", image=image,
                           disk_gib=cfg.server.disk_gib, subnet_id="subnet-a",
                           security_group_id="sg-1", instance_profile="profile-1",
                           key_name=None, user_data_base64=encoded, tags=cfg.tags)
        server.attach_address(after=[])
    return build(program)


def test_single_server_hardening_and_elastic_ip():
    cfg = cfg_of()
    run = _server(cfg, "srv-a", "#cloud-config\npackages: [nginx]\n")
    instance = run.one("aws:ec2/instance:Instance").inputs
    assert instance["metadataOptions"]["httpTokens"] == "required"
    assert instance["metadataOptions"]["httpPutResponseHopLimit"] == 1
    assert instance["rootBlockDevice"] == {"volumeType": "gp3", "volumeSize": 10,
                                           "encrypted": True, "deleteOnTermination": True}
    assert base64.b64decode(instance["userDataBase64"]).decode().startswith("#cloud-config")
    assert instance["userDataReplaceOnChange"] is True
    assert instance["instanceType"] == "t3a.micro"
    assert instance["ami"] == IMAGE.id
    assert instance["iamInstanceProfile"] == "profile-1"
    assert instance["tags"]["Name"] == "srv-a-1" and instance["tags"]["ManagedBy"] == "pulumi"
    eip = run.one("aws:ec2/eip:Eip").inputs
    assert eip["domain"] == "vpc" and "instance" not in eip  # associated after the gate
    association = run.one("aws:ec2/eipAssociation:EipAssociation")
    assert association.inputs["instanceId"].startswith("i-")
    assert association.inputs["allowReassociation"] is True
    # a newer published image is not a reason to replace the server
    assert run.one("aws:ec2/instance:Instance").ignore_changes == ["ami"]


def test_a_pinned_image_is_used_as_given_and_its_change_replaces():
    pinned = Image(id="ami-0fedcba9876543210", root_device_name="/dev/xvda", pinned=True)
    run = _server(cfg_of(), "srv-pinned", image=pinned)
    instance = run.one("aws:ec2/instance:Instance")
    assert instance.inputs["ami"] == pinned.id and instance.ignore_changes == []


def test_single_server_behind_a_load_balancer_has_no_elastic_ip():
    cfg = cfg_of(**GOOD_ZONE, **{"webstack:tlsMode": "acm"})
    assert cfg.load_balanced and not cfg.server.autoscaling
    run = _server(cfg, "srv-lb")
    assert run.one("aws:ec2/instance:Instance") and not run.of_type("aws:ec2/eip:Eip")
    assert not run.of_type("aws:ec2/eipAssociation:EipAssociation")


def _role(cfg: config.StackConfig, name: str) -> MockRun:
    return build(lambda: InstanceRole(name, role_args(cfg, ACCOUNT_ID, artefact_bucket=BUCKET)))


def test_role_has_only_ssm_and_cloudwatch_and_exact_parameters():
    cfg = cfg_of(**{"webstack:appSecrets": arr("DB_URL=/hello/dev/db", "API_KEY=hello-api"),
                    "webstack:appRepo": "https://git.example.com/acme/app.git"})
    run = _role(cfg, "role-b")
    attached = sorted(r.inputs["policyArn"] for r in
                      run.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment"))
    assert attached == sorted(MANAGED_POLICIES)
    policies = {r.name.removeprefix("role-b-"): json.loads(r.inputs["policy"])
                for r in run.of_type("aws:iam/rolePolicy:RolePolicy")}
    assert set(policies) == {"parameters", "cloudwatch-agent", "artefacts"}
    assert policies["artefacts"]["Statement"] == [{
        "Sid": "ReadServerArtefacts", "Effect": "Allow", "Action": "s3:GetObject",
        "Resource": f"arn:aws:s3:::{BUCKET}/artefacts/*"}]  # exactly the prefix, read only
    statement, decrypt = policies["parameters"]["Statement"]
    assert decrypt["Condition"]["StringEquals"]["kms:EncryptionContext:PARAMETER_ARN"] == (
        statement["Resource"])
    assert statement["Action"] == ["ssm:GetParameter", "ssm:GetParameters"]
    assert statement["Resource"] == sorted(
        parameter_arn("us-east-1", ACCOUNT_ID, n)
        for n in ("/hello/dev/db", "hello-api", "/webstack/dev/hello/release-ref"))
    assert f"arn:aws:ssm:us-east-1:{ACCOUNT_ID}:parameter/hello/dev/db" in statement["Resource"]
    trust = json.loads(run.one("aws:iam/role:Role").inputs["assumeRolePolicy"])
    assert trust["Statement"][0]["Principal"] == {"Service": "ec2.amazonaws.com"}
    assert run.one("aws:iam/instanceProfile:InstanceProfile")


def _policy(run: MockRun, name: str) -> dict:
    (found,) = [p for p in run.of_type("aws:iam/rolePolicy:RolePolicy") if p.name == name]
    return json.loads(found.inputs["policy"])


def test_bundle_app_reads_its_pointer_and_exactly_its_bundle_in_any_version():
    run = _role(cfg_of(), "role-c")
    names = sorted(p.name for p in run.of_type("aws:iam/rolePolicy:RolePolicy"))
    assert names == ["role-c-artefacts", "role-c-cloudwatch-agent", "role-c-parameters"]
    (read,) = [s for s in _policy(run, "role-c-parameters")["Statement"]
               if s["Sid"] == "ReadAppParameters"]
    assert read["Resource"] == [parameter_arn("us-east-1", ACCOUNT_ID,
                                              "/webstack/dev/hello/release-ref")]
    artefacts, bundle = _policy(run, "role-c-artefacts")["Statement"]
    assert artefacts == {"Sid": "ReadServerArtefacts", "Effect": "Allow",
                         "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{BUCKET}/artefacts/*"}
    assert bundle == {"Sid": "ReadAppBundle", "Effect": "Allow",
                      "Action": ["s3:GetObject", "s3:GetObjectVersion"],
                      "Resource": f"arn:aws:s3:::{BUCKET}/bundles/hello.tar"}


def test_git_app_may_read_no_bundle():
    run = _role(cfg_of(**{"webstack:appRepo": "https://git.example.com/acme/app.git"}), "role-g")
    (only,) = _policy(run, "role-g-artefacts")["Statement"]
    assert only["Resource"] == f"arn:aws:s3:::{BUCKET}/artefacts/*"


def test_bundle_is_one_versioned_object_its_pointer_names_the_version_and_old_ones_are_counted():
    bundle = BundleArgs(key="bundles/hello.tar", path=".webstack/bundles/ab.tar",
                        sha256="ab" * 32, kept=7)
    run = build(lambda: ServerArtefact("art-b", ArtefactArgs(
        bucket=BUCKET, key="artefacts/abc.tar", content=b"x", tags={"k": "v", "ManagedBy": "w"},
        bundle=bundle)))
    (obj,) = [o for o in run.of_type("aws:s3/bucketObjectv2:BucketObjectv2")
              if o.name == "art-b-bundle"]
    assert obj.inputs["key"] == "bundles/hello.tar"
    assert obj.inputs["metadata"] == {"sha256": "ab" * 32}
    assert obj.inputs["tags"] == {"ManagedBy": "w"}
    assert "contentBase64" not in obj.inputs and "content" not in obj.inputs  # not in state
    assert obj.inputs["source"].path == ".webstack/bundles/ab.tar"
    rules = {r["id"]: r for r in run.one(
        "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration").inputs["rules"]}
    assert rules["keep-bundles"]["filter"] == {"prefix": "bundles/"}
    assert rules["keep-bundles"]["noncurrentVersionExpiration"] == {
        "noncurrentDays": 1, "newerNoncurrentVersions": 7}
    assert rules["expire-noncurrent-artefacts"]["filter"] == {"prefix": "artefacts/"}


def test_artefact_bucket_is_private_encrypted_versioned_tls_only():
    content = b"x" * 1000
    run = build(lambda: ServerArtefact("art-a", ArtefactArgs(
        bucket=BUCKET, key="artefacts/abc.tar", content=content, tags={"k": "v"})))
    bucket = run.one("aws:s3/bucket:Bucket")
    assert bucket.inputs["bucket"] == BUCKET and bucket.inputs["forceDestroy"] is True
    block = run.one("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock").inputs
    assert all(block[k] is True for k in ("blockPublicAcls", "blockPublicPolicy",
                                          "ignorePublicAcls", "restrictPublicBuckets"))
    (rule,) = run.one("aws:s3/bucketServerSideEncryptionConfiguration:"
                      "BucketServerSideEncryptionConfiguration").inputs["rules"]
    assert rule["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "AES256"
    assert run.one("aws:s3/bucketVersioning:BucketVersioning").inputs[
        "versioningConfiguration"]["status"] == "Enabled"
    assert run.one("aws:s3/bucketOwnershipControls:BucketOwnershipControls").inputs[
        "rule"]["objectOwnership"] == "BucketOwnerEnforced"
    (deny,) = json.loads(run.one("aws:s3/bucketPolicy:BucketPolicy").inputs["policy"])[
        "Statement"]
    assert (deny["Effect"], deny["Principal"], deny["Action"]) == ("Deny", "*", "s3:*")
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert deny["Resource"] == [f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"]
    obj = run.one("aws:s3/bucketObjectv2:BucketObjectv2")  # a git app: no bundle
    assert obj.inputs["key"] == "artefacts/abc.tar"
    (rule,) = run.one("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration").inputs[
        "rules"]
    assert rule["id"] == "expire-noncurrent-artefacts" and rule["filter"] == {
        "prefix": "artefacts/"}
    assert base64.b64decode(obj.inputs["contentBase64"]) == content


def test_agent_may_ship_only_to_our_namespace_and_log_groups():
    cfg = cfg_of()
    statements = {s["Sid"]: s for s in json.loads(agent_policy(
        "us-east-1", ACCOUNT_ID, list(naming.log_groups(cfg).values())))[
        "Statement"]}
    assert statements["Metrics"]["Condition"] == {
        "StringEquals": {"cloudwatch:namespace": "CWAgent"}}
    logs = statements["Logs"]
    assert "logs:CreateLogGroup" not in logs["Action"]
    assert "logs:PutRetentionPolicy" not in logs["Action"]
    groups = naming.log_groups(cfg).values()
    assert sorted(logs["Resource"]) == sorted(
        [f"arn:aws:logs:us-east-1:{ACCOUNT_ID}:log-group:{g}" for g in groups]
        + [f"arn:aws:logs:us-east-1:{ACCOUNT_ID}:log-group:{g}:log-stream:*" for g in groups])


@pytest.mark.parametrize(("os_name", "arch", "owner", "pattern"), [
    ("debian-12", "x86_64", "136693071363", "debian-12-amd64-*"),
    ("debian-12", "arm64", "136693071363", "debian-12-arm64-*"),
    ("ubuntu-24.04", "x86_64", "099720109477",
     "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*"),
    ("ubuntu-24.04", "arm64", "099720109477",
     "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-arm64-server-*"),
])
def test_ami_from_official_owner(os_name, arch, owner, pattern):
    cfg = cfg_of(**{"webstack:serverOs": os_name, "webstack:serverArch": arch})
    query = ami_query(cfg.server)
    assert query.owners == (owner,) and ("name", pattern) in query.filters
    found = {}
    run = run_program("test", {"aws:region": "us-east-1"},
                      program=lambda: found.setdefault("image", lookup_image(cfg)))
    assert run.error is None and not found["image"].pinned
    (invoke,) = [i for i in run.invokes if i.token == "aws:ec2/getAmi:getAmi"]
    assert invoke.args["owners"] == [owner] and invoke.args["mostRecent"] is True
    filters = {f["name"]: f["values"] for f in invoke.args["filters"]}
    assert filters["name"] == [pattern] and filters["architecture"] == [arch]


def test_a_pinned_image_is_looked_up_by_id_from_any_owner():
    cfg = cfg_of(**{"webstack:serverImage": "ami-0fedcba9876543210"})
    query = ami_query(cfg.server)
    assert query.owners == () and ("image-id", "ami-0fedcba9876543210") in query.filters
    assert not any(k == "name" for k, _ in query.filters)


def test_fleet_launch_template_group_scaling_and_refresh():
    import pulumi

    cfg = cfg_of("prod", **{"webstack:serverCount": "3", "webstack:serverMinCount": "2",
                            "webstack:serverMaxCount": "6", "webstack:scalingCpuTarget": "60",
                            "webstack:refreshMinHealthyPercent": "75"})
    encoded = base64.b64encode(b"#cloud-config\n").decode()
    run = build(lambda: ServerFleet(
        "fleet-a", cfg.server, cfg.scaling, instance_type="t3a.medium", image=IMAGE, tags=cfg.tags,
        subnet_ids=pulumi.Output.from_input(["subnet-a", "subnet-b"]),
        security_group_id="sg-web", instance_profile_arn="arn:profile", key_name=None,
        user_data_base64=encoded, target_group_arn="arn:tg"))
    template = run.one("aws:ec2/launchTemplate:LaunchTemplate").inputs
    assert template["metadataOptions"]["httpTokens"] == "required"
    (disk,) = template["blockDeviceMappings"]
    assert disk["deviceName"] == "/dev/xvda"
    assert disk["ebs"] == {"volumeType": "gp3", "volumeSize": 20, "encrypted": "true",
                           "deleteOnTermination": "true"}
    assert template["userData"] == encoded and template["iamInstanceProfile"]["arn"]
    assert template["networkInterfaces"][0]["securityGroups"] == ["sg-web"]
    group = run.one("aws:autoscaling/group:Group")
    g = group.inputs
    assert (g["minSize"], g["desiredCapacity"], g["maxSize"]) == (2, 3, 6)
    assert g["vpcZoneIdentifiers"] == ["subnet-a", "subnet-b"]  # at least two subnets
    assert g["targetGroupArns"] == ["arn:tg"] and g["healthCheckType"] == "ELB"
    # the provider waits for nothing (its ELB wait counts exactly N on updates too); the
    # readiness gate waits, after the listeners
    assert g["waitForCapacityTimeout"] == "0" and "waitForElbCapacity" not in g
    assert "minElbCapacity" not in g
    refresh = g["instanceRefresh"]
    assert refresh["strategy"] == "Rolling"
    assert refresh["preferences"]["minHealthyPercentage"] == 75
    assert g["launchTemplate"]["version"] == "1"  # follows the template's latest version
    assert "desiredCapacity" in group.ignore_changes  # scaling must not be undone by `up`
    policy = run.one("aws:autoscaling/policy:Policy").inputs
    tracking = policy["targetTrackingConfiguration"]
    assert policy["policyType"] == "TargetTrackingScaling" and tracking["targetValue"] == 60
    assert tracking["predefinedMetricSpecification"]["predefinedMetricType"] == (
        "ASGAverageCPUUtilization")


def test_fixed_size_fleet_keeps_the_count_it_is_given():
    """No bounds: serverCount is the size, and a change of it resizes the group on `up`."""
    import pulumi

    cfg = cfg_of("prod", **{"webstack:serverCount": "3"})
    run = build(lambda: ServerFleet(
        "fleet-fixed", cfg.server, cfg.scaling, instance_type="t3a.medium", image=IMAGE,
        tags=cfg.tags,
        subnet_ids=pulumi.Output.from_input(["subnet-a", "subnet-b"]),
        security_group_id="sg-web", instance_profile_arn="arn:profile", key_name=None,
        user_data_base64=base64.b64encode(b"#cloud-config\n").decode(),
        target_group_arn="arn:tg"))
    group = run.one("aws:autoscaling/group:Group")
    assert (group.inputs["minSize"], group.inputs["desiredCapacity"],
            group.inputs["maxSize"]) == (3, 3, 3)
    assert group.ignore_changes == []
    assert not run.of_type("aws:autoscaling/policy:Policy")  # nothing to scale between
    template = run.one("aws:ec2/launchTemplate:LaunchTemplate")
    assert template.ignore_changes == ["imageId"]


def test_admin_key_pair_only_with_a_key():
    with_key = cfg_of(**{"webstack:sshPublicKey": ED25519_KEY})
    run = build(lambda: firewall("fw-key", with_key))
    assert run.one("aws:ec2/keyPair:KeyPair").inputs["publicKey"].startswith("ssh-ed25519")
    run = build(lambda: firewall("fw-nokey", cfg_of()))
    assert not run.of_type("aws:ec2/keyPair:KeyPair")


# --- parameters, rollout, monitoring ---------------------------------------------------------

def test_parameters_store_secrets_encrypted_and_the_release_ref():
    import pulumi

    raw = {**stack_config("dev"), "webstack:appSecretValues": arr("API_KEY=s3cr3t-value"),
           "webstack:appRepo": "https://git.example.com/acme/app.git",
           "webstack:appRef": "v1.4.2"}
    cfg = config.parse(raw, project="webstack", stack="dev", region="us-east-1",
                       supported_regions=REGIONS,
                       secret_keys=frozenset({"webstack:appSecretValues"}))
    run = build(lambda: parameters(
        "params-a", cfg, secret_values={"API_KEY": pulumi.Output.from_input("s3cr3t-value")}))
    by_name = {r.inputs["name"]: r.inputs for r in run.of_type("aws:ssm/parameter:Parameter")}
    ref = by_name["/webstack/dev/hello/release-ref"]
    assert ref["type"] == "String" and ref["insecureValue"] == "v1.4.2" and "value" not in ref
    bundled = build(lambda: parameters("params-b", cfg_of(), {}, pointer="ef" * 32 + "@v1"))
    (pointer,) = bundled.of_type("aws:ssm/parameter:Parameter")
    assert pointer.inputs["insecureValue"] == "ef" * 32 + "@v1"
    secret = by_name["/webstack/dev/hello/secrets/API_KEY"]
    assert secret["type"] == "SecureString"
    envelope = secret["value"]  # a Pulumi secret: encrypted in state, masked in output
    assert isinstance(envelope, dict) and envelope["value"] == "s3cr3t-value"
    assert set(envelope) == {"4dabf18193072939515e22adb298388d", "value"}


LETSENCRYPT = {**GOOD_ZONE, "webstack:tlsMode": "letsencrypt",
               "webstack:tlsEmail": "ops@example.com"}


def test_letsencrypt_gets_a_certificate_slot_the_server_owns():
    cfg = cfg_of(**LETSENCRYPT)
    run = build(lambda: parameters("params-le", cfg, secret_values={}))
    (slot,) = [r for r in run.of_type("aws:ssm/parameter:Parameter")
               if r.inputs["name"] == naming.tls_parameter(cfg)]
    assert slot.inputs["name"] == "/webstack/dev/hello/tls/letsencrypt"
    assert (slot.inputs["type"], slot.inputs["tier"]) == ("SecureString", "Advanced")
    # a placeholder, as a secret; the server's certificate never diffs and never enters state
    envelope = slot.inputs["value"]
    assert set(envelope) == {"4dabf18193072939515e22adb298388d", "value"}
    assert envelope["value"] == TLS_PLACEHOLDER == "none"
    assert slot.ignore_changes == ["value"]
    assert slot in children_of(run, "webstack:parameters:AppParameters")
    plain = build(lambda: parameters("params-no-le", cfg_of(), secret_values={}))
    assert not [r for r in plain.of_type("aws:ssm/parameter:Parameter")
                if "/tls/" in r.inputs["name"]]


def test_letsencrypt_server_may_read_and_write_exactly_its_certificate_slot():
    cfg = cfg_of(**LETSENCRYPT)
    run = _role(cfg, "role-le")
    policies = {r.name.removeprefix("role-le-"): json.loads(r.inputs["policy"])
                for r in run.of_type("aws:iam/rolePolicy:RolePolicy")}
    assert set(policies) == {"artefacts", "cloudwatch-agent", "parameters", "tls-store"}
    (statement,) = policies["tls-store"]["Statement"]
    assert statement == {
        "Sid": "StoreTlsCertificate", "Effect": "Allow",
        "Action": ["ssm:GetParameter", "ssm:PutParameter"],
        "Resource": f"arn:aws:ssm:us-east-1:{ACCOUNT_ID}:parameter/webstack/dev/hello/tls/"
                    "letsencrypt"}
    assert statement["Resource"] == parameter_arn("us-east-1", ACCOUNT_ID,
                                                  naming.tls_parameter(cfg))
    # nothing else may put a parameter
    others = [s for name, p in policies.items() if name != "tls-store" for s in p["Statement"]]
    assert not [s for s in others if "ssm:PutParameter" in s["Action"]]
    assert "tls-store" not in {r.name.removeprefix("role-p-") for r in
                               _role(cfg_of(), "role-p").of_type("aws:iam/rolePolicy:RolePolicy")}


def test_rollout_runs_only_when_the_ref_changes():
    import pulumi

    cfg = cfg_of("prod", **{"webstack:appRepo": "https://git.example.com/acme/app.git",
                            "webstack:appRef": "v2.0.0"})
    run = build(lambda: Rollout("roll-a", cfg, AwsIdentity(ACCOUNT_ID), pointer="v2.0.0",
                                code="v2.0.0", group_name=pulumi.Output.from_input("asg-1"),
                                target_group_arn=pulumi.Output.from_input("arn:tg")))
    (cmd,) = run.of_type("command:local:Command")
    assert cmd.inputs["triggers"] == ["v2.0.0"]
    assert cmd.inputs["create"] == rollout_command(
        cfg, ref="v2.0.0", aws_args=["--account", ACCOUNT_ID], group_name="asg-1",
        target_group_arn="arn:tg")
    assert "--asg-name asg-1 --target-group-arn arn:tg" in cmd.inputs["create"]
    assert "--ref v2.0.0" in cmd.inputs["create"]


def test_bundle_rollout_runs_when_the_code_changes_and_releases_the_uploaded_version():
    import pulumi

    sha = "cd" * 32
    run = build(lambda: Rollout("roll-b", cfg_of(), AwsIdentity(ACCOUNT_ID), code=sha,
                                pointer=pulumi.Output.from_input(f"{sha}@v3"),
                                instance_id=pulumi.Output.from_input("i-0123456789abcdef0")))
    (cmd,) = run.of_type("command:local:Command")
    assert cmd.inputs["triggers"] == [sha]  # known at preview; the version is not
    assert f"--ref {sha}@v3" in cmd.inputs["create"]


def _alarms(run: MockRun) -> dict[str, dict]:
    return {r.name.split("-", 2)[2]: r.inputs
            for r in run.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")}


def test_single_server_alarms_thresholds_recovery_and_topic():
    cfg = cfg_of(**{"webstack:alertEmails": arr("ops@example.com", "web@example.com"),
                    "webstack:alarmCpuPercent": "70", "webstack:alarmDiskPercent": "90",
                    "webstack:logRetentionDays": "14"})
    run = build(lambda: (
        LogGroups("logs-a", names=naming.log_groups(cfg),
                  retention_days=cfg.monitoring.log_retention_days, tags=cfg.tags),
        monitoring("mon-a", cfg, servers="i-123")))
    topic = run.one("aws:sns/topic:Topic")
    subs = run.of_type("aws:sns/topicSubscription:TopicSubscription")
    assert sorted(s.inputs["endpoint"] for s in subs) == ["ops@example.com", "web@example.com"]
    assert all(s.inputs["protocol"] == "email" for s in subs)
    alarms = _alarms(run)
    assert set(alarms) == {"cpu-high", "memory-high", "disk-full", "system-check",
                           "instance-check"}
    assert alarms["cpu-high"]["threshold"] == 70 and alarms["disk-full"]["threshold"] == 90
    assert alarms["memory-high"]["threshold"] == 85
    assert alarms["memory-high"]["namespace"] == "CWAgent"
    for alarm in alarms.values():
        assert alarm["dimensions"] == {"InstanceId": "i-123"}
        assert alarm["alarmActions"][0] == topic.state["arn"]
    assert "arn:aws:automate:us-east-1:ec2:recover" in alarms["system-check"]["alarmActions"]
    groups = {r.inputs["name"]: r.inputs for r in run.of_type("aws:cloudwatch/logGroup:LogGroup")}
    assert set(groups) == set(naming.log_groups(cfg).values())
    assert all(g["retentionInDays"] == 14 for g in groups.values())
    body = json.loads(run.one("aws:cloudwatch/dashboard:Dashboard").inputs["dashboardBody"])
    assert body["widgets"][0]["properties"]["metrics"][0][-1] == "i-123"


def test_fleet_alarms_cover_the_group_the_alb_and_the_certificate():
    cfg = cfg_of("prod", **{"webstack:alarm5xxPercent": "3", "webstack:alarmCertExpiryDays": "21"})
    run = build(lambda: monitoring("mon-b", cfg, servers="asg-1", lb_arn_suffix="app/lb/1",
                                   tg_arn_suffix="targetgroup/tg/2", certificate_arn="arn:cert"))
    alarms = _alarms(run)
    assert set(alarms) == {"cpu-high", "memory-high", "disk-full", "status-check", "http-5xx",
                           "unhealthy-hosts", "certificate-expiry"}
    assert alarms["cpu-high"]["dimensions"] == {"AutoScalingGroupName": "asg-1"}
    assert alarms["unhealthy-hosts"]["dimensions"] == {"LoadBalancer": "app/lb/1",
                                                       "TargetGroup": "targetgroup/tg/2"}
    rate = alarms["http-5xx"]
    assert rate["threshold"] == 3 and "metricName" not in rate
    (expression,) = [q for q in rate["metricQueries"] if q.get("returnData")]
    assert "HTTPCode" not in expression["expression"] and "requests" in expression["expression"]
    assert {q["metric"]["dimensions"]["LoadBalancer"] for q in rate["metricQueries"]
            if "metric" in q} == {"app/lb/1"}
    cert = alarms["certificate-expiry"]
    assert cert["threshold"] == 21 and cert["comparisonOperator"] == "LessThanThreshold"
    assert cert["dimensions"] == {"CertificateArn": "arn:cert"}
    assert all("recover" not in a for alarm in alarms.values() for a in alarm["alarmActions"])


# --- Certificate, LoadBalancer, Dns ------------------------------------------------------------

def test_certificate_validated_through_one_record_per_name():
    names = ("app.example.com", "www.example.com")
    holder = {}
    run = build(lambda: holder.setdefault("c", Certificate(
        "cert-a", names=names, zone_id="Z1", tags={"t": "1"})))
    cert = run.one("aws:acm/certificate:Certificate")
    assert cert.inputs["domainName"] == "app.example.com"
    assert cert.inputs["subjectAlternativeNames"] == ["www.example.com"]
    assert cert.inputs["validationMethod"] == "DNS"
    records = run.of_type("aws:route53/record:Record")
    options = {o["domainName"]: o for o in cert.state["domainValidationOptions"]}
    assert sorted((r.inputs["name"], r.inputs["records"][0]) for r in records) == sorted(
        (o["resourceRecordName"], o["resourceRecordValue"]) for o in options.values())
    validation = run.one("aws:acm/certificateValidation:CertificateValidation")
    assert sorted(validation.inputs["validationRecordFqdns"]) == sorted(
        r.inputs["name"].rstrip(".") for r in records)
    # the ARN handed on is the validation's: listeners wait for the certificate to be issued
    assert {record.urn for record in records} <= set(validation.dependencies)


def test_load_balancer_https_policy_redirect_and_health_check():
    cfg = cfg_of("prod")
    run = build(lambda: load_balancer(
        "lb-a", cfg, vpc_id="vpc-1", subnet_ids=["subnet-a", "subnet-b"],
        security_group_id="sg-alb", instance_ids=["i-1", "i-2"], certificate_arn="arn:cert"))
    alb = run.one("aws:lb/loadBalancer:LoadBalancer").inputs
    assert alb["loadBalancerType"] == "application" and alb["dropInvalidHeaderFields"] is True
    assert alb["subnets"] == ["subnet-a", "subnet-b"]
    tg = run.one("aws:lb/targetGroup:TargetGroup").inputs
    assert tg["healthCheck"]["path"] == "/healthz" and tg["healthCheck"]["matcher"] == "200"
    listeners = {r.inputs["port"]: r.inputs for r in run.of_type("aws:lb/listener:Listener")}
    assert listeners[443]["sslPolicy"] == TLS_POLICY
    assert listeners[443]["certificateArn"] == "arn:cert"
    redirect = listeners[80]["defaultActions"][0]
    assert redirect["type"] == "redirect" and redirect["redirect"]["protocol"] == "HTTPS"
    attachments = run.of_type("aws:lb/targetGroupAttachment:TargetGroupAttachment")
    assert sorted(a.inputs["targetId"] for a in attachments) == ["i-1", "i-2"]


def test_load_balancer_without_tls_forwards_http():
    cfg = cfg_of(**{"webstack:serverCount": "2"})
    run = build(lambda: load_balancer(
        "lb-b", cfg, vpc_id="vpc-1", subnet_ids=["subnet-a"], security_group_id="sg-alb",
        instance_ids=["i-1", "i-2"], certificate_arn=None))
    (listener,) = run.of_type("aws:lb/listener:Listener")
    assert listener.inputs["port"] == 80
    assert listener.inputs["defaultActions"][0]["type"] == "forward"


def test_dns_alias_to_alb_or_a_record_to_ip():
    names = ("app.example.com", "www.example.com")
    run = build(lambda: Dns("dns-a", names=names, zone_id="Z1",
                            target=Endpoint("lb.aws", zone_id="ZLB")))
    records = run.of_type("aws:route53/record:Record")
    assert sorted(r.inputs["name"] for r in records) == sorted(names)
    assert all(r.inputs["aliases"][0]["name"] == "lb.aws" for r in records)
    run = build(lambda: Dns("dns-b", names=names[:1], zone_id="Z1",
                            target=Endpoint("198.51.100.7")))
    (record,) = run.of_type("aws:route53/record:Record")
    assert record.inputs["records"] == ["198.51.100.7"] and record.inputs["type"] == "A"
