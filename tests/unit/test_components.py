"""Each component under Pulumi mocks: what it registers, with which inputs, under which parent."""

from __future__ import annotations

import base64
import ipaddress
import json

import pytest

from components import config
from components.certificate import Certificate
from components.dns import Dns
from components.firewall import Firewall, rules
from components.loadbalancer import TLS_POLICY, LoadBalancer
from components.network import Network, subnet_cidrs
from components.webserver import MANAGED_POLICIES, WebServer, ami_query, parameter_arn
from devtools.mockrun import ACCOUNT_ID, MockRun, run_program, stack_config
from tests.cases import GOOD_ZONE, arr

REGIONS = ("us-east-1",)


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


def children_of(run: MockRun, component_type: str) -> list:
    parent = [r for r in run.resources if r.type == component_type]
    assert len(parent) == 1, component_type
    return [r for r in run.resources if r.parent == parent[0].urn]


# --- Network ---------------------------------------------------------------------------------

def test_subnet_cidrs_split_without_overlap():
    nets = [ipaddress.ip_network(c) for c in subnet_cidrs("10.42.0.0/16", 3)]
    assert [str(n) for n in nets] == ["10.42.0.0/20", "10.42.16.0/20", "10.42.32.0/20"]
    assert subnet_cidrs("192.168.1.0/24", 2) == ["192.168.1.0/28", "192.168.1.16/28"]


def test_network_default_vpc_creates_nothing_and_sorts_subnets():
    cfg = cfg_of()
    holder = {}
    run = build(lambda: holder.setdefault("n", Network("net-a", cfg.network, cfg.tags)))
    assert [r.type for r in run.resources] == ["webstack:network:Network"]
    tokens = [i.token for i in run.invokes]
    assert "aws:ec2/getVpc:getVpc" in tokens and "aws:ec2/getSubnets:getSubnets" in tokens
    subnets = next(i for i in run.invokes if i.token == "aws:ec2/getSubnets:getSubnets")
    assert {"name": "default-for-az", "values": ["true"]} in subnets.args["filters"]


def test_network_created_vpc_spans_distinct_zones():
    cfg = cfg_of(**{"webstack:networkCreateVpc": "true", "webstack:networkAzCount": "3"})
    run = build(lambda: Network("net-b", cfg.network, cfg.tags))
    kids = children_of(run, "webstack:network:Network")
    assert len(kids) == len(run.resources) - 1  # everything is parented to the component
    assert run.one("aws:ec2/vpc:Vpc").inputs["cidrBlock"] == "10.42.0.0/16"
    subnets = sorted(run.of_type("aws:ec2/subnet:Subnet"), key=lambda r: r.name)
    assert len(subnets) == 3
    assert len({s.inputs["availabilityZone"] for s in subnets}) == 3
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
    run = build(lambda: Firewall("fw-a", cfg, "vpc-1"))
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
    assert {(r.port, r.cidr) for r in rules(cfg) if r.direction == "ingress"} == {
        (80, "0.0.0.0/0"), (80, "::/0"), (443, "0.0.0.0/0"), (443, "::/0")}


def test_load_balanced_servers_accept_http_only_from_the_alb():
    cfg = cfg_of("prod")
    run = build(lambda: Firewall("fw-b", cfg, "vpc-1"))
    assert len(run.of_type("aws:ec2/securityGroup:SecurityGroup")) == 2
    plan = rules(cfg)
    web_in = [r for r in plan if r.group == "web" and r.direction == "ingress"]
    assert [(r.port, r.peer, r.cidr) for r in web_in] == [(80, "alb", None)]
    alb_in = {(r.port, r.cidr) for r in plan if r.group == "alb" and r.direction == "ingress"}
    assert alb_in == {(80, "0.0.0.0/0"), (80, "::/0"), (443, "0.0.0.0/0"), (443, "::/0")}
    from_alb = [r for r in _ingress(run) if r.get("referencedSecurityGroupId")]
    assert len(from_alb) == 1 and from_alb[0]["fromPort"] == 80


def test_ssh_only_from_admin_cidrs():
    cfg = cfg_of(**{"webstack:adminCidrs": arr("203.0.113.0/24", "2001:db8::/32")})
    run = build(lambda: Firewall("fw-c", cfg, "vpc-1"))
    ssh = [r for r in _ingress(run) if r["fromPort"] == 22]
    assert sorted(r.get("cidrIpv4") or r["cidrIpv6"] for r in ssh) == [
        "2001:db8::/32", "203.0.113.0/24"]


def test_ssh_git_remote_opens_egress_22():
    https_repo = cfg_of(**{"webstack:appRepo": "https://github.com/acme/app.git"})
    ssh_repo = cfg_of(**{"webstack:appRepo": "git@github.com:acme/app.git"})
    assert 22 not in {r.port for r in rules(https_repo) if r.direction == "egress"}
    assert 22 in {r.port for r in rules(ssh_repo) if r.direction == "egress"}


# --- WebServer -------------------------------------------------------------------------------

def _server(cfg: config.StackConfig, name: str, user_data: str = "#cloud-config\n") -> MockRun:
    import pulumi

    encoded = base64.b64encode(user_data.encode()).decode()
    return build(lambda: WebServer(name, cfg, instance_type="t3a.micro",
                                   subnet_ids=pulumi.Output.from_input(["subnet-a", "subnet-b"]),
                                   security_group_id="sg-1", user_data_base64=encoded))


