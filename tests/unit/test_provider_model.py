"""The provider model's conditional replacements (devtools/provider.REPLACES_IF): the cases the
Terraform AWS provider decides in a CustomizeDiff from the old and new values, which mocks
never see. Each test changes one input of one recorded resource and asks `diff` what the real
provider would do."""

from __future__ import annotations

from typing import Any

from devtools.mockrun import MockRun, Registration
from devtools.provider import diff

CLUSTER = "aws:elasticache/cluster:Cluster"
GROUP = "aws:elasticache/replicationGroup:ReplicationGroup"
DATABASE = "aws:rds/instance:Instance"


def _run(type_: str, inputs: dict[str, Any]) -> MockRun:
    urn = f"urn:pulumi:dev::webstack::webstack:cache:Cache${type_}::hello-dev-x"
    return MockRun([Registration(urn, type_, "hello-dev-x", True, "", inputs, [])], [], {})


def _changes(type_: str, before: dict[str, Any], **changed: Any) -> list[tuple[str, bool]]:
    deleted, created, changes = diff(_run(type_, before), _run(type_, {**before, **changed}))
    assert not deleted and not created
    return [(c.prop, c.replaces) for c in changes]


MEMCACHED = {"clusterId": "hello-dev-cache", "engine": "memcached", "engineVersion": "1.6.22",
             "nodeType": "cache.t4g.micro", "numCacheNodes": 1}
VALKEY = {"replicationGroupId": "hello-prod-cache", "engine": "valkey", "engineVersion": "8.0",
          "nodeType": "cache.t4g.micro", "numCacheClusters": 2,
          "transitEncryptionEnabled": True}
POSTGRES = {"identifier": "hello-prod-db", "engine": "postgres", "engineVersion": "16",
            "instanceClass": "db.t4g.micro", "allowMajorVersionUpgrade": True}


def test_a_memcached_node_type_replaces_the_cluster_and_a_valkey_one_does_not():
    assert _changes(CLUSTER, MEMCACHED, nodeType="cache.t4g.small") == [("nodeType", True)]
    assert _changes(CLUSTER, MEMCACHED, numCacheNodes=2) == [("numCacheNodes", False)]
    assert _changes(GROUP, VALKEY, nodeType="cache.t4g.small") == [("nodeType", False)]


def test_a_cache_version_downgrade_replaces_and_an_upgrade_does_not():
    assert _changes(GROUP, VALKEY, engineVersion="8.1") == [("engineVersion", False)]
    assert _changes(GROUP, VALKEY, engineVersion="7.2") == [("engineVersion", True)]
    assert _changes(CLUSTER, MEMCACHED, engineVersion="1.6.6") == [("engineVersion", True)]
    assert _changes(CLUSTER, MEMCACHED, engineVersion="1.6.22") == []
    redis6 = {**VALKEY, "engine": "redis", "engineVersion": "6.x"}
    assert _changes(GROUP, redis6, engineVersion="6.2") == [("engineVersion", True)]  # 6.x: newest


def test_only_redis_to_valkey_keeps_the_group_and_old_engines_fix_transit_encryption():
    redis = {**VALKEY, "engine": "redis", "engineVersion": "7.1"}
    assert _changes(GROUP, redis, engine="valkey", engineVersion="7.2") == [
        ("engine", False), ("engineVersion", False)]
    assert _changes(GROUP, VALKEY, engine="redis") == [("engine", True)]
    assert _changes(GROUP, VALKEY, transitEncryptionEnabled=False) == [
        ("transitEncryptionEnabled", False)]  # 7.0.5 and later: in place
    old = {**VALKEY, "engine": "redis", "engineVersion": "6.2"}
    assert _changes(GROUP, old, transitEncryptionEnabled=False) == [
        ("transitEncryptionEnabled", True)]


def test_a_database_upgrade_is_in_place_and_a_new_engine_replaces_it():
    assert _changes(DATABASE, POSTGRES, engineVersion="17") == [("engineVersion", False)]
    assert _changes(DATABASE, POSTGRES, instanceClass="db.t4g.small") == [
        ("instanceClass", False)]
    assert _changes(DATABASE, POSTGRES, identifier="hello-prod-db2") == [
        ("identifier", False)]  # a rename in place (a new address), not a new database
    assert _changes(DATABASE, POSTGRES, engine="mysql", engineVersion="8.4") == [
        ("engine", True), ("engineVersion", False)]
    assert _changes(DATABASE, POSTGRES, storageEncrypted=True) == [("storageEncrypted", True)]
