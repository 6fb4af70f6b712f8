"""The topology: one answer, from the config, to what runs the app, what faces clients and where
TLS ends."""

from __future__ import annotations

import pytest

from components import config, topology
from devtools.mockrun import stack_config
from tests.cases import GOOD_ZONE

LETSENCRYPT = {**GOOD_ZONE, "webstack:tlsMode": "letsencrypt",
               "webstack:tlsEmail": "ops@example.com"}


def shape(stack: str = "dev", **overrides: str) -> topology.Topology:
    raw = stack_config(stack, overrides)
    return topology.derive(config.parse(raw, project="webstack", stack=stack,
                                        region="us-east-1", supported_regions=("us-east-1",)))


@pytest.mark.parametrize(("overrides", "servers", "edge", "tls", "scheme"), [
    ({}, "single", "direct", "none", "http"),
    (LETSENCRYPT, "single", "direct", "server", "https"),
    ({"webstack:tlsMode": "selfsigned"}, "single", "direct", "server", "https"),
    ({**GOOD_ZONE, "webstack:tlsMode": "acm"}, "single", "load_balancer", "alb", "https"),
    ({"webstack:serverCount": "2"}, "fleet", "load_balancer", "none", "http"),
    ({"webstack:serverMaxCount": "3"}, "fleet", "load_balancer", "none", "http"),
    ({"webstack:serverMinCount": "1"}, "fleet", "load_balancer", "none", "http"),
    ({**GOOD_ZONE, "webstack:tlsMode": "acm", "webstack:serverCount": "3"},
     "fleet", "load_balancer", "alb", "https"),
])
def test_servers_edge_and_where_tls_ends(overrides, servers, edge, tls, scheme):
    t = shape(**overrides)
    assert (t.servers, t.edge, t.tls, t.scheme) == (servers, edge, tls, scheme)
    assert t.fleet == (servers == "fleet") and t.load_balanced == (edge == "load_balancer")


def test_the_repository_stacks():
    assert shape("dev") == topology.Topology("single", "direct", "none")
    assert shape("prod") == topology.Topology("fleet", "load_balancer", "acm")


def test_the_world_reaches_443_only_where_tls_ends():
    assert shape().public_ports == (80,)
    assert shape(**LETSENCRYPT).public_ports == (80, 443)  # 80: ACME and the redirect
    assert shape("prod").public_ports == (80, 443)


def test_only_a_self_signed_certificate_keeps_the_url_from_being_checked():
    assert shape().url_checkable and shape(**LETSENCRYPT).url_checkable
    assert shape("prod").url_checkable
    assert not shape(**{"webstack:tlsMode": "selfsigned"}).url_checkable
