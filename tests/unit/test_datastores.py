"""The database and cache under mocks: invariants over every registration of every variant
(never public, encrypted, only in private subnets, reachable only from the servers' group,
no password anywhere in state or exports, protection where configured), then what each
setting becomes, as pure functions."""

from __future__ import annotations

import base64
import json
from functools import cache

import pytest

from components import cache as cache_mod
from components import database, naming
from components.config import CacheConfig, DatabaseConfig
from components.monitoring import DataStores, alarm_specs
from components.topology import derive
from devtools.mockrun import MOCK_AUTH_TOKEN, PROJECT_DIR, MockRun
from tests import variants

SECRET_SIG = "4dabf18193072939515e22adb298388d"  # how the SDK marks a secret value
DB_VARIANTS = ("db-postgres-valkey", "db-mysql-memcached")
INSTANCE = "aws:rds/instance:Instance"


@pytest.fixture(scope="module")
def runs(planned, aws_env_module) -> dict[str, MockRun]:
    return {key: planned[key] for key in variants.NAMES}


@cache
def _cfg(key: str):
    return variants.cfg(key)


def _ids(run: MockRun, type_: str, part: str) -> set[str]:
    """The IDs of `type_` registrations whose name contains `part`."""
    return {r.id for r in run.of_type(type_) if part in r.name}


def _flat(value: object) -> str:
    return json.dumps(value, default=str, sort_keys=True)


# --- invariants over every variant ---------------------------------------------------------------

@pytest.mark.parametrize("key", variants.NAMES)
def test_databases_are_private_encrypted_and_rds_keeps_the_password(runs, key):
    run, cfg = runs[key], _cfg(key)
    instances = run.of_type(INSTANCE)
    assert len(instances) == (1 if cfg.database.created else 0)
    for db in instances:
        i = db.inputs
        assert i["publiclyAccessible"] is False and i["storageEncrypted"] is True
        assert i["manageMasterUserPassword"] is True and i["storageType"] == "gp3"
        assert i["deletionProtection"] is cfg.database.protect and db.protect is \
            cfg.database.protect
        assert i["skipFinalSnapshot"] is not cfg.database.final_snapshot
        assert ("finalSnapshotIdentifier" in i) is cfg.database.final_snapshot
        assert i["backupRetentionPeriod"] == cfg.database.backup_days >= 1
        assert i["multiAz"] is cfg.database.multi_az
    for r in run.resources:  # no resource is given a password: RDS makes and keeps it
        assert not {"password", "masterPassword", "masterUserPassword"} & set(r.inputs), r.urn


@pytest.mark.parametrize("key", variants.NAMES)
def test_data_stores_live_only_in_subnets_with_no_route_out(runs, key):
    run, cfg = runs[key], _cfg(key)
    private = _ids(run, "aws:ec2/subnet:Subnet", "-private-")
    public = _ids(run, "aws:ec2/subnet:Subnet", "-public-")
    wanted = cfg.database.created or cfg.cache.enabled
    assert bool(private) is wanted
    if not wanted:
        return
    assert len(private) == cfg.network.az_count >= 2 and not private & public
    (table,) = [r for r in run.of_type("aws:ec2/routeTable:RouteTable") if
                r.name.endswith("-private")]
    assert not table.inputs.get("routes")  # the VPC's local route only: no IGW, no NAT
    associations = [r for r in run.of_type("aws:ec2/routeTableAssociation:RouteTableAssociation")
                    if r.inputs["subnetId"] in private]
    assert len(associations) == len(private)
    assert all(a.inputs["routeTableId"] == table.id for a in associations)
    for type_ in ("aws:rds/subnetGroup:SubnetGroup", "aws:elasticache/subnetGroup:SubnetGroup"):
        for group in run.of_type(type_):
            assert set(group.inputs["subnetIds"]) == private, group.urn
    cidrs = {r.inputs["cidrBlock"] for r in run.of_type("aws:ec2/subnet:Subnet")}
    assert len(cidrs) == len(run.of_type("aws:ec2/subnet:Subnet"))  # no overlap


