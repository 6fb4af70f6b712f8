"""Runs the real Pulumi program in-process under mocks, recording every registration.

Shared by the tests, `scripts/bench_program.py` and the demo's plan. Design choices follow
shared/notes/pulumi-offline-testing.md: `preview=False` so every apply runs; every invoke token we
use is answered explicitly and an unknown one raises (an unmocked invoke silently returns `{}`);
a fresh root stack per run; the monitor itself is subclassed so that each registration's parent
and dependencies are recorded, not only its inputs.
"""

from __future__ import annotations

import hashlib
import json
import runpy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pulumi
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import settings as pulumi_settings
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from components.config import stack_file_settings

PROJECT_DIR = Path(__file__).resolve().parent.parent
MAIN = PROJECT_DIR / "__main__.py"
CI_MAIN = MAIN.parent / "ci" / "__main__.py"  # the ci stack (components/ci.py)
ACCOUNT_ID = "123456789012"
DEFAULT_VPC_CIDR = "172.31.0.0/16"
MOCK_AUTH_TOKEN = "MockAuthToken-" + "k" * 50  # tests look for it where it must never be
MOCK_ECR_PASSWORD = "MockEcrPassword-" + "e" * 40  # the registry token: a secret of the build


@dataclass
class Registration:
    urn: str
    type: str
    name: str
    custom: bool
    parent: str
    inputs: dict[str, Any]
    dependencies: list[str]
    ignore_changes: list[str] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)
    protect: bool = False
    id: str = ""  # the mock provider's ID (custom resources)
    timeouts: dict[str, str] = field(default_factory=dict)  # custom_timeouts given
    secret_outputs: list[str] = field(default_factory=list)  # additional_secret_outputs


@dataclass
class Invocation:
    token: str
    args: dict[str, Any]


@dataclass
class MockRun:
    resources: list[Registration]
    invokes: list[Invocation]
    outputs: dict[str, Any]
    error: BaseException | None = None

    def of_type(self, type_: str) -> list[Registration]:
        return [r for r in self.resources if r.type == type_]

    def one(self, type_: str) -> Registration:
        found = self.of_type(type_)
        assert len(found) == 1, f"expected one {type_}, found {len(found)}"
        return found[0]

    def by_urn(self) -> dict[str, Registration]:
        return {r.urn: r for r in self.resources}