def test_single_server_hardening_and_elastic_ip():
    cfg = cfg_of()
    run = _server(cfg, "srv-a", "#cloud-config\npackages: [nginx]\n")
    instance = run.one("aws:ec2/instance:Instance").inputs
    assert instance["metadataOptions"]["httpTokens"] == "required"
    assert instance["rootBlockDevice"] == {"volumeType": "gp3", "volumeSize": 10,
                                           "encrypted": True, "deleteOnTermination": True}
    assert base64.b64decode(instance["userDataBase64"]).decode().startswith("#cloud-config")
    assert instance["userDataReplaceOnChange"] is True
    assert instance["instanceType"] == "t3a.micro"
    assert instance["ami"] == "ami-x86640123456789"
    assert instance["tags"]["Name"] == "hello-dev-1" and instance["tags"]["ManagedBy"] == "pulumi"
    eip = run.one("aws:ec2/eip:Eip").inputs
    assert eip["domain"] == "vpc" and eip["instance"].startswith("i-")
    assert "aws:ec2/keyPair:KeyPair" not in {r.type for r in run.resources}


def test_role_has_only_ssm_and_cloudwatch_and_exact_secrets():
    cfg = cfg_of(**{"webstack:appSecrets": arr("DB_URL=/hello/dev/db", "API_KEY=hello-api")})
    run = _server(cfg, "srv-b")
    attached = sorted(r.inputs["policyArn"] for r in
                      run.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment"))
    assert attached == sorted(MANAGED_POLICIES)
    policy = json.loads(run.one("aws:iam/rolePolicy:RolePolicy").inputs["policy"])
    (statement,) = policy["Statement"]
    assert statement["Resource"] == sorted([
        parameter_arn("us-east-1", ACCOUNT_ID, "/hello/dev/db"),
        parameter_arn("us-east-1", ACCOUNT_ID, "hello-api")])
    assert statement["Resource"][1] == f"arn:aws:ssm:us-east-1:{ACCOUNT_ID}:parameter/hello/dev/db"
    trust = json.loads(run.one("aws:iam/role:Role").inputs["assumeRolePolicy"])
    assert trust["Statement"][0]["Principal"] == {"Service": "ec2.amazonaws.com"}


def test_no_secrets_no_secret_policy():
    run = _server(cfg_of(), "srv-c")
    assert not run.of_type("aws:iam/rolePolicy:RolePolicy")


@pytest.mark.parametrize(("os_name", "arch", "owner", "pattern"), [
    ("debian-12", "x86_64", "136693071363", "debian-12-amd64-*"),
    ("debian-12", "arm64", "136693071363", "debian-12-arm64-*"),
    ("ubuntu-24.04", "x86_64", "099720109477",
     "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*"),
    ("ubuntu-24.04", "arm64", "099720109477",
     "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-arm64-server-*"),
])
def test_ami_from_official_owner(os_name, arch, owner, pattern):
    query = ami_query(os_name, arch)
    assert (query.owner, query.name_pattern, query.architecture) == (owner, pattern, arch)
    cfg = cfg_of(**{"webstack:serverOs": os_name, "webstack:serverArch": arch})
    run = _server(cfg, f"srv-{os_name}-{arch}")
    (invoke,) = [i for i in run.invokes if i.token == "aws:ec2/getAmi:getAmi"]
    assert invoke.args["owners"] == [owner] and invoke.args["mostRecent"] is True
    filters = {f["name"]: f["values"] for f in invoke.args["filters"]}
    assert filters["name"] == [pattern] and filters["architecture"] == [arch]


def test_several_servers_spread_over_subnets_without_elastic_ips():
    cfg = cfg_of("prod", **{"webstack:serverCount": "3",
                            "webstack:sshPublicKey": "ssh-ed25519 AAAAC3Nza me@host"})
    run = _server(cfg, "srv-d")
    instances = sorted(run.of_type("aws:ec2/instance:Instance"), key=lambda r: r.name)
    assert [i.inputs["subnetId"] for i in instances] == ["subnet-a", "subnet-b", "subnet-a"]
    assert not run.of_type("aws:ec2/eip:Eip")
    assert run.one("aws:ec2/keyPair:KeyPair").inputs["publicKey"].startswith("ssh-ed25519")
    assert all(i.inputs["keyName"] for i in instances)


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
    run = build(lambda: LoadBalancer(
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
    run = build(lambda: LoadBalancer(
        "lb-b", cfg, vpc_id="vpc-1", subnet_ids=["subnet-a"], security_group_id="sg-alb",
        instance_ids=["i-1", "i-2"], certificate_arn=None))
    (listener,) = run.of_type("aws:lb/listener:Listener")
    assert listener.inputs["port"] == 80
    assert listener.inputs["defaultActions"][0]["type"] == "forward"


def test_dns_alias_to_alb_or_a_record_to_ip():
    names = ("app.example.com", "www.example.com")
    run = build(lambda: Dns("dns-a", names=names, zone_id="Z1", alb_dns_name="lb.aws",
                            alb_zone_id="ZLB"))
    records = run.of_type("aws:route53/record:Record")
    assert sorted(r.inputs["name"] for r in records) == sorted(names)
    assert all(r.inputs["aliases"][0]["name"] == "lb.aws" for r in records)
    run = build(lambda: Dns("dns-b", names=names[:1], zone_id="Z1", public_ip="198.51.100.7"))
    (record,) = run.of_type("aws:route53/record:Record")
    assert record.inputs["records"] == ["198.51.100.7"] and record.inputs["type"] == "A"
