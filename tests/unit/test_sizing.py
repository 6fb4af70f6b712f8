"""The pure sizing rules on small hand-made catalogs, the shipped price table, and the adapter's
paging and caching against a stubbed EC2 client (no network)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from components import sizing
from components.config import ConfigError, ServerConfig
from components.sizing import (
    PRICES_PATH,
    Choice,
    InstanceType,
    PriceTable,
    SizingError,
    Spec,
    choose,
    fetch_catalog,
    pinned,
    size,
)

REGION = "us-east-1"


def it(name: str, vcpus: int, gib: float, arch: str = "x86_64",
       burstable: bool = False) -> InstanceType:
    return InstanceType(name, vcpus, int(gib * 1024), arch, burstable, True)


def table(prices: dict[str, float], region: str = REGION) -> PriceTable:
    extras = {"gp3_gb_month": 0.08, "alb_hour": 0.0225, "alb_lcu_hour": 0.008,
              "public_ipv4_hour": 0.005}
    return PriceTable({"source": "test", "as_of": "2026-01-01", "currency": "USD",
                       "regions": {region: {**extras, "instances": prices}}})


def spec(vcpus: int = 2, gib: float = 4, arch: str = "x86_64", burstable: bool = True) -> Spec:
    return Spec(vcpus, gib, arch, burstable)


def server(**overrides: Any) -> ServerConfig:
    fields: dict[str, Any] = dict(vcpus=2, memory_gib=4, disk_gib=20, arch="x86_64",
                                  burstable=True, count=1, os="debian-12", instance_type="")
    return ServerConfig(**{**fields, **overrides})


# --- choose ---------------------------------------------------------------------------------

def test_cheapest_qualifying_type_wins_and_counts_candidates() -> None:
    catalog = [it("big", 8, 32), it("mid", 2, 4), it("small", 1, 2), it("pricey", 2, 4)]
    prices = table({"big": 0.30, "mid": 0.05, "small": 0.01, "pricey": 0.09})
    choice = choose(spec(), catalog, prices, REGION)
    assert (choice.instance_type, choice.hourly_usd, choice.candidates) == ("mid", 0.05, 3)
    assert (choice.vcpus, choice.memory_mib) == (2, 4096)


def test_reason_is_one_line_in_the_documented_style() -> None:
    catalog = [it("t3a.medium", 2, 4, burstable=True), it("t3.medium", 2, 4, burstable=True)]
    choice = choose(spec(), catalog, table({"t3a.medium": 0.0376, "t3.medium": 0.0416}), REGION)
    assert choice.reason == ("t3a.medium: cheapest of 2 x86_64 types with ≥2 vCPU and ≥4 GiB, "
                             "$0.0376/h in us-east-1")


def test_reason_keeps_sub_cent_precision() -> None:
    choice = choose(spec(1, 1), [it("m7a.medium", 1, 4)], table({"m7a.medium": 0.05796}), REGION)
    assert "$0.05796/h" in choice.reason


def test_ties_go_to_fewer_vcpus_then_less_memory_then_name() -> None:
    prices = table({"b-4cpu": 0.1, "c-2cpu-16g": 0.1, "z-2cpu-8g": 0.1, "a-2cpu-8g": 0.1})
    catalog = [it("b-4cpu", 4, 8), it("c-2cpu-16g", 2, 16), it("z-2cpu-8g", 2, 8),
               it("a-2cpu-8g", 2, 8)]
    assert choose(spec(), catalog, prices, REGION).instance_type == "a-2cpu-8g"
    assert choose(spec(), catalog[:3], prices, REGION).instance_type == "z-2cpu-8g"
    assert choose(spec(), catalog[:2], prices, REGION).instance_type == "c-2cpu-16g"


def test_arch_must_match() -> None:
    catalog = [it("cheap-arm", 2, 4, arch="arm64"), it("dear-x86", 2, 4)]
    prices = table({"cheap-arm": 0.01, "dear-x86": 0.09})
    assert choose(spec(arch="x86_64"), catalog, prices, REGION).instance_type == "dear-x86"
    arm = choose(spec(arch="arm64"), catalog, prices, REGION)
    assert arm.instance_type == "cheap-arm"
    assert "1 arm64 types" in arm.reason


def test_burstable_types_only_when_allowed() -> None:
    catalog = [it("t-burst", 2, 4, burstable=True), it("m-steady", 2, 8)]
    prices = table({"t-burst": 0.03, "m-steady": 0.09})
    assert choose(spec(burstable=True), catalog, prices, REGION).instance_type == "t-burst"
    steady = choose(spec(burstable=False), catalog, prices, REGION)
    assert steady.instance_type == "m-steady"
    assert "non-burstable x86_64" in steady.reason


def test_memory_boundary_is_inclusive_in_mib() -> None:
    exact = InstanceType("exact", 2, 4096, "x86_64", False, True)
    short = InstanceType("short", 2, 4095, "x86_64", False, True)
    prices = table({"exact": 0.05, "short": 0.01})
    assert choose(spec(gib=4), [exact, short], prices, REGION).instance_type == "exact"
    assert choose(spec(gib=3.5), [exact, short], prices, REGION).instance_type == "short"


def test_vcpu_boundary_is_inclusive() -> None:
    catalog = [it("two", 2, 8), it("one", 1, 8)]
    prices = table({"two": 0.05, "one": 0.01})
    assert choose(spec(vcpus=2), catalog, prices, REGION).instance_type == "two"


def test_types_without_a_price_in_the_region_are_ignored() -> None:
    catalog = [it("unpriced", 2, 4), it("priced", 2, 4)]
    choice = choose(spec(), catalog, table({"priced": 0.2}), REGION)
    assert (choice.instance_type, choice.candidates) == ("priced", 1)
    with pytest.raises(SizingError):
        choose(spec(), catalog, table({"priced": 0.2}, region="eu-west-1"), REGION)


def test_nothing_fits_names_settings_values_and_the_largest_available() -> None:
    catalog = [it("most-cpu", 16, 32), it("most-mem", 4, 128), it("burst", 64, 256,
                                                                  burstable=True)]
    prices = table({"most-cpu": 1.0, "most-mem": 1.0, "burst": 1.0})
    with pytest.raises(SizingError) as caught:
        choose(spec(vcpus=32, gib=64, burstable=False), catalog, prices, REGION)
    err = caught.value
    assert isinstance(err, ConfigError)
    assert len(err.problems) == 1
    message = str(err)
    for fragment in ("webstack:serverVcpus=32", "webstack:serverMemoryGib=64",
                     "webstack:serverArch=x86_64", "webstack:serverBurstable=false",
                     "most-cpu (16 vCPU, 32 GiB)", "most-mem (4 vCPU, 128 GiB)",
                     "webstack:serverInstanceType"):
        assert fragment in message
    assert "burst (" not in message  # not allowed, so not offered as "available"


def test_nothing_of_the_arch_is_priced() -> None:
    with pytest.raises(SizingError, match="no priced arm64 types in us-east-1 at all"):
        choose(spec(arch="arm64"), [it("x", 2, 4)], table({"x": 0.1}), REGION)


# --- pinned ---------------------------------------------------------------------------------

def test_pinned_priced_type_with_catalog() -> None:
    catalog = [it("m7i.large", 2, 8)]
    choice = pinned("m7i.large", catalog, table({"m7i.large": 0.1008}), REGION, "x86_64")
    assert choice == Choice("m7i.large", 0.1008, 2, 8192,
                            "m7i.large: pinned by webstack:serverInstanceType, "
                            "$0.1008/h in us-east-1", 1)


def test_pinned_without_catalog_trusts_the_table() -> None:
    choice = pinned("m7i.large", None, table({"m7i.large": 0.1008}), REGION, "x86_64")
    assert (choice.instance_type, choice.vcpus, choice.memory_mib) == ("m7i.large", None, None)


def test_pinned_without_price_lists_priced_types_cheapest_first() -> None:
    prices = table({"c.large": 0.3, "a.large": 0.1, "b.large": 0.2})
    with pytest.raises(SizingError) as caught:
        pinned("x9.huge", None, prices, REGION, "x86_64")
    message = str(caught.value)
    assert "webstack:serverInstanceType=x9.huge" in message
    assert "a.large, b.large, c.large" in message


def test_pinned_type_of_another_arch_is_refused() -> None:
    catalog = [it("m7i.large", 2, 8)]  # an x86_64 catalog: t4g is not in it
    prices = table({"t4g.medium": 0.0336, "m7i.large": 0.1008})
    with pytest.raises(SizingError) as caught:
        pinned("t4g.medium", catalog, prices, REGION, "x86_64")
    message = str(caught.value)
    assert "webstack:serverInstanceType=t4g.medium" in message
    assert "webstack:serverArch=x86_64" in message
    assert "such as m7i.large" in message
    with pytest.raises(SizingError):
        pinned("t4g.medium", [it("t4g.medium", 2, 4, arch="arm64")], prices, REGION, "x86_64")


# --- size -----------------------------------------------------------------------------------

def test_size_chooses_by_spec_with_the_loader() -> None:
    calls: list[tuple[str, str]] = []

    def loader(region: str, arch: str) -> list[InstanceType]:
        calls.append((region, arch))
        return [it("a1", 2, 4, arch="arm64"), it("a2", 4, 8, arch="arm64")]

    choice = size(server(arch="arm64", vcpus=3), REGION, table({"a1": 0.01, "a2": 0.02}), loader)
    assert choice.instance_type == "a2"
    assert calls == [(REGION, "arm64")]


def test_size_pins_even_when_the_catalog_cannot_be_read() -> None:
    def offline(region: str, arch: str) -> list[InstanceType]:
        raise SizingError(["no credentials"])

    choice = size(server(instance_type="m7i.large"), REGION, table({"m7i.large": 0.1}), offline)
    assert (choice.instance_type, choice.vcpus) == ("m7i.large", None)
    with pytest.raises(SizingError):
        size(server(), REGION, table({"m7i.large": 0.1}), offline)


# --- the shipped table ----------------------------------------------------------------------

RAW = json.loads(PRICES_PATH.read_text())


def test_shipped_table_states_source_date_and_units() -> None:
    assert RAW["currency"] == "USD"
    assert "github.com" in RAW["source"] and RAW["as_of"][:2] == "20"
    assert "aws pricing get-products" in RAW["refresh"]
    prices = PriceTable.load()
    assert prices.regions() == tuple(sorted(RAW["regions"]))
    assert {"us-east-1", "us-west-2", "eu-west-1", "eu-central-1"} <= set(prices.regions())
    for region in prices.regions():
        extras = prices.extras(region)
        assert extras.public_ipv4_hour == 0.005  # one price everywhere since 2024-02
        assert 0 < extras.gp3_gb_month < 0.2 and 0 < extras.alb_hour < 0.05
        assert 0 < extras.alb_lcu_hour < 0.02
        assert all(0 < p < 5 for p in RAW["regions"][region]["instances"].values())


@pytest.mark.parametrize(("instance_type", "hourly"), [
    ("t3.micro", 0.0104), ("t3.medium", 0.0416), ("t3a.medium", 0.0376),
    ("t4g.medium", 0.0336), ("m7i.large", 0.1008), ("c7g.large", 0.0725)])
def test_shipped_table_matches_published_us_east_1_anchors(instance_type: str,
                                                           hourly: float) -> None:
    assert PriceTable.load().instance_hourly("us-east-1", instance_type) == hourly


SIZE_UNITS = {"nano": 1, "micro": 2, "small": 4, "medium": 8, "large": 16, "xlarge": 32,
              "2xlarge": 64, "4xlarge": 128}


def test_shipped_prices_scale_with_size_within_each_family() -> None:
    """AWS prices a family linearly in size; a transcription slip would break the line."""
    for region, body in RAW["regions"].items():
        per_unit: dict[str, list[tuple[float, str]]] = {}
        for name, price in body["instances"].items():
            family, size_name = name.split(".")
            per_unit.setdefault(family, []).append((price / SIZE_UNITS[size_name], name))
        for family, rates in per_unit.items():
            low, high = min(rates), max(rates)
            assert high[0] / low[0] < 1.01, (region, family, low, high)


# Real vCPU/memory/burstable facts of a few types, as DescribeInstanceTypes reports them.
REAL = [it("t3.micro", 2, 1, burstable=True), it("t3.small", 2, 2, burstable=True),
        it("t3.medium", 2, 4, burstable=True), it("t3a.small", 2, 2, burstable=True),
        it("t3a.medium", 2, 4, burstable=True), it("t3a.large", 2, 8, burstable=True),
        it("t4g.medium", 2, 4, arch="arm64", burstable=True), it("c7i.large", 2, 4),
        it("c6a.large", 2, 4), it("m7i.large", 2, 8), it("m6a.large", 2, 8),
        it("c7g.large", 2, 4, arch="arm64"), it("m7g.large", 2, 8, arch="arm64")]


@pytest.mark.parametrize("arch", ["x86_64", "arm64"])
def test_reference_spec_gets_the_cheapest_qualifying_type_of_the_shipped_table(arch: str) -> None:
    """The seeds' reference spec: 2 vCPU, 4 GiB, burstable allowed."""
    instances = RAW["regions"][REGION]["instances"]
    fits = sorted((instances[t.name], t.name) for t in REAL
                  if t.arch == arch and t.vcpus >= 2 and t.memory_mib >= 4096
                  and t.name in instances)
    choice = choose(spec(arch=arch), REAL, PriceTable.load(), REGION)
    assert (choice.hourly_usd, choice.instance_type) == fits[0]
    assert choice.candidates == len(fits)


