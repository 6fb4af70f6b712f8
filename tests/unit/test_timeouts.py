"""Behind the load balancer nginx keeps idle connections longer than the ALB does: otherwise
the ALB reuses a connection nginx has just closed and answers 502 (sporadically, and more often
the longer appTimeoutSeconds makes the ALB's idle timeout)."""

from __future__ import annotations

import re

import pytest

from components import config
from components.bootstrap import render
from components.loadbalancer import LoadBalancer
from devtools.mockrun import run_program, stack_config
from tests.cases import GOOD_ZONE

ALB_MAX_IDLE = 4000  # seconds: the most an ALB accepts (ELB API, idle_timeout.timeout_seconds)


def _cfg(**overrides: str) -> config.StackConfig:
    raw = stack_config("dev", overrides)
    return config.parse(raw, project="webstack", stack="dev", region="us-east-1",
                        supported_regions=("us-east-1",))


@pytest.mark.parametrize("timeout", ["1", "30", "56", "120", "3600"])
def test_nginx_outlives_the_load_balancers_idle_connections(timeout):
    cfg = _cfg(**GOOD_ZONE, **{"webstack:tlsMode": "acm", "webstack:appTimeoutSeconds": timeout})
    site = render(cfg).files["/etc/nginx/conf.d/hello.conf"]
    (keepalive,) = re.findall(r"keepalive_timeout (\d+)s;", site)
    def program() -> None:
        LoadBalancer(f"lb-{timeout}", idle_timeout=cfg.lb_idle_timeout,
                     health_path=cfg.app.health_path, tags=cfg.tags, vpc_id="vpc-1",
                     subnet_ids=["subnet-a", "subnet-b"], security_group_id="sg-1",
                     instance_ids=[], certificate_arn="arn:cert")
    run = run_program("test", {"aws:region": "us-east-1"}, program=program)
    assert run.error is None, run.error
    idle = run.one("aws:lb/loadBalancer:LoadBalancer").inputs["idleTimeout"]
    assert int(timeout) < idle <= ALB_MAX_IDLE  # a request may run its whole timeout
    assert int(keepalive) > idle


def test_a_server_facing_clients_keeps_nginx_s_default():
    assert "keepalive_timeout" not in render(_cfg()).files["/etc/nginx/conf.d/hello.conf"]