@pytest.mark.parametrize("key", variants.NAMES)
def test_only_the_servers_reach_a_data_store_and_only_on_its_port(runs, key):
    run, cfg = runs[key], _cfg(key)
    groups = {r.name.rsplit("-", 1)[1]: r.id
              for r in run.of_type("aws:ec2/securityGroup:SecurityGroup")}
    stores = {"db": cfg.database.port} if cfg.database.created else {}
    stores |= {"cache": cfg.cache.port} if cfg.cache.enabled else {}
    assert {"db", "cache"} & set(groups) == set(stores)
    ingress = run.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
    egress = run.of_type("aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule")
    for store, port in stores.items():
        into = [r.inputs for r in ingress if r.inputs["securityGroupId"] == groups[store]]
        assert into == [{**into[0], "fromPort": port, "toPort": port, "ipProtocol": "tcp",
                         "referencedSecurityGroupId": groups["web"]}]
        assert "cidrIpv4" not in into[0] and "cidrIpv6" not in into[0]
        assert not [r for r in egress if r.inputs["securityGroupId"] == groups[store]]
        out = [r.inputs for r in egress if r.inputs.get("referencedSecurityGroupId")
               == groups[store]]
        assert [(o["securityGroupId"], o["fromPort"]) for o in out] == [(groups["web"], port)]
    for db in run.of_type(INSTANCE):
        assert db.inputs["vpcSecurityGroupIds"] == [groups["db"]]
    for type_ in ("aws:elasticache/cluster:Cluster",
                  "aws:elasticache/replicationGroup:ReplicationGroup"):
        for c in run.of_type(type_):
            assert c.inputs["securityGroupIds"] == [groups["cache"]]
            assert c.inputs["transitEncryptionEnabled"] is True


@pytest.mark.parametrize("key", variants.NAMES)
def test_the_auth_token_is_a_secret_wherever_it_is(runs, key):
    """Only the secret's version and the replication group hold the token, each as a Pulumi
    secret (state encrypts it); the command that made it keeps its output secret."""
    run, cfg = runs[key], _cfg(key)
    holders = []
    for r in run.resources:
        for prop, value in r.inputs.items():
            if MOCK_AUTH_TOKEN in _flat(value):
                assert isinstance(value, dict) and value.get(SECRET_SIG), (r.urn, prop)
                holders.append((r.type, prop))
    valkey = cfg.cache.engine == "valkey"
    assert sorted(holders) == ([
        ("aws:elasticache/replicationGroup:ReplicationGroup", "authToken"),
        ("aws:secretsmanager/secretVersion:SecretVersion", "secretString")] if valkey else [])
    assert MOCK_AUTH_TOKEN not in _flat(run.outputs)
    for command in run.of_type("command:local:Command"):
        if command.name.endswith("-cache-token"):
            assert command.secret_outputs == ["stdout"]
            assert command.inputs["logging"] == "none"


@pytest.mark.parametrize("key", variants.NAMES)
def test_servers_read_exactly_their_stores_secrets_and_locations(runs, key):
    run, cfg = runs[key], _cfg(key)
    policies = {r.name: json.loads(r.inputs["policy"])
                for r in run.of_type("aws:iam/rolePolicy:RolePolicy")}
    secrets = [p for n, p in policies.items() if n.endswith("-secrets")]
    expected = []
    if cfg.database.created:
        expected += [s["secretArn"] for r in run.of_type(INSTANCE)
                     for s in r.state["masterUserSecrets"]]
    if cfg.cache.engine == "valkey":
        expected += [r.state["arn"] for r in
                     run.of_type("aws:secretsmanager/secret:Secret")]
    for named in (cfg.database.url_secret, cfg.app.image_credentials_secret):
        if named:  # a database's URL, a private registry's credentials (test_image.py)
            expected.append(f"arn:aws:secretsmanager:us-east-1:123456789012:secret:{named}-??????")
    if not expected:
        assert not secrets
        return
    (policy,) = secrets
    read, decrypt = policy["Statement"]
    assert read["Action"] == "secretsmanager:GetSecretValue"
    assert read["Resource"] == sorted(expected)
    assert decrypt["Condition"]["StringLike"]["kms:EncryptionContext:SecretARN"] == \
        sorted(expected)
    (parameters,) = [p for n, p in policies.items() if n.endswith("-parameters")]
    arns = parameters["Statement"][0]["Resource"]
    for what, enabled in (("database", cfg.database.enabled), ("cache", cfg.cache.enabled)):
        assert any(a.endswith(f"/{cfg.app.name}/{what}") for a in arns) is enabled


