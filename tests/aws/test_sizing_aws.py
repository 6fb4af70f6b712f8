"""The sizing adapter with boto3 against moto's real instance-type catalog over HTTP."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import boto3
import pytest

from components.config import ServerConfig
from components.sizing import PRICES_PATH, SizingError, fetch_catalog, size
from devtools.motoserver import free_port

pytestmark = pytest.mark.aws

REGION = "us-east-1"


class CountingClient:
    """An EC2 client that records every DescribeInstanceTypes request it sends."""

    def __init__(self) -> None:
        self.client = boto3.Session().client("ec2", region_name=REGION)
        self.bodies: list[str] = []
        self.client.meta.events.register("before-send.ec2.DescribeInstanceTypes", self._record)

    def _record(self, request: Any, **_: Any) -> None:
        body = request.body
        self.bodies.append(body.decode() if isinstance(body, bytes) else str(body))


def raw_types(**kwargs: Any) -> list[dict[str, Any]]:
    """Straight from the API, bypassing the adapter (moto answers in one response)."""
    client = boto3.Session().client("ec2", region_name=REGION)
    return client.describe_instance_types(**kwargs)["InstanceTypes"]


def test_catalog_is_moto_s_real_one_filtered_by_arch_and_generation(aws_env: str,
                                                                      tmp_path: Path) -> None:
    everything = {t["InstanceType"]: t for t in raw_types()}
    assert len(everything) > 1300  # moto 5.2 ships ~1,395 types

    counting = CountingClient()
    x86 = fetch_catalog(REGION, "x86_64", client=counting.client, cache_dir=tmp_path)
    arm = fetch_catalog(REGION, "arm64", client=counting.client, cache_dir=tmp_path)
    assert len(x86) > 500 and len(arm) > 200  # far more than one page of 100
    for catalog, arch in ((x86, "x86_64"), (arm, "arm64")):
        for t in catalog:
            api = everything[t.name]
            assert arch in api["ProcessorInfo"]["SupportedArchitectures"] and t.arch == arch
            assert api["CurrentGeneration"] and t.current_generation
            assert t.vcpus == api["VCpuInfo"]["DefaultVCpus"]
            assert t.memory_mib == api["MemoryInfo"]["SizeInMiB"]
            assert t.burstable == api.get("BurstablePerformanceSupported", False)
    assert not {t.name for t in x86} & {t.name for t in arm}
    # Paged requests: moto 5.2.5 answers DescribeInstanceTypes in one response whatever
    # MaxResults says, so following NextToken is proven with a stub in tests/unit.
    assert len(counting.bodies) == 2
    assert all("MaxResults=100" in body for body in counting.bodies)


def test_second_call_is_served_from_the_cache(aws_env: str, tmp_path: Path) -> None:
    counting = CountingClient()
    first = fetch_catalog(REGION, "x86_64", client=counting.client, cache_dir=tmp_path)
    second = fetch_catalog(REGION, "x86_64", client=counting.client, cache_dir=tmp_path)
    assert first == second
    assert len(counting.bodies) == 1


def test_expired_cache_is_refetched(aws_env: str, tmp_path: Path) -> None:
    counting = CountingClient()
    fetch_catalog(REGION, "x86_64", client=counting.client, cache_dir=tmp_path)
    fetch_catalog(REGION, "x86_64", client=counting.client, cache_dir=tmp_path,
                  max_age=timedelta(0))
    assert len(counting.bodies) == 2

    [cache] = tmp_path.iterdir()
    data = json.loads(cache.read_text())
    data["fetched_at"] = time.time() - timedelta(days=8).total_seconds()
    cache.write_text(json.dumps(data))
    fetch_catalog(REGION, "x86_64", client=counting.client, cache_dir=tmp_path)
    assert len(counting.bodies) == 3
    assert json.loads(cache.read_text())["fetched_at"] > time.time() - 60


def test_corrupt_cache_is_refetched_and_rewritten(aws_env: str, tmp_path: Path) -> None:
    counting = CountingClient()
    good = fetch_catalog(REGION, "x86_64", client=counting.client, cache_dir=tmp_path)
    [cache] = tmp_path.iterdir()
    for garbage in ('{"format": 1, "fetched_at": ', '{"format": 1, "types": []}', "[]"):
        cache.write_text(garbage)
        assert fetch_catalog(REGION, "x86_64", client=counting.client,
                             cache_dir=tmp_path) == good
        assert json.loads(cache.read_text())["types"]
    assert len(counting.bodies) == 4


def test_default_client_uses_aws_endpoint_url_and_keys_the_cache_by_it(
        aws_env: str, tmp_path: Path) -> None:
    catalog = fetch_catalog(REGION, "arm64", cache_dir=tmp_path)
    assert any(t.name == "t4g.medium" for t in catalog)
    [cache] = tmp_path.iterdir()
    assert cache.name.startswith("instance-types-us-east-1-arm64-")  # never AWS's own file
    assert json.loads(cache.read_text())["endpoint"] == aws_env


def test_dead_endpoint_fails_in_seconds_with_advice(aws_env: str, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    started = time.monotonic()
    with pytest.raises(SizingError) as caught:
        fetch_catalog(REGION, "x86_64", cache_dir=tmp_path)
    assert time.monotonic() - started < 10
    message = str(caught.value)
    assert "unreachable" in message and "webstack:serverInstanceType" in message
    assert list(tmp_path.iterdir()) == []


def test_missing_credentials_say_what_to_set(aws_env: str, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(SizingError, match="no AWS credentials found: set AWS_PROFILE"):
        fetch_catalog(REGION, "x86_64", cache_dir=tmp_path)


def reference(arch: str, **overrides: Any) -> ServerConfig:
    """The seeds' reference spec: 2 vCPU, 4 GiB, 20 GB disk, burstable allowed."""
    fields: dict[str, Any] = dict(vcpus=2, memory_gib=4, disk_gib=20, arch=arch, burstable=True,
                                  count=1, os="debian-12", instance_type="")
    return ServerConfig(**{**fields, **overrides})