class InvokeFailure(grpc.RpcError):
    """How the engine reports a provider's failed invoke (e.g. "no matching EC2 VPC found"):
    a gRPC error, which the SDK raises in the program as a catchable exception. A plain Python
    exception from a mock would instead count as an unhandled RPC error and fail the run."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.UNKNOWN

    def details(self) -> str:
        return self.message


def _az(region: str, i: int) -> str:
    return f"{region}{'abcdef'[i]}"


class RecordingMocks(pulumi.runtime.Mocks):
    """Answers resources with plausible provider state, and invokes by exact token."""

    def __init__(self, region: str = "us-east-1",
                 extra_invokes: Mapping[str, Callable[[dict[str, Any]], dict[str, Any]]] | None
                 = None):
        self.region = region
        self.unoffered: set[str] = set()  # zones that do not offer the servers' instance type
        self.images = 1  # how many newer official images have been published since
        self.invokes: list[Invocation] = []
        self.states: dict[str, dict[str, Any]] = {}
        self.ids: dict[str, str] = {}
        self._invoke_handlers: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "aws:ec2/getAmi:getAmi": self._ami,
            "aws:ec2/getVpc:getVpc": lambda a: {"id": "vpc-default", "cidrBlock": DEFAULT_VPC_CIDR,
                                                "default": True},
            "aws:ec2/getSubnets:getSubnets": lambda a: {
                "id": self.region, "ids": ["subnet-0c", "subnet-0a", "subnet-0b"]},
            "aws:ec2/getSubnet:getSubnet": lambda a: {
                "id": a["id"], "availabilityZone": f"{self.region}{a['id'][-1]}"},
            "aws:ec2/getInstanceTypeOfferings:getInstanceTypeOfferings": lambda a: {
                "id": self.region, "locations": [_az(self.region, i) for i in range(6)
                                                 if _az(self.region, i) not in self.unoffered],
                "locationTypes": ["availability-zone"] * 6,
                "instanceTypes": [f["values"][0] for f in a.get("filters", [])]},
            "aws:index/getAvailabilityZones:getAvailabilityZones": lambda a: {
                "id": self.region, "names": [_az(self.region, i) for i in range(6)],
                "zoneIds": [f"use1-az{i + 1}" for i in range(6)]},
            "aws:route53/getZone:getZone": lambda a: {
                "id": "Z0WEBSTACKZONE", "zoneId": "Z0WEBSTACKZONE", "name": a.get("name", "")},
            "aws:index/getCallerIdentity:getCallerIdentity": lambda a: {
                "id": ACCOUNT_ID, "accountId": ACCOUNT_ID,
                "arn": f"arn:aws:iam::{ACCOUNT_ID}:user/test", "userId": "AIDTEST"},
            "aws:index/getPartition:getPartition": lambda a: {
                "id": "aws", "partition": "aws", "dnsSuffix": "amazonaws.com"},
            "aws:ecr/getAuthorizationToken:getAuthorizationToken": lambda a: {
                "id": self.region, "userName": "AWS", "password": MOCK_ECR_PASSWORD,
                "authorizationToken": "QVdTOm1vY2s=", "expiresAt": "2026-12-02T00:00:00Z",
                "proxyEndpoint": f"https://{a.get('registryId', ACCOUNT_ID)}.dkr.ecr."
                                 f"{self.region}.amazonaws.com"},
            "aws:index/getRegion:getRegion": lambda a: {
                "id": self.region, "name": self.region, "region": self.region},
            **dict(extra_invokes or {}),
        }

    def fail(self, token: str, message: str) -> None:
        """Make the invoke `token` fail as the provider would."""
        def failing(_args: dict[str, Any]) -> dict[str, Any]:
            raise InvokeFailure(message)
        self._invoke_handlers[token] = failing

    def _ami(self, args: dict[str, Any]) -> dict[str, Any]:
        filters = {f["name"]: f["values"] for f in args.get("filters", [])}
        arch = (filters.get("architecture") or ["x86_64"])[0]
        pinned = (filters.get("image-id") or [""])[0]
        newest = f"ami-{'a' if arch == 'arm64' else '0'}{self.images:016x}"  # the newest
        return {"id": pinned or newest, "architecture": arch,
                "name": (filters.get("name") or [pinned])[0],
                "ownerId": (args.get("owners") or ["123456789012"])[0],
                "rootDeviceName": "/dev/xvda"}

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict, list[tuple[str, str]] | None]:
        self.invokes.append(Invocation(args.token, dict(args.args)))
        handler = self._invoke_handlers.get(args.token)
        if handler is None:
            raise NotImplementedError(f"invoke {args.token} is not mocked: add it to "
                                      "devtools/mockrun.py so it cannot silently return {{}}")
        return handler(dict(args.args)), []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        # IDs from the resource's own name, not the registration order: the order of applies
        # varies between runs, and a second run must see the same IDs (tests/unit/
        # test_replacement.py compares runs).
        n = int(hashlib.sha256(f"{args.typ}::{args.name}".encode()).hexdigest()[:12], 16)
        state = dict(args.inputs)
        typ, name = args.typ, args.name
        rid = f"{name}-id"
        arn = f"arn:aws:mock:{self.region}:{ACCOUNT_ID}:{typ.split(':')[-1].lower()}/{name}"
        state.setdefault("arn", arn)
        if typ == "aws:ec2/instance:Instance":
            rid = f"i-{n:017x}"
            state.update(publicIp=f"203.0.113.{n % 250 + 1}", privateIp=f"10.0.0.{n % 250 + 1}")
        elif typ == "aws:ec2/eip:Eip":
            rid = f"eipalloc-{n:08x}"
            state.update(publicIp=f"198.51.100.{n % 250 + 1}", allocationId=rid)
        elif typ == "aws:lb/loadBalancer:LoadBalancer":
            state.update(dnsName=f"{name}-{n}.{self.region}.elb.amazonaws.com",
                         zoneId="Z35SXDOTRQ7X7K", arnSuffix=f"app/{name}/{n:016x}")
        elif typ == "aws:lb/targetGroup:TargetGroup":
            state.update(arnSuffix=f"targetgroup/{name}/{n:016x}")
        elif typ == "aws:ec2/launchTemplate:LaunchTemplate":
            state.update(latestVersion=1)
        elif typ == "aws:autoscaling/group:Group":
            state.setdefault("name", f"{name}-{n:07x}")  # the provider auto-names it
        elif typ == "aws:cloudwatch/dashboard:Dashboard":
            state.setdefault("dashboardName", args.inputs.get("dashboardName", name))
        elif typ == "aws:acm/certificate:Certificate":
            names = [args.inputs["domainName"], *args.inputs.get("subjectAlternativeNames", [])]
            state["domainValidationOptions"] = [
                {"domainName": d, "resourceRecordName": f"_{n}v{i}.{d}.",
                 "resourceRecordType": "CNAME",
                 "resourceRecordValue": f"_{n}x{i}.acm-validations.aws."}
                for i, d in enumerate(names)]
        elif typ == "aws:acm/certificateValidation:CertificateValidation":
            rid = args.inputs["certificateArn"]
        elif typ == "aws:route53/record:Record":
            state["fqdn"] = args.inputs["name"].rstrip(".")
        elif typ in ("aws:iam/role:Role", "aws:iam/instanceProfile:InstanceProfile"):
            state.setdefault("name", name)
        elif typ == "aws:ec2/keyPair:KeyPair":
            state.setdefault("keyName", f"{name}-{n:07x}")  # the provider auto-names it
        elif typ == "aws:ec2/vpc:Vpc":
            rid = f"vpc-{n:08x}"
        elif typ == "aws:ec2/subnet:Subnet":
            rid = f"subnet-{n:08x}"
        elif typ == "aws:ec2/securityGroup:SecurityGroup":
            rid = f"sg-{n:08x}"
        elif typ == "aws:rds/instance:Instance":
            host = f"{args.inputs['identifier']}.c{n:010x}.{self.region}.rds.amazonaws.com"
            port = 5432 if args.inputs["engine"] == "postgres" else 3306
            state.update(address=host, port=port, endpoint=f"{host}:{port}",
                         masterUserSecrets=[{
                             "secretArn": f"arn:aws:secretsmanager:{self.region}:{ACCOUNT_ID}"
                                          f":secret:rds!db-{n:08x}-AbCdEf",
                             "secretStatus": "active", "kmsKeyId": "alias/aws/secretsmanager"}])
        elif typ == "aws:elasticache/cluster:Cluster":
            cid = args.inputs["clusterId"]
            suffix = f"{cid}.{n % 4096:03x}abc.cfg.use1.cache.amazonaws.com"
            state.update(clusterAddress=suffix, cacheNodes=[
                {"id": f"{i:04d}", "address": f"{cid}.{n % 4096:03x}abc.{i:04d}.use1"
                 ".cache.amazonaws.com", "port": args.inputs["port"]}
                for i in range(1, int(args.inputs["numCacheNodes"]) + 1)])
        elif typ == "aws:elasticache/replicationGroup:ReplicationGroup":
            gid, count = args.inputs["replicationGroupId"], int(args.inputs["numCacheClusters"])
            state.update(primaryEndpointAddress=f"master.{gid}.{n % 4096:03x}abc.use1.cache"
                                                ".amazonaws.com",
                         memberClusters=[f"{gid}-{i:03d}" for i in range(1, count + 1)])
        elif typ == "aws:secretsmanager/secret:Secret":
            state["arn"] = (f"arn:aws:secretsmanager:{self.region}:{ACCOUNT_ID}:secret:"
                            f"{name}-{n % 10**6:06d}")
        elif typ == "aws:ecr/repository:Repository":
            repo = args.inputs["name"]
            state.update(registryId=ACCOUNT_ID, arn=f"arn:aws:ecr:{self.region}:{ACCOUNT_ID}:"
                         f"repository/{repo}",
                         repositoryUrl=f"{ACCOUNT_ID}.dkr.ecr.{self.region}.amazonaws.com/{repo}")
        elif typ == "docker-build:index:Image":
            # what buildx reports for a push: the manifest's digest, new with new code (whose
            # content hash the program puts in the tag)
            state["digest"] = "sha256:" + hashlib.sha256(
                json.dumps(args.inputs.get("tags"), sort_keys=True).encode()).hexdigest()
        elif typ == "command:local:Command" and name.endswith("-cache-token"):
            state["stdout"] = MOCK_AUTH_TOKEN  # what deploy.auth_token would print
        self.states[f"{typ}::{name}"] = state
        self.ids[f"{typ}::{name}"] = rid
        return rid, state


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """Records what the engine would see: parent, dependencies and inputs of each resource."""

    def __init__(self, mocks: RecordingMocks):
        super().__init__(mocks)
        self.registrations: list[Registration] = []

    def RegisterResource(self, request):
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            inputs = pulumi.runtime.rpc.deserialize_properties(request.object)
            self.registrations.append(Registration(
                urn=response.urn, type=request.type, name=request.name,
                custom=bool(request.custom), parent=request.parent, inputs=dict(inputs),
                dependencies=list(request.dependencies),
                ignore_changes=list(request.ignoreChanges), protect=bool(request.protect),
                secret_outputs=list(request.additionalSecretOutputs),
                timeouts={k: v for k in ("create", "update", "delete")
                          if (v := getattr(request.customTimeouts, k, ""))}))
        return response


def stack_config(stack: str, overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """A stack file's config as the CLI passes it to the program, with overrides."""
    return {**stack_file_settings(stack), **(overrides or {})}


