"""The outputs contract other teams build on: names, types, when present, meaning.

The README's outputs table is generated from `CONTRACT`, the program exports through `export()`,
which refuses anything off-contract, and a test holds the dev and prod exports to it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pulumi

from components import topology
from components.config import StackConfig
from components.topology import Topology

if TYPE_CHECKING:
    from components.cache import Cache
    from components.certificate import Certificate
    from components.database import Database
    from components.firewall import Firewall
    from components.loadbalancer import LoadBalancer
    from components.monitoring import LogGroups, Monitoring
    from components.network import Network
    from components.parameters import AppParameters
    from components.servers import Servers
    from components.sizing import Choice


@dataclass(frozen=True)
class OutputSpec:
    name: str
    type: str
    when: str
    meaning: str
    present: Callable[[Topology, StackConfig], bool]


def _always(_: Topology, __: StackConfig) -> bool:
    return True


CONTRACT: tuple[OutputSpec, ...] = (
    OutputSpec("url", "string", "always",
               "Public URL of the app: https:// with TLS, on the hostname when set.", _always),
    OutputSpec("hostname", "string", "domainHostname set", "Main DNS name of the app.",
               lambda _, c: bool(c.domain.hostname)),
    OutputSpec("dnsNames", "list(string)", "domainHostname set",
               "Every DNS name pointing at the app (hostname first).",
               lambda _, c: bool(c.domain.hostname)),
    OutputSpec("region", "string", "always", "AWS region of the stack.", _always),
    OutputSpec("appName", "string", "always",
               "The app's name (appName): its system user and its server paths "
               "(/usr/local/lib/webstack/<appName>/).", _always),
    OutputSpec("publicIps", "list(string)", "a single server",
               "Public IPv4 of the server (an Elastic IP unless behind the load balancer).",
               lambda t, _: not t.fleet),
    OutputSpec("instanceIds", "list(string)", "a single server", "EC2 instance ID of the server.",
               lambda t, _: not t.fleet),
    OutputSpec("autoScalingGroupName", "string", "serverCount > 1 or autoscaling bounds",
               "Auto Scaling group running the servers (its instances change over time).",
               lambda t, _: t.fleet),
    OutputSpec("instanceType", "string", "always", "Instance type of every server.", _always),
    OutputSpec("imageId", "string", "always",
               "AMI the servers run: serverImage, or the newest official image when they were "
               "created (kept until you pin another: scripts/image.py).", _always),
    OutputSpec("sizingReason", "string", "always",
               "Why that type: the cheapest that meets the spec, with its price.", _always),
    OutputSpec("vpcId", "string", "always", "VPC of the servers.", _always),
    OutputSpec("subnetIds", "list(string)", "always", "Public subnets used.", _always),
    OutputSpec("webSecurityGroupId", "string", "always",
               "Security group of the servers (reference it to allow their traffic).", _always),
    OutputSpec("albDnsName", "string", "serverCount > 1 or tlsMode acm",
               "DNS name of the application load balancer.", lambda t, _: t.load_balanced),
    OutputSpec("albSecurityGroupId", "string", "serverCount > 1 or tlsMode acm",
               "Security group of the load balancer.", lambda t, _: t.load_balanced),
    OutputSpec("targetGroupArn", "string", "serverCount > 1 or tlsMode acm",
               "Target group of the servers (`webstack` waits for each to be healthy in it).",
               lambda t, _: t.load_balanced),
    OutputSpec("certificateArn", "string", "tlsMode acm",
               "ARN of the issued (validated) ACM certificate.",
               lambda t, _: t.certificate == "acm"),
    OutputSpec("ssmSessionCommands", "list(string)", "a single server",
               "`aws ssm start-session` command for the server: shell access without SSH (for "
               "a group, target any instance of it).", lambda t, _: not t.fleet),
    OutputSpec("alertTopicArn", "string", "always",
               "SNS topic every alarm notifies; subscribe more endpoints to it.", _always),
    OutputSpec("dashboardUrl", "string", "always", "CloudWatch dashboard of the stack.",
               _always),
    OutputSpec("logGroupNames", "list(string)", "always",
               "CloudWatch log groups: nginx access and error logs, the app's log, cloud-init's "
               "output (`webstack logs` reads these four), Run Command's output (`webstack run` "
               "shows it).", _always),
    OutputSpec("runLogGroupName", "string", "always",
               "Log group of `webstack run`'s output (one stream per command and server).",
               _always),
    OutputSpec("secretParameterNames", "list(string)", "appSecrets or appSecretValues set",
               "SSM parameter names the servers read secrets from (names only, never values).",
               lambda _, c: bool(c.app.secrets)),
    OutputSpec("releaseRefParameter", "string", "always",
               "SSM parameter holding the release pointer the servers deploy: appRef, or "
               "`<sha256>@<S3 version>` of the appSource bundle.", _always),
    OutputSpec("privateSubnetIds", "list(string)", "database or cache set",
               "Private subnets (no route out of the VPC) of the database and the cache.",
               lambda _, c: c.database.created or c.cache.enabled),
    OutputSpec("databaseEndpoint", "string", "database set",
               "Host name of the database (reachable only from the servers' group).",
               lambda _, c: c.database.created),
    OutputSpec("databasePort", "number", "database set",
               "Port of the database: 5432 (postgres) or 3306 (mysql).",
               lambda _, c: c.database.created),
    OutputSpec("databaseName", "string", "database set", "The database created in it.",
               lambda _, c: c.database.created),
    OutputSpec("databaseSecretArn", "string", "database or databaseUrlSecret set",
               "ARN of the Secrets Manager secret with the database's credentials (RDS "
               "manages and rotates it), or the name/ARN of the one holding the URL you brought "
               "(databaseUrlSecret); never its value.",
               lambda _, c: c.database.enabled),
    OutputSpec("databaseSecurityGroupId", "string", "database set",
               "Security group of the database (reference it to admit another client).",
               lambda _, c: c.database.created),
    OutputSpec("databaseInstanceClass", "string", "database set",
               "Instance class of the database.", lambda _, c: c.database.created),
    OutputSpec("databaseSizingReason", "string", "database set",
               "Why that class: the cheapest that meets the spec, with its price.",
               lambda _, c: c.database.created),
    OutputSpec("databaseParameter", "string", "database or databaseUrlSecret set",
               "SSM parameter the servers read the database's location from (JSON, no "
               "credentials).", lambda _, c: c.database.enabled),
    OutputSpec("cacheEndpoint", "string", "cache set",
               "Host name of the cache: valkey's primary endpoint, memcached's configuration "
               "endpoint (TLS on both).", lambda _, c: c.cache.enabled),
    OutputSpec("cachePort", "number", "cache set", "Port of the cache: 6379 or 11211.",
               lambda _, c: c.cache.enabled),
    OutputSpec("cacheSecretArn", "string", "cache valkey",
               "ARN of the Secrets Manager secret with valkey's AUTH token; never its value.",
               lambda _, c: c.cache.engine == "valkey"),
    OutputSpec("cacheSecurityGroupId", "string", "cache set", "Security group of the cache.",
               lambda _, c: c.cache.enabled),
    OutputSpec("cacheNodeType", "string", "cache set", "Node type of the cache.",
               lambda _, c: c.cache.enabled),
    OutputSpec("cacheSizingReason", "string", "cache set",
               "Why that node type: the cheapest that meets the spec, with its price.",
               lambda _, c: c.cache.enabled),
    OutputSpec("appImage", "string", "appRuntime docker",
               "The image servers run, by digest (host/name@sha256:...): the build's, or "
               "appImage's tag resolved when the program ran.", lambda _, c: c.app.container),
    OutputSpec("imageRepositoryUrl", "string", "appRuntime docker without appImage",
               "The stack's ECR repository the build pushes to (push there from CI; servers "
               "pull from it with their role).", lambda _, c: c.app.builds_image),
    OutputSpec("userDataSha256", "string", "always",
               "SHA-256 of the rendered cloud-init user-data (changes replace the servers).",
               _always),
    OutputSpec("healthCheckCommand", "string", "always",
               "Command (run in this project) that checks every server and the health URL: "
               "exit 0 when healthy, else the reason.", _always),
    OutputSpec("estimatedMonthlyCost", "object", "always",
               "Estimate, not a bill: on-demand USD/month for servers, volumes, public IPv4 "
               "and load balancer, with `total`, `breakdown`, `source`.", _always),
)


def expected_names(cfg: StackConfig) -> list[str]:
    shape = topology.derive(cfg)
    return [o.name for o in CONTRACT if o.present(shape, cfg)]


def export(values: Mapping[str, Any], *, expected: Sequence[str]) -> None:
    """Export exactly the contract's outputs (`expected`: `expected_names`), or fail loudly."""
    if set(values) != set(expected):
        raise ValueError(f"outputs off contract: missing {sorted(set(expected) - set(values))}, "
                         f"unexpected {sorted(set(values) - set(expected))}")
    for name in expected:
        pulumi.export(name, values[name])