@pytest.mark.parametrize("arch", ["x86_64", "arm64"])
def test_reference_spec_through_adapter_and_shipped_table(aws_env: str, tmp_path: Path,
                                                          arch: str) -> None:
    instances = json.loads(PRICES_PATH.read_text())["regions"][REGION]["instances"]
    fits = sorted((instances[t["InstanceType"]], t["InstanceType"]) for t in raw_types(
        Filters=[{"Name": "current-generation", "Values": ["true"]}])
        if arch in t["ProcessorInfo"]["SupportedArchitectures"]
        and t["VCpuInfo"]["DefaultVCpus"] >= 2 and t["MemoryInfo"]["SizeInMiB"] >= 4096
        and t["InstanceType"] in instances)
    assert len(fits) > 10

    choice = size(reference(arch), REGION,
                  catalog_loader=partial(fetch_catalog, cache_dir=tmp_path))
    assert (choice.hourly_usd, choice.instance_type) == fits[0]
    assert choice.candidates == len(fits)
    assert choice.reason.startswith(f"{fits[0][1]}: cheapest of {len(fits)} {arch} types "
                                    "with ≥2 vCPU and ≥4 GiB, $")


def test_pinned_type_is_checked_against_the_catalog(aws_env: str, tmp_path: Path) -> None:
    loader = partial(fetch_catalog, cache_dir=tmp_path)
    choice = size(reference("x86_64", instance_type="m7i.large"), REGION, catalog_loader=loader)
    assert (choice.instance_type, choice.vcpus, choice.memory_mib) == ("m7i.large", 2, 8192)
    with pytest.raises(SizingError, match="webstack:serverArch=x86_64"):
        size(reference("x86_64", instance_type="t4g.medium"), REGION, catalog_loader=loader)


@pytest.fixture
def stack_config() -> Any:
    """Sets the program's raw `aws:*` config as the Pulumi CLI would; cleared after."""
    from pulumi.runtime import set_all_config

    yield lambda config: set_all_config(dict(config), [])
    set_all_config({}, [])


def test_catalog_is_read_as_the_provider_s_role(aws_env: str, tmp_path: Path,
                                                stack_config: Any) -> None:
    role = "arn:aws:iam::111111111111:role/deploy"
    stack_config({"aws:region": REGION, "aws:assumeRoles": json.dumps([
        {"roleArn": role, "sessionName": "webstack-sizing"}])})
    signed: list[str] = []
    from botocore import session as core_session

    original = core_session.Session.create_client

    def recording(self: Any, name: str, *args: Any, **kwargs: Any) -> Any:
        client = original(self, name, *args, **kwargs)
        client.meta.events.register(
            "before-sign.ec2.DescribeInstanceTypes",
            lambda **_: signed.append(client._request_signer._credentials.access_key))
        client.meta.events.register(
            "provide-client-params.sts.AssumeRole",
            lambda params, **_: signed.append(f"assume {params['RoleArn']}"))
        return client

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(core_session.Session, "create_client", recording)
        catalog = fetch_catalog(REGION, "x86_64", cache_dir=tmp_path)
        again = fetch_catalog(REGION, "x86_64", cache_dir=tmp_path)  # the cache: no STS call
    assert catalog == again and len(catalog) > 500
    assert signed[0] == f"assume {role}" and len(signed) == 2
    assert signed[1].startswith("ASIA")  # the role's temporary key, not the environment's


def test_a_profile_the_files_lack_is_a_sizing_error_naming_it(aws_env: str, tmp_path: Path,
                                                              stack_config: Any) -> None:
    (tmp_path / "config").write_text("[profile other]\n")
    stack_config({"aws:region": REGION, "aws:profile": "deploy",
                  "aws:sharedConfigFiles": json.dumps([str(tmp_path / "config")])})
    with pytest.raises(SizingError, match="aws:profile 'deploy' is not in the shared config"):
        fetch_catalog(REGION, "x86_64", cache_dir=tmp_path)
