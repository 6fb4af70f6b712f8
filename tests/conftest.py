"""Shared fixtures: one moto server per session on 127.0.0.1 and an AWS environment that can
only reach it (no profile, config file, IMDS or proxy to fall back on)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.motoserver import moto_server

FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
_UNSET = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_REGION",
          "AWS_ENDPOINT_URL_EC2", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    with moto_server({"MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION": "1"}) as url:
        yield url


def _isolate(mp: pytest.MonkeyPatch, tmp: Path, url: str) -> None:
    for name in _UNSET:
        mp.delenv(name, raising=False)
    mp.setenv("AWS_CONFIG_FILE", str(tmp / "no-config"))
    mp.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp / "no-credentials"))
    mp.setenv("AWS_EC2_METADATA_DISABLED", "true")
    mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
    mp.setenv("AWS_ENDPOINT_URL", url)
    mp.setenv("XDG_CACHE_HOME", str(tmp / "cache"))
    for name, value in FAKE_CREDENTIALS.items():
        mp.setenv(name, value)


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, moto_url: str) -> str:
    """Per test: fake credentials, AWS_ENDPOINT_URL=moto, a fresh catalog cache."""
    _isolate(monkeypatch, tmp_path, moto_url)
    return moto_url


@pytest.fixture(scope="module")
def aws_env_module(moto_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The same for a whole module (program runs share one catalog cache); restored after."""
    with pytest.MonkeyPatch.context() as mp:
        _isolate(mp, tmp_path_factory.mktemp("aws"), moto_url)
        yield moto_url


class PlannedVariants(dict):
    """Each variant of tests/variants.py planned once per session, when a test first asks for
    it: the program's, the data stores' and the image's tests read the same runs."""

    def __init__(self, url: str, tmp: Path):
        super().__init__()
        self.url, self.tmp = url, tmp

    def __missing__(self, key: str):
        from tests import variants  # the program's modules, only when a plan is wanted

        with pytest.MonkeyPatch.context() as mp:
            _isolate(mp, self.tmp, self.url)
            self[key] = run = variants.plan(key)
        return run


@pytest.fixture(scope="session")
def planned(moto_url: str, tmp_path_factory: pytest.TempPathFactory) -> PlannedVariants:
    return PlannedVariants(moto_url, tmp_path_factory.mktemp("planned"))
