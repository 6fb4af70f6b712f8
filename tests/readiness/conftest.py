"""The readiness tier's moto: moto plus per-instance EC2 console output (devtools.moto_plugins)
and scripted Auto Scaling instance refreshes (devtools.moto_refresh)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.moto_plugins import CONSOLE_DIR_ENV
from devtools.moto_refresh import REFRESH_DIR_ENV
from devtools.motoserver import moto_server
from tests.readiness.harness import FakeServer


@pytest.fixture(scope="session")
def console_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("console")


@pytest.fixture(scope="session")
def refresh_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("refreshes")


@pytest.fixture(scope="session")
def moto_url(console_dir: Path, refresh_dir: Path) -> Iterator[str]:
    """Overrides the suite's server for this tier, so `aws_env` points at this one."""
    with moto_server({CONSOLE_DIR_ENV: str(console_dir), REFRESH_DIR_ENV: str(refresh_dir)},
                     server_module="devtools.moto_refresh") as url:
        yield url


@pytest.fixture
def fake_server(tmp_path: Path) -> FakeServer:
    return FakeServer(tmp_path / "server")