# --- the adapter, stubbed -------------------------------------------------------------------

def api_item(name: str, vcpus: int, mib: int, arch: str, burstable: bool) -> dict[str, Any]:
    return {"InstanceType": name, "CurrentGeneration": True,
            "VCpuInfo": {"DefaultVCpus": vcpus}, "MemoryInfo": {"SizeInMiB": mib},
            "ProcessorInfo": {"SupportedArchitectures": ["i386", arch]},
            "BurstablePerformanceSupported": burstable}


def test_fetch_catalog_follows_pages_and_then_serves_the_cache(tmp_path: Path) -> None:
    client = boto3.client("ec2", region_name=REGION, aws_access_key_id="x",
                          aws_secret_access_key="x")
    filters = [{"Name": "processor-info.supported-architecture", "Values": ["x86_64"]},
               {"Name": "current-generation", "Values": ["true"]}]
    with Stubber(client) as stub:
        stub.add_response("describe_instance_types",
                          {"InstanceTypes": [api_item("t3.medium", 2, 4096, "x86_64", True)],
                           "NextToken": "page-2"},
                          {"Filters": filters, "MaxResults": 100})
        stub.add_response("describe_instance_types",
                          {"InstanceTypes": [api_item("m7i.large", 2, 8192, "x86_64", False)]},
                          {"Filters": filters, "MaxResults": 100, "NextToken": "page-2"})
        first = fetch_catalog(REGION, "x86_64", client=client, cache_dir=tmp_path)
        stub.assert_no_pending_responses()
        # No responses left: a second request would raise, so this one comes from disk.
        second = fetch_catalog(REGION, "x86_64", client=client, cache_dir=tmp_path)
    assert first == second == [
        InstanceType("m7i.large", 2, 8192, "x86_64", False, True),
        InstanceType("t3.medium", 2, 4096, "x86_64", True, True)]
    assert [p.name for p in tmp_path.iterdir()] == ["instance-types-us-east-1-x86_64.json"]


def test_fetch_catalog_turns_api_errors_into_sizing_errors(tmp_path: Path) -> None:
    client = boto3.client("ec2", region_name=REGION, aws_access_key_id="x",
                          aws_secret_access_key="x")
    with Stubber(client) as stub:
        stub.add_client_error("describe_instance_types", "UnauthorizedOperation",
                              "You are not authorized to perform this operation.")
        with pytest.raises(SizingError) as caught:
            fetch_catalog(REGION, "arm64", client=client, cache_dir=tmp_path)
    message = str(caught.value)
    assert "UnauthorizedOperation" in message and "ec2:DescribeInstanceTypes" in message
    assert "webstack:serverInstanceType" in message
    assert list(tmp_path.iterdir()) == []


def test_sizing_names_settings_through_the_config_records() -> None:
    source = Path(sizing.__file__).read_text(encoding="utf-8")
    assert "webstack:" not in source
