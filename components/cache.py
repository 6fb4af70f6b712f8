"""The app's ElastiCache cache: memcached, or valkey (Redis-compatible), in the private subnets,
reachable only from the servers' security group, encrypted in transit (valkey at rest too).

valkey takes an AUTH token, which ElastiCache receives as an input: it is made once, on the
deployer's machine (`deploy.auth_token`, a local command whose output Pulumi keeps encrypted,
never logged), stored in Secrets Manager for the servers, and given to the replication group.
It is therefore in the stack's state, encrypted as a Pulumi secret, unlike the database's
password, which RDS alone holds. Servers find the cache through an SSM parameter
(`discovery`), like the database.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_command as command

from components.aws_names import fit, rule_for
from components.config import CacheConfig
from components.readiness import PYTHON

MAINTENANCE_WINDOW = "sun:05:30-sun:06:30"  # after the database's (components/database.py)
TOKEN_COMMAND = shlex.join([PYTHON, "-m", "deploy.auth_token"])
# the replication group's (the provider's defaults, stated: a Multi-AZ group takes long); the
# memcached cluster has fixed waits of its own (40 min create, 80 update, 40 delete)
TIMEOUTS = pulumi.CustomTimeouts(create="60m", update="60m", delete="45m")


def memcached_plan(cache: CacheConfig, cluster_id: str, node_type: str) -> dict[str, Any]:
    """A memcached cluster's inputs: nodes spread over the zones when there are several; TLS
    (memcached 1.6.12 and later), so a client connects with TLS."""
    return {
        "cluster_id": cluster_id, "engine": "memcached", "engine_version": cache.version,
        "node_type": node_type, "num_cache_nodes": cache.nodes,
        "az_mode": "cross-az" if cache.nodes > 1 else "single-az", "port": cache.port,
        "transit_encryption_enabled": True,
        "parameter_group_name": "default.memcached" + cache.version.rsplit(".", 1)[0],
        "maintenance_window": MAINTENANCE_WINDOW, "apply_immediately": True,
    }


def valkey_plan(cache: CacheConfig, group_id: str, node_type: str) -> dict[str, Any]:
    """A valkey replication group's inputs: a primary and `nodes - 1` replicas, failing over
    across zones when there is a replica; encrypted at rest and in transit, AUTH required."""
    replicas = cache.nodes > 1
    return {
        "replication_group_id": group_id, "description": f"webstack {group_id}",
        "engine": "valkey", "engine_version": cache.version, "node_type": node_type,
        "num_cache_clusters": cache.nodes, "automatic_failover_enabled": replicas,
        "multi_az_enabled": replicas, "port": cache.port,
        "at_rest_encryption_enabled": True, "transit_encryption_enabled": True,
        "parameter_group_name": "default.valkey" + cache.version.split(".", 1)[0],
        "auto_minor_version_upgrade": True, "snapshot_retention_limit": 0,  # a cache, not a store
        "maintenance_window": MAINTENANCE_WINDOW, "apply_immediately": True,
    }


def discovery(engine: str, host: str, port: int, nodes: list[str], secret_arn: str) -> str:
    """The cache parameter's value: where it is, TLS always on, the AUTH token's secret (valkey)
    and every node (memcached's client spreads keys over them itself)."""
    return json.dumps({"engine": engine, "host": host, "port": port, "tls": True,
                       "nodes": nodes, "secret": secret_arn}, sort_keys=True)


@dataclass(frozen=True)
class CacheArgs:
    node_type: str  # from sizing
    subnet_ids: pulumi.Input[list[str]]  # the private subnets
    security_group_id: pulumi.Input[str]  # the firewall's "cache" group
    tags: dict[str, str]


class Cache(pulumi.ComponentResource):
    host: pulumi.Output[str]
    port: int
    secret_arn: pulumi.Output[str] | None  # valkey's AUTH token (memcached has none)
    node_ids: pulumi.Output[list[str]]  # CacheClusterId of each node's metrics
    parameter_value: pulumi.Output[str]

    def __init__(self, name: str, cache: CacheConfig, args: CacheArgs,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("webstack:cache:Cache", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        lower, tags = name.lower(), args.tags
        subnets = aws.elasticache.SubnetGroup(
            f"{name}-cache",
            name=fit(f"{lower}-cache", rule_for("aws:elasticache/subnetGroup:SubnetGroup")),
            subnet_ids=args.subnet_ids, description=f"webstack {name}: private subnets",
            tags=tags, opts=child)
        placed = {"subnet_group_name": subnets.name,
                  "security_group_ids": [args.security_group_id], "tags": tags}
        self.port = cache.port
        self.secret_arn = None
        if cache.engine == "memcached":
            cluster = aws.elasticache.Cluster(
                f"{name}-cache", **memcached_plan(cache, fit(
                    f"{lower}-cache", rule_for("aws:elasticache/cluster:Cluster", "clusterId")),
                    args.node_type), **placed, opts=child)
            self.host = cluster.cluster_address
            self.node_ids = cluster.cluster_id.apply(lambda i: [i])
            nodes = cluster.cache_nodes.apply(
                lambda ns: [f"{n.address}:{n.port}" for n in ns or []])
            secret_arn: pulumi.Output[str] = pulumi.Output.from_input("")
        else:
            token = command.local.Command(
                f"{name}-cache-token", create=TOKEN_COMMAND,
                logging=command.local.Logging.NONE,
                opts=pulumi.ResourceOptions(parent=self, additional_secret_outputs=["stdout"]))
            value = pulumi.Output.secret(token.stdout.apply(lambda s: (s or "").strip()))
            secret = aws.secretsmanager.Secret(
                f"{name}-cache-auth", description=f"AUTH token of {name}'s valkey cache",
                recovery_window_in_days=7, tags=tags, opts=child)
            version = aws.secretsmanager.SecretVersion(
                f"{name}-cache-auth", secret_id=secret.id,
                secret_string=value.apply(lambda t: json.dumps({"password": t})), opts=child)
            group = aws.elasticache.ReplicationGroup(
                f"{name}-cache", **valkey_plan(cache, fit(
                    f"{lower}-cache",
                    rule_for("aws:elasticache/replicationGroup:ReplicationGroup",
                             "replicationGroupId")), args.node_type),
                auth_token=value, **placed,
                opts=pulumi.ResourceOptions(parent=self, custom_timeouts=TIMEOUTS,
                                            depends_on=[version]))
            self.host = group.primary_endpoint_address
            self.node_ids = group.member_clusters.apply(lambda m: sorted(m or []))
            nodes = self.host.apply(lambda h: [f"{h}:{cache.port}"])
            self.secret_arn = secret.arn
            secret_arn = secret.arn
        self.parameter_value = pulumi.Output.all(self.host, nodes, secret_arn).apply(
            lambda v: discovery(cache.engine, v[0], cache.port, v[1], v[2]))
        self.register_outputs({"host": self.host, "secret_arn": self.secret_arn})