@pytest.mark.parametrize("key", (*DB_VARIANTS, "db-byo"))
def test_the_location_parameters_name_no_credential_and_servers_wait_for_them(runs, key):
    run, cfg = runs[key], _cfg(key)
    params = {r.inputs["name"]: r for r in run.of_type("aws:ssm/parameter:Parameter")}
    location = json.loads(params[naming.database_parameter(cfg)].inputs["insecureValue"])
    if cfg.database.created:
        (db,) = run.of_type(INSTANCE)
        state = db.state
        assert location == {"engine": cfg.database.engine, "host": state["address"],
                            "port": cfg.database.port, "name": "app",
                            "secret": state["masterUserSecrets"][0]["secretArn"]}
    else:
        assert location == {"url_secret": cfg.database.url_secret}
    if cfg.cache.enabled:
        found = json.loads(params[naming.cache_parameter(cfg)].inputs["insecureValue"])
        assert found["engine"] == cfg.cache.engine and found["tls"] is True
        assert found["port"] == cfg.cache.port and found["host"]
        assert bool(found["secret"]) is (cfg.cache.engine == "valkey")
    servers = [r for r in run.resources if r.type in (
        "aws:ec2/instance:Instance", "aws:autoscaling/group:Group")]
    wanted = {params[naming.database_parameter(cfg)].urn}
    if cfg.cache.enabled:
        wanted.add(params[naming.cache_parameter(cfg)].urn)
    for server in servers:
        assert wanted <= set(server.dependencies), server.urn
    for template in run.of_type("aws:ec2/launchTemplate:LaunchTemplate"):
        user_data = base64.b64decode(template.inputs["userData"]).decode()
        assert MOCK_AUTH_TOKEN not in user_data and "secretArn" not in user_data
    assert servers


@pytest.mark.parametrize("key", DB_VARIANTS)
def test_outputs_name_the_stores_never_their_secrets(runs, key):
    run, cfg = runs[key], _cfg(key)
    out = run.outputs
    (db,) = run.of_type(INSTANCE)
    assert out["databaseEndpoint"] == db.state["address"]
    assert out["databasePort"] == cfg.database.port
    assert out["databaseSecretArn"].startswith("arn:aws:secretsmanager:")
    assert out["databaseInstanceClass"] == db.inputs["instanceClass"]
    assert out["databaseSizingReason"].startswith(db.inputs["instanceClass"] + ": ")
    assert out["databaseSecurityGroupId"] == db.inputs["vpcSecurityGroupIds"][0]
    assert out["cacheEndpoint"] and out["cachePort"] == cfg.cache.port
    assert ("cacheSecretArn" in out) is (cfg.cache.engine == "valkey")
    assert len(out["privateSubnetIds"]) == cfg.network.az_count
    lines = out["estimatedMonthlyCost"]["breakdown"]
    assert any(k.startswith("database") for k in lines)
    assert any(k.startswith("cache") for k in lines)


