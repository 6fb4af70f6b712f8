"""Where servers can run, decided before any resource: plain rules, and the program under mocks
whose lookups say no (no default VPC, a type not offered, an image that does not exist)."""

from __future__ import annotations

import pytest

from components import config
from components.placement import Placement, check_servers_fit, created_vpc_zones
from devtools.mockrun import RecordingMocks, run_program, stack_config
from tests.cases import arr


def _site(subnets: dict[str, str], offered: set[str]) -> Placement:
    return Placement("vpc-1", "172.31.0.0/16", subnets, tuple(subnets.values()),
                     frozenset(offered))


def test_servers_use_only_zones_that_offer_their_type():
    site = _site({"subnet-a": "us-east-1a", "subnet-e": "us-east-1e"}, {"us-east-1a"})
    assert site.server_zones() == ["us-east-1a"]
    check_servers_fit(site, "t3.micro", load_balanced=True)  # the ALB still spans both


def test_no_zone_offering_the_type_is_a_config_error():
    site = _site({"subnet-e": "us-east-1e"}, {"us-east-1a"})
    with pytest.raises(config.ConfigError, match=r"t3\.micro is not offered .*us-east-1e.*"
                                                 r"webstack:serverInstanceType"):
        check_servers_fit(site, "t3.micro", load_balanced=False)


def test_a_load_balancer_needs_two_zones():
    site = _site({"subnet-a": "us-east-1a"}, {"us-east-1a"})
    with pytest.raises(config.ConfigError, match=r"two zones.*networkCreateVpc"):
        check_servers_fit(site, "t3.micro", load_balanced=True)


def test_created_vpc_zones_are_the_regions_first_in_order():
    assert created_vpc_zones(["b", "a", "c"], 2) == ("b", "a")


@pytest.mark.parametrize(("token", "overrides", "expected"), [
    ("aws:ec2/getVpc:getVpc", {}, ("has no default VPC", "webstack:networkCreateVpc = true")),
    ("aws:ec2/getAmi:getAmi", {"webstack:serverImage": "ami-0123456789abcdef0"},
     ("webstack:serverImage = 'ami-0123456789abcdef0'", "expected an image in us-east-1")),
    ("aws:ec2/getAmi:getAmi", {}, ("webstack:serverOs = 'debian-12'",)),
])
def test_a_failed_lookup_is_a_config_error_before_any_resource(aws_env_module, token, overrides,
                                                               expected):
    mocks = RecordingMocks()
    mocks.fail(token, "Your query returned no results.")
    run = run_program("dev", stack_config("dev", overrides), mocks=mocks)
    assert isinstance(run.error, config.ConfigError), repr(run.error)
    for text in expected:
        assert text in str(run.error)
    assert "no results" in str(run.error)  # the provider's reason is kept
    assert run.resources == []


def test_a_type_offered_nowhere_in_the_stacks_zones_registers_nothing(aws_env_module):
    mocks = RecordingMocks()
    mocks.unoffered = {f"us-east-1{z}" for z in "abcdef"}
    run = run_program("dev", stack_config("dev"), mocks=mocks)
    assert isinstance(run.error, config.ConfigError) and "is not offered" in str(run.error)
    assert run.resources == []


def test_a_fleet_skips_the_zone_without_its_type(aws_env_module):
    """us-east-1e has no t3: the group and the single server avoid its subnet."""
    for overrides in ({"webstack:serverCount": "2"}, {}):
        mocks = RecordingMocks()
        mocks.unoffered = {"us-east-1a"}  # the default subnet "subnet-0a" is there
        run = run_program("dev", stack_config("dev", {**overrides,
                                                      "webstack:alertEmails": arr()}),
                          mocks=mocks)
        assert run.error is None, run.error
        subnets = ([g.inputs["vpcZoneIdentifiers"] for g in
                    run.of_type("aws:autoscaling/group:Group")]
                   or [[i.inputs["subnetId"]] for i in run.of_type("aws:ec2/instance:Instance")])
        (used,) = subnets
        assert used and "subnet-0a" not in used, used
        for alb in run.of_type("aws:lb/loadBalancer:LoadBalancer"):
            assert "subnet-0a" in alb.inputs["subnets"]
