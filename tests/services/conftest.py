"""The servers of tests/services/servers.py, one of each per module, and what the stack writes
for servers to find them: the SSM parameters (components.database / components.cache's JSON)
and the Secrets Manager secrets, in moto."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

from components import naming
from components.config import StackConfig
from devtools.local_aws import imds_handler
from tests.http_site import serving
from tests.services import servers
from tests.variants import make_cfg

USER = "webstack"
NAME = "app"
# A password as RDS makes them (no / @ " or space), plus what URL encoding must carry.
PASSWORD = "Pa:ss%w+rd#1?&='x"


@pytest.fixture(scope="module")
def postgres() -> Iterator[servers.Database]:
    with servers.postgres() as db:
        db.create(USER, PASSWORD, NAME)
        yield db


@pytest.fixture(scope="module")
def mysql() -> Iterator[servers.Database]:
    with servers.mariadb() as db:
        db.create(USER, PASSWORD, NAME)
        yield db


@pytest.fixture(params=["postgres", "mysql"])
def database(request: pytest.FixtureRequest) -> servers.Database:
    """Each engine in turn (its server started once per module)."""
    return request.getfixturevalue(request.param)


@pytest.fixture(scope="module")
def imds() -> Iterator[str]:
    with serving(imds_handler("us-east-1", "i-0services")) as url:
        yield url


@dataclass(frozen=True)
class Aws:
    """moto's SSM and Secrets Manager, as the program and RDS leave them."""

    ssm: Any
    secrets: Any

    @classmethod
    def at(cls, url: str) -> Aws:
        session = dict(endpoint_url=url, region_name="us-east-1",
                       aws_access_key_id="testing", aws_secret_access_key="testing")
        return cls(boto3.client("ssm", **session), boto3.client("secretsmanager", **session))

    def secret(self, value: str) -> str:
        """A new secret holding `value`: its ARN."""
        return self.secrets.create_secret(Name=f"test/{uuid.uuid4().hex}",
                                          SecretString=value)["ARN"]

    def parameter(self, name: str, value: dict[str, object]) -> None:
        self.ssm.put_parameter(Name=name, Value=json.dumps(value), Type="String",
                               Overwrite=True)

    def created_database(self, cfg: StackConfig, db: servers.Database, password: str = PASSWORD,
                         user: str = USER, name: str = NAME) -> str:
        """An RDS database the stack created: its parameter and its managed secret's ARN."""
        arn = self.secret(json.dumps({"username": user, "password": password}))
        self.parameter(naming.database_parameter(cfg), {
            "engine": db.engine, "host": db.host, "port": db.port, "name": name,
            "secret": arn})
        return arn

    def cache(self, cfg: StackConfig, cache: servers.Cache, *more: servers.Cache) -> None:
        """The cache parameter as components/cache.py writes it (`more`: memcached's other
        nodes)."""
        arn = self.secret(json.dumps({"password": cache.password})) if cache.password else ""
        self.parameter(naming.cache_parameter(cfg), {
            "engine": cache.engine, "host": cache.host, "port": cache.port,
            "tls": bool(cache.ca), "secret": arn,
            "nodes": [f"{c.host}:{c.port}" for c in (cache, *more)]})


@pytest.fixture(scope="module")
def aws(moto_url: str) -> Aws:
    return Aws.at(moto_url)


def stack_cfg(settings: dict[str, str]) -> StackConfig:
    """A stack of its own name (moto is shared by the session): its parameters are its own."""
    return make_cfg({"webstack:networkCreateVpc": "true", **settings},
                    stack=f"s{uuid.uuid4().hex[:10]}")