@pytest.mark.parametrize("key", DB_VARIANTS)
def test_alarms_watch_the_database_and_the_cache(runs, key):
    run, cfg = runs[key], _cfg(key)
    alarms = {r.name.split(cfg.prefix + "-", 1)[1]: r.inputs
              for r in run.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")}
    (db,) = run.of_type(INSTANCE)
    for key_ in ("db-cpu-high", "db-storage-low", "db-connections-high"):
        assert alarms[key_]["dimensions"] == {"DBInstanceIdentifier": db.inputs["identifier"]}
        assert alarms[key_]["namespace"] == "AWS/RDS"
    assert alarms["db-storage-low"]["threshold"] == 20 * 0.10 * 1024**3
    node = (f"{cfg.prefix}-cache-001" if cfg.cache.engine == "valkey"
            else f"{cfg.prefix}-cache")
    for key_ in ("cache-cpu-high", "cache-evictions"):
        assert alarms[key_]["dimensions"] == {"CacheClusterId": node}
    assert alarms["cache-cpu-high"]["metricName"] == (
        "EngineCPUUtilization" if cfg.cache.engine == "valkey" else "CPUUtilization")
    (dash,) = run.of_type("aws:cloudwatch/dashboard:Dashboard")
    body = dash.inputs["dashboardBody"]
    assert "DatabaseConnections" in body and "Evictions" in body


# --- pure plans ----------------------------------------------------------------------------------

def _db(**kw) -> DatabaseConfig:
    base = dict(engine="postgres", version="17", vcpus=2, memory_gib=1, instance_class="",
                storage_gib=20, max_storage_gib=100, multi_az=False, backup_days=7, name="app",
                user="webstack", protect=True, final_snapshot=True)
    return DatabaseConfig(**{**base, **kw})


def test_the_plan_protects_by_default_and_relaxes_only_when_asked():
    plan = database.instance_plan(_db(), "shop-prod-db", "db.t4g.micro")
    assert plan["deletion_protection"] is True and plan["skip_final_snapshot"] is False
    assert plan["final_snapshot_identifier"] == "shop-prod-db-final"
    loose = database.instance_plan(_db(protect=False, final_snapshot=False, max_storage_gib=0),
                                   "x-db", "db.t4g.micro")
    assert loose["deletion_protection"] is False and loose["skip_final_snapshot"] is True
    assert loose["final_snapshot_identifier"] is None
    assert loose["max_allocated_storage"] is None  # 0: no storage autoscaling


def test_postgres_refuses_plain_connections_and_mysql_logs_slow_queries():
    assert {"name": "rds.force_ssl", "value": "1"} in database.parameters(_db())
    mysql = database.parameters(_db(engine="mysql", version="8.4"))
    assert {p["name"] for p in mysql} == {"slow_query_log", "long_query_time"}
    assert database.family(_db(engine="mysql", version="8.4")) == "mysql8.4"


def test_a_cache_with_replicas_fails_over_and_a_single_one_does_not():
    cache = CacheConfig(engine="valkey", version="8.0", memory_gib=0, node_type="", nodes=2)
    plan = cache_mod.valkey_plan(cache, "shop-cache", "cache.t4g.micro")
    assert plan["automatic_failover_enabled"] is plan["multi_az_enabled"] is True
    assert plan["parameter_group_name"] == "default.valkey8"
    assert plan["at_rest_encryption_enabled"] is plan["transit_encryption_enabled"] is True
    single = cache_mod.valkey_plan(CacheConfig("valkey", "7.2", 0, "", 1), "c", "t")
    assert single["automatic_failover_enabled"] is False
    assert single["parameter_group_name"] == "default.valkey7"
    memcached = cache_mod.memcached_plan(CacheConfig("memcached", "1.6.22", 0, "", 3), "m", "t")
    assert memcached["az_mode"] == "cross-az" and memcached["num_cache_nodes"] == 3
    assert memcached["parameter_group_name"] == "default.memcached1.6"


def test_no_data_store_no_data_store_alarms():
    cfg = _cfg("dev")
    keys = {s.key for s in alarm_specs(derive(cfg), cfg.monitoring)}
    assert not {k for k in keys if k.startswith(("db-", "cache-"))}
    stores = DataStores(database_storage_gib=100, database_max_connections=1000,
                        cache_engine="memcached")
    specs = {s.key: s for s in alarm_specs(derive(cfg), cfg.monitoring, stores)}
    assert specs["db-connections-high"].threshold == 800
    assert specs["db-storage-low"].comparison == "LessThanThreshold"
    assert specs["cache-evictions"].threshold == cfg.monitoring.cache_evictions


# --- waits (devtools/waits.py cites these) ------------------------------------------------------

def _minutes(text: str) -> int:
    assert text.endswith("m"), text
    return int(text[:-1])


def _covers(timeouts: dict[str, str], create: int, update: int, delete: int) -> None:
    assert {k: _minutes(v) for k, v in timeouts.items()}.keys() == {"create", "update", "delete"}
    assert _minutes(timeouts["create"]) >= create and _minutes(timeouts["update"]) >= update
    assert _minutes(timeouts["delete"]) >= delete


def test_the_database_waits_with_timeouts_that_cover_the_providers(runs):
    """The provider's defaults (create 40m, update 80m, delete 60m), stated and no shorter:
    a Multi-AZ create may take longer than a Single-AZ one, so create gets 60m."""
    for key in DB_VARIANTS:
        (db,) = runs[key].of_type(INSTANCE)
        _covers(db.timeouts, 40, 80, 60)


def test_the_cache_waits_with_timeouts_that_cover_the_providers(runs):
    (group,) = runs["db-postgres-valkey"].of_type(
        "aws:elasticache/replicationGroup:ReplicationGroup")
    _covers(group.timeouts, 60, 40, 45)
    # memcached's waits are fixed in the provider: no timeouts that would not be honoured
    (cluster,) = runs["db-mysql-memcached"].of_type("aws:elasticache/cluster:Cluster")
    assert cluster.timeouts == {}


def test_database_changes_apply_immediately(runs):
    """`pulumi up` converges now (the wait covers the change), not at the next window."""
    for key in DB_VARIANTS:
        (db,) = runs[key].of_type(INSTANCE)
        assert db.inputs["applyImmediately"] is True


def test_cache_changes_apply_immediately(runs):
    caches = [*runs["db-postgres-valkey"].of_type(
        "aws:elasticache/replicationGroup:ReplicationGroup"),
        *runs["db-mysql-memcached"].of_type("aws:elasticache/cluster:Cluster")]
    assert len(caches) == 2
    assert all(c.inputs["applyImmediately"] is True for c in caches)


def test_the_reserved_variables_are_the_ones_the_servers_set():
    """config refuses these names in appEnv/appSecrets; server/ssm_get.py writes them."""
    import ast
    tree = ast.parse((PROJECT_DIR / "server" / "ssm_get.py").read_text(encoding="utf-8"))
    found = {t.id: ast.literal_eval(node.value) for node in tree.body
             if isinstance(node, ast.Assign) for t in node.targets if isinstance(t, ast.Name)
             and t.id in ("DB_VARIABLES", "CACHE_VARIABLES")}
    assert found == {"DB_VARIABLES": naming.DATABASE_VARIABLES,
                     "CACHE_VARIABLES": naming.CACHE_VARIABLES}