def run_program(stack: str, config: Mapping[str, str], *,
                program: Callable[[], None] | None = None,
                mocks: RecordingMocks | None = None,
                secret_keys: Sequence[str] = ()) -> MockRun:
    """Run `program` (default: the project's __main__.py) and return what it registered.

    Exceptions raised by the program are returned in `MockRun.error`, with everything that was
    registered before them, so tests can assert that a bad config registered nothing.
    """
    mocks = mocks or RecordingMocks(region=config.get("aws:region", "us-east-1"))
    monitor = RecordingMonitor(mocks)
    pulumi_settings.ROOT.set(None)  # a fresh root stack: exports must not leak between runs
    pulumi.runtime.set_mocks(mocks, project="webstack", stack=stack, preview=False,
                             monitor=monitor)
    pulumi.runtime.set_all_config(dict(config), list(secret_keys))
    outputs: dict[str, Any] = {}

    def body() -> None:
        if program is None:
            runpy.run_path(str(MAIN), run_name="__main__")
        else:
            program()
        root = pulumi_settings.get_root_resource()
        exported = getattr(root, "outputs", {}) or {}
        if exported:
            outputs.update(_sync_await(pulumi.Output.all(**exported).future()) or {})

    error: BaseException | None = None
    try:
        _sync_await(run_pulumi_func(body))
    except Exception as err:
        error = err
    for reg in monitor.registrations:
        reg.state = mocks.states.get(f"{reg.type}::{reg.name}", {}) if reg.custom else {}
        reg.id = mocks.ids.get(f"{reg.type}::{reg.name}", "") if reg.custom else ""
    return MockRun(resources=monitor.registrations, invokes=mocks.invokes, outputs=outputs,
                   error=error)


def run_ci(stack: str, config: Mapping[str, str]) -> MockRun:
    """The ci stack's program (ci/__main__.py) under the same mocks."""
    def program() -> None:
        runpy.run_path(str(CI_MAIN), run_name="__main__")

    return run_program(stack, config, program=program)