def collect(*, region: str, app_name: str, names: tuple[str, ...], secrets: Mapping[str, str],
            url: pulumi.Input[str], choice: Choice, network: Network, firewall: Firewall,
            servers: Servers, alb: LoadBalancer | None, certificate: Certificate | None,
            parameters: AppParameters, monitoring: Monitoring, logs: LogGroups,
            user_data_sha256: str, cost: dict[str, Any],
            health_check: pulumi.Input[str], stores: DataStoreOutputs | None = None,
            app_image: pulumi.Input[str] | None = None,
            image_repository_url: pulumi.Input[str] | None = None) -> dict[str, Any]:
    """The contract's values from the built components, present exactly when the spec says.

    `names`: the public DNS names, hostname first (none without one); `secrets`: appSecrets'
    parameter names by variable."""
    values: dict[str, Any] = {
        "url": url, "region": region, "instanceType": choice.instance_type,
        "sizingReason": choice.reason, "vpcId": network.vpc_id, "subnetIds": network.subnet_ids,
        "webSecurityGroupId": firewall.web_group_id, "userDataSha256": user_data_sha256,
        "healthCheckCommand": health_check, "estimatedMonthlyCost": cost,
        "alertTopicArn": monitoring.topic_arn, "dashboardUrl": monitoring.dashboard_url,
        "logGroupNames": logs.names, "imageId": servers.image_id, "appName": app_name,
        "runLogGroupName": logs.by_kind["run"],
    }
    if servers.instance_id is not None and servers.public_ip is not None:
        values["publicIps"] = servers.public_ip.apply(lambda ip: [ip])
        values["instanceIds"] = servers.instance_id.apply(lambda i: [i])
        values["ssmSessionCommands"] = servers.instance_id.apply(lambda i: [
            f"aws ssm start-session --region {region} --target {i}"])
    if servers.group_name is not None:
        values["autoScalingGroupName"] = servers.group_name
    if names:
        values["hostname"] = names[0]
        values["dnsNames"] = list(names)
    if alb is not None:
        values["albDnsName"] = alb.dns_name
        values["albSecurityGroupId"] = firewall.alb_group_id
        values["targetGroupArn"] = alb.target_group_arn
    if certificate is not None:
        values["certificateArn"] = certificate.certificate_arn
    if secrets:
        values["secretParameterNames"] = sorted(secrets.values())
    values["releaseRefParameter"] = parameters.release_ref_name
    values.update(stores.values() if stores else {})
    if app_image is not None:
        values["appImage"] = app_image
    if image_repository_url is not None:
        values["imageRepositoryUrl"] = image_repository_url
    return values


