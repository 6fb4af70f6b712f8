"""Database and cache sizing on small hand-made tables and on the shipped one; the cost estimate's
database and cache lines."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from components import cost, dbsizing
from components.config import CacheConfig, ConfigError, DatabaseConfig, ServerConfig
from components.dbsizing import max_connections, size_cache, size_database
from components.sizing import PRICES_PATH, Choice, PriceTable, SizingError
from components.topology import Topology
from tests import variants

REGION = "us-east-1"
RAW = json.loads(PRICES_PATH.read_text(encoding="utf-8"))
SHIPPED = PriceTable.load()
REGIONS = ("us-east-1", "us-east-2", "us-west-2", "eu-west-1", "eu-central-1")


def spec(vcpus: int, gib: float, current: bool = True) -> dict[str, Any]:
    return {"vcpus": vcpus, "memory_gib": gib, "current_generation": current}


def table_data(rds: dict[str, Any] | None = None, cache: dict[str, Any] | None = None,
               region: str = REGION) -> dict[str, Any]:
    """A one-region table: rds maps a class to (vcpus, GiB, [single, multi]) for postgres, cache
    a node type to (vcpus, GiB, hourly) for memcached and Redis OSS alike."""
    extras = {"gp3_gb_month": 0.08, "alb_hour": 0.0225, "alb_lcu_hour": 0.008,
              "public_ipv4_hour": 0.005}
    data: dict[str, Any] = {"source": "test", "as_of": "2026-01-01", "currency": "USD",
                            "regions": {region: {**extras, "instances": {"t3.small": 0.02}}}}
    if rds is not None:
        data["rds"] = {"cite": "rds test", "as_of": "2026-01-02",
                       "classes": {n: spec(*v[:2]) for n, v in rds.items()},
                       "regions": {region: {"gp3_gb_month": 0.1,
                                            "postgres": {n: v[2] for n, v in rds.items()}}}}
    if cache is not None:
        hourly = {n: v[2] for n, v in cache.items()}
        data["elasticache"] = {"cite": "cache test", "as_of": "2026-01-03",
                               "valkey_discount": 0.2,
                               "node_types": {n: spec(*v[:2]) for n, v in cache.items()},
                               "regions": {region: {"memcached": hourly, "redis": hourly}}}
    return data


def table(rds: dict[str, Any] | None = None, cache: dict[str, Any] | None = None) -> PriceTable:
    return PriceTable(table_data(rds, cache))


# The variants' database and cache as the config reader builds them, defaults and all
BASE_DB = replace(variants.cfg("db-postgres-valkey").database, multi_az=False)
BASE_CACHE = replace(variants.cfg("db-mysql-memcached").cache, nodes=1)


def database(**overrides: Any) -> DatabaseConfig:
    return replace(BASE_DB, **overrides)


def cache_cfg(**overrides: Any) -> CacheConfig:
    return replace(BASE_CACHE, **overrides)


DB = {"db.big": (8, 32, [0.5, 1.0]), "db.mid": (2, 4, [0.07, 0.14]),
      "db.small": (2, 1, [0.02, 0.04]), "db.pricey": (2, 4, [0.09, 0.18])}


# --- the database -----------------------------------------------------------------------------

def test_cheapest_class_with_the_vcpus_and_memory_asked_wins() -> None:
    choice = size_database(database(memory_gib=4), REGION, table(DB))
    assert (choice.instance_class, choice.hourly_usd, choice.candidates) == ("db.mid", 0.07, 3)
    assert (choice.vcpus, choice.memory_gib, choice.multi_az) == (2, 4, False)
    assert choice.reason == ("db.mid: cheapest of 3 current-generation postgres classes with "
                             "≥2 vCPU and ≥4 GiB, $0.0700/h in us-east-1 (Single-AZ)")


def test_ties_go_to_fewer_vcpus_then_less_memory_then_name() -> None:
    rds = {"db.b-4cpu": (4, 8, [0.1, 0.2]), "db.c-2cpu-16g": (2, 16, [0.1, 0.2]),
           "db.z-2cpu-8g": (2, 8, [0.1, 0.2]), "db.a-2cpu-8g": (2, 8, [0.1, 0.2])}
    assert size_database(database(), REGION, table(rds)).instance_class == "db.a-2cpu-8g"


def test_a_previous_generation_or_unspecified_class_is_never_chosen() -> None:
    data = table_data(DB)
    data["rds"]["classes"]["db.small"]["current_generation"] = False
    del data["rds"]["classes"]["db.mid"]  # priced, but no spec
    prices = PriceTable(data)
    assert size_database(database(), REGION, prices).instance_class == "db.pricey"
    # pinning says exactly which class, so an older one is taken when asked for
    assert size_database(database(instance_class="db.small"), REGION, prices).hourly_usd == 0.02


def test_multi_az_takes_the_multi_az_rate_and_doubles_storage() -> None:
    single = size_database(database(memory_gib=4), REGION, table(DB))
    multi = size_database(database(memory_gib=4, multi_az=True), REGION, table(DB))
    assert (multi.instance_class, multi.hourly_usd, multi.multi_az) == ("db.mid", 0.14, True)
    assert (single.storage_gb_month_usd, multi.storage_gb_month_usd) == (0.1, 0.2)
    assert multi.reason.endswith("$0.1400/h in us-east-1 (Multi-AZ: primary and standby)")


def test_pinned_class_is_taken_as_is_with_its_price() -> None:
    choice = size_database(database(instance_class="db.big", vcpus=1), REGION, table(DB))
    assert (choice.instance_class, choice.hourly_usd, choice.candidates) == ("db.big", 0.5, 1)
    assert choice.reason == ("db.big: pinned by webstack:databaseInstanceClass, $0.5000/h in "
                             "us-east-1 (Single-AZ)")


def test_unknown_pinned_class_is_refused_naming_the_setting_and_the_classes() -> None:
    with pytest.raises(SizingError) as caught:
        size_database(database(instance_class="db.m5.large"), REGION, table(DB))
    message = str(caught.value)
    assert "webstack:databaseInstanceClass=db.m5.large" in message
    assert "pin one of db.small, db.mid, db.pricey, db.big" in message
    assert "as of 2026-01-02" in message and "webstack:databaseVcpus" in message
    assert isinstance(caught.value, ConfigError)


def test_nothing_big_enough_names_the_largest_and_the_settings() -> None:
    with pytest.raises(SizingError) as caught:
        size_database(database(vcpus=16, memory_gib=64), REGION, table(DB))
    message = str(caught.value)
    assert "≥16 vCPU and ≥64 GiB" in message and "db.big (8 vCPU, 32 GiB)" in message
    assert "webstack:databaseVcpus=16, webstack:databaseMemoryGib=64" in message
    assert "pin webstack:databaseInstanceClass" in message


def test_a_region_or_an_engine_without_prices_is_refused_before_any_resource() -> None:
    with pytest.raises(SizingError) as caught:
        size_database(database(), "ap-south-2", table(DB))
    assert "aws:region=ap-south-2" in str(caught.value) and "priced: us-east-1" in str(caught.value)
    with pytest.raises(SizingError) as caught:
        size_database(database(engine="mysql"), REGION, table(DB))
    assert "webstack:database=mysql" in str(caught.value)
    with pytest.raises(SizingError, match="priced: none"):  # a table without an rds section
        size_database(database(), REGION, table())


@pytest.mark.parametrize(("engine", "gib", "expected"), [
    ("postgres", 1, 112), ("postgres", 4, 450), ("postgres", 32, 3604), ("postgres", 128, 5000),
    ("mysql", 1, 85), ("mysql", 8, 682), ("mysql", 128, 10922)])
def test_max_connections_follows_the_default_parameter_groups(engine: str, gib: float,
                                                              expected: int) -> None:
    """postgres LEAST(mem/9531392, 5000), mysql mem/12582880, on the nominal memory."""
    assert max_connections(engine, gib) == expected


def test_the_choice_carries_max_connections_and_storage() -> None:
    choice = size_database(database(engine="postgres", storage_gib=50), REGION, table(DB))
    assert (choice.max_connections, choice.storage_gib) == (112, 50)


# --- the cache --------------------------------------------------------------------------------

CACHE = {"cache.tiny": (2, 0.5, 0.016), "cache.mid": (2, 6.38, 0.149),
         "cache.big": (4, 13.07, 0.206)}


def test_memory_zero_takes_the_cheapest_node() -> None:
    choice = size_cache(cache_cfg(), REGION, table(cache=CACHE))
    assert (choice.node_type, choice.hourly_usd, choice.memory_gib) == ("cache.tiny", 0.016, 0.5)
    assert choice.reason == ("cache.tiny: cheapest of 3 current-generation memcached node "
                             "types, $0.0160/h per node in us-east-1")


def test_memory_asked_picks_the_cheapest_node_that_holds_it_and_keeps_the_node_count() -> None:
    choice = size_cache(cache_cfg(memory_gib=5, nodes=3), REGION, table(cache=CACHE))
    assert (choice.node_type, choice.nodes, choice.candidates) == ("cache.mid", 3, 2)
    assert "with ≥5 GiB" in choice.reason


def test_valkey_is_redis_oss_less_the_published_discount() -> None:
    choice = size_cache(cache_cfg(engine="valkey"), REGION, table(cache=CACHE))
    assert choice.hourly_usd == 0.0128
    assert choice.reason.endswith("$0.0128/h per node in us-east-1 (Redis OSS's price less 20%)")


def test_pinned_and_unknown_node_types() -> None:
    prices = table(cache=CACHE)
    pinned = size_cache(cache_cfg(node_type="cache.big"), REGION, prices)
    assert pinned.reason == ("cache.big: pinned by webstack:cacheNodeType, $0.2060/h per node "
                             "in us-east-1")
    with pytest.raises(SizingError) as caught:
        size_cache(cache_cfg(node_type="cache.m5.large"), REGION, prices)
    message = str(caught.value)
    assert "webstack:cacheNodeType=cache.m5.large" in message
    assert "pin one of cache.tiny, cache.mid, cache.big" in message
    with pytest.raises(SizingError, match="webstack:cacheMemoryGib=64"):
        size_cache(cache_cfg(memory_gib=64), REGION, prices)
    with pytest.raises(SizingError, match="aws:region=eu-west-3"):
        size_cache(cache_cfg(), "eu-west-3", prices)


# --- the shipped table ------------------------------------------------------------------------

def test_the_shipped_sections_keep_the_ec2_ones_and_say_where_they_come_from() -> None:
    assert list(RAW)[:7] == ["source", "as_of", "coverage", "currency", "unit", "refresh",
                             "regions"]
    for name in ("rds", "elasticache"):
        section = RAW[name]
        assert "github.com/coroot/cloud-pricing/blob/af03eada" in section["source"]
        assert section["as_of"] == "2024-08-09" and section["coverage"] and section["refresh"]
        assert sorted(section["regions"]) == sorted(REGIONS)


def test_every_class_the_shipped_table_prices_has_a_spec() -> None:
    rds, ec = RAW["rds"], RAW["elasticache"]
    for region in REGIONS:
        for engine in ("postgres", "mysql"):
            assert set(rds["regions"][region][engine]) == set(rds["classes"]), (region, engine)
        for engine in ("memcached", "redis"):
            assert set(ec["regions"][region][engine]) == set(ec["node_types"]), (region, engine)


WEB_CLASSES = ([f"db.{f}.{s}" for f in ("t4g", "t3")
                for s in ("micro", "small", "medium", "large", "xlarge", "2xlarge")]
               + [f"db.{f}.{s}" for f in ("m7g", "m6g", "m6i", "r7g", "r6g", "r6i")
                  for s in ("large", "xlarge", "2xlarge", "4xlarge")])
WEB_NODES = ([f"cache.{f}.{s}" for f in ("t4g", "t3") for s in ("micro", "small", "medium")]
             + [f"cache.{f}.{s}" for f in ("m6g", "r6g") for s in ("large", "xlarge", "2xlarge",
                                                                  "4xlarge")]
             + ["cache.m7g.large"])


def test_the_shipped_table_covers_what_a_web_app_uses_in_every_region() -> None:
    """What coverage promises; db.m7i and most of m7g/r7g for caches are out, as it says."""
    assert sorted(RAW["rds"]["classes"]) == sorted(WEB_CLASSES)
    assert sorted(RAW["elasticache"]["node_types"]) == sorted(WEB_NODES)
    assert "db.m7i" in RAW["rds"]["coverage"] and "cache.r7g" in RAW["elasticache"]["coverage"]


def test_shipped_multi_az_rates_are_twice_single_az_up_to_rounding() -> None:
    for region in REGIONS:
        for engine in ("postgres", "mysql"):
            for name, (single, multi) in RAW["rds"]["regions"][region][engine].items():
                assert abs(multi - 2 * single) <= 0.0010001, (region, engine, name)


def test_shipped_numbers_spot_checked_against_the_source() -> None:
    """A few values as the source has them (see the sections' source)."""
    rds, ec = RAW["rds"]["regions"], RAW["elasticache"]["regions"]
    assert rds["us-east-1"]["postgres"]["db.t4g.micro"] == [0.016, 0.032]
    assert rds["us-east-1"]["mysql"]["db.t3.large"] == [0.136, 0.272]
    assert rds["eu-central-1"]["postgres"]["db.t4g.micro"] == [0.019, 0.037]
    assert rds["us-east-1"]["gp3_gb_month"] == 0.115 and rds["eu-west-1"]["gp3_gb_month"] == 0.127
    assert "gp3_gb_month" not in rds["us-east-2"]
    assert ec["us-east-1"]["memcached"]["cache.t4g.micro"] == 0.016
    assert ec["us-east-1"]["redis"]["cache.m6g.large"] == 0.149


def test_reference_database_and_cache_on_the_shipped_table() -> None:
    """The variants' defaults: postgres 2 vCPU 1 GiB, Multi-AZ; valkey of any size."""
    db = size_database(database(multi_az=True), REGION, SHIPPED)
    assert (db.instance_class, db.hourly_usd, db.storage_gb_month_usd) == ("db.t4g.micro", 0.032,
                                                                         0.23)
    assert db.max_connections == 112
    valkey = size_cache(cache_cfg(engine="valkey"), REGION, SHIPPED)
    assert (valkey.node_type, valkey.hourly_usd) == ("cache.t4g.micro", 0.0128)


def test_dbsizing_names_settings_through_the_config_records() -> None:
    assert "webstack:" not in Path(dbsizing.__file__).read_text(encoding="utf-8")


# --- the estimate -----------------------------------------------------------------------------

SERVER = ServerConfig(vcpus=2, memory_gib=2, disk_gib=20, arch="x86_64", burstable=True, count=1,
                      os="debian-12", instance_type="")
SERVER_CHOICE = Choice("t3.small", 0.02, 2, 2048, "t3.small: test", 1)
ONE = Topology(servers="single", edge="direct", certificate="none")


def prices_for_estimate() -> PriceTable:
    return table(DB, CACHE)


def test_estimate_without_database_or_cache_keeps_its_shape() -> None:
    out = cost.estimate(ONE, SERVER, REGION, SERVER_CHOICE, prices_for_estimate())
    assert list(out) == ["estimate", "currency", "period", "region", "total", "breakdown",
                         "excludes", "source"]
    assert out["excludes"] == cost.EXCLUDES and out["source"] == "test (as of 2026-01-01)"
    assert not any(k.startswith(("database", "cache")) for k in out["breakdown"])


def test_estimate_adds_the_database_instance_storage_and_the_cache_nodes() -> None:
    prices = prices_for_estimate()
    db = size_database(database(memory_gib=4, multi_az=True, storage_gib=50), REGION, prices)
    nodes = size_cache(cache_cfg(engine="valkey", nodes=2), REGION, prices)
    plain = cost.estimate(ONE, SERVER, REGION, SERVER_CHOICE, prices)
    out = cost.estimate(ONE, SERVER, REGION, SERVER_CHOICE, prices, database=db, cache=nodes)
    breakdown = out["breakdown"]
    assert breakdown["database: db.mid (postgres, Multi-AZ, primary and standby) at "
                     "$0.1400/h"] == round(0.14 * 730, 2)
    assert breakdown["database storage: 50 GiB gp3 at $0.2/GiB-month (both copies)"] == 10.0
    assert breakdown["cache: 2 x cache.tiny (valkey) at $0.0128/h"] == round(2 * 0.0128 * 730, 2)
    assert out["total"] == round(plain["total"] + 0.14 * 730 + 10.0 + 2 * 0.0128 * 730, 2)
    for left_out in ("data transfer", "backup storage beyond the free amount",
                     "I/O and throughput beyond gp3's baseline", "cache backups"):
        assert left_out in out["excludes"]
    assert "databases: rds test (as of 2026-01-02)" in out["source"]
    assert "caches: cache test (as of 2026-01-03)" in out["source"]


def test_estimate_says_when_a_region_has_no_storage_price() -> None:
    data = table_data(DB, CACHE)
    del data["rds"]["regions"][REGION]["gp3_gb_month"]
    prices = PriceTable(data)
    db = size_database(database(), REGION, prices)
    out = cost.estimate(ONE, SERVER, REGION, SERVER_CHOICE, prices, database=db)
    assert db.storage_gb_month_usd is None
    assert not any(k.startswith("database storage") for k in out["breakdown"])
    assert "database storage (no gp3 price shipped for us-east-1)" in out["excludes"]


def test_estimate_single_az_storage_is_one_copy() -> None:
    db = size_database(database(storage_gib=30), REGION, prices_for_estimate())
    out = cost.estimate(ONE, SERVER, REGION, SERVER_CHOICE, prices_for_estimate(), database=db)
    assert out["breakdown"]["database storage: 30 GiB gp3 at $0.1/GiB-month"] == 3.0