@dataclass(frozen=True)
class DataStoreOutputs:
    """The database's and cache's part of the contract (each None when absent)."""

    private_subnet_ids: pulumi.Input[list[str]] | None = None
    database: Database | None = None
    database_name: str = ""
    database_class: str = ""
    database_reason: str = ""
    database_secret_arn: pulumi.Input[str] | None = None  # created, or the one brought
    database_parameter: str = ""
    cache: Cache | None = None
    cache_node_type: str = ""
    cache_reason: str = ""
    group_ids: Mapping[str, pulumi.Input[str]] | None = None  # "db", "cache"

    def values(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        groups = self.group_ids or {}
        if self.private_subnet_ids is not None:
            out["privateSubnetIds"] = self.private_subnet_ids
        if self.database is not None:
            out.update(databaseEndpoint=self.database.address, databasePort=self.database.port,
                       databaseName=self.database_name,
                       databaseSecurityGroupId=groups["db"],
                       databaseInstanceClass=self.database_class,
                       databaseSizingReason=self.database_reason)
        if self.database_secret_arn is not None:
            out.update(databaseSecretArn=self.database_secret_arn,
                       databaseParameter=self.database_parameter)
        if self.cache is not None:
            out.update(cacheEndpoint=self.cache.host, cachePort=self.cache.port,
                       cacheSecurityGroupId=groups["cache"], cacheNodeType=self.cache_node_type,
                       cacheSizingReason=self.cache_reason)
            if self.cache.secret_arn is not None:
                out["cacheSecretArn"] = self.cache.secret_arn
        return out


def markdown_table() -> str:
    rows = ["| name | type | when present | meaning |", "|---|---|---|---|"]
    rows += [f"| `{o.name}` | {o.type} | {o.when} | {o.meaning} |" for o in CONTRACT]
    return "\n".join(rows)
