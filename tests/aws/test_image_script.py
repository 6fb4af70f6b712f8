"""scripts/image.py against moto on 127.0.0.1 holding a catalog of official-looking images."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import boto3
import pytest

from devtools.motoserver import moto_server
from scripts import image

DEBIAN = "136693071363"


def _ami(ami_id: str, name: str, created: str, arch: str = "x86_64",
         owner: str = DEBIAN) -> dict[str, object]:
    return {"ami_id": ami_id, "name": name, "description": name, "owner_id": owner,
            "public": True, "virtualization_type": "hvm", "architecture": arch,
            "state": "available", "platform": None, "image_type": "machine",
            "hypervisor": "xen", "root_device_name": "/dev/xvda", "root_device_type": "ebs",
            "sriov": "simple", "creation_date": created}


CATALOG = [
    _ami("ami-0aaaaaaaaaaaaaaa1", "debian-12-amd64-20261001-1900", "2026-10-01T19:00:00.000Z"),
    _ami("ami-0aaaaaaaaaaaaaaa2", "debian-12-amd64-20261115-2000", "2026-11-15T20:00:00.000Z"),
    _ami("ami-0aaaaaaaaaaaaaaa3", "debian-12-arm64-20261120-2000", "2026-11-20T20:00:00.000Z",
         arch="arm64"),
    _ami("ami-0aaaaaaaaaaaaaaa4", "debian-12-amd64-20261130-2000", "2026-11-30T20:00:00.000Z",
         owner="999999999999"),  # a look-alike from someone else: never picked
]


@pytest.fixture(scope="module")
def ec2(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    path = tmp_path_factory.mktemp("amis") / "amis.json"
    path.write_text(json.dumps(CATALOG), encoding="utf-8")
    with moto_server({"MOTO_AMIS_PATH": str(path)}) as url:
        yield boto3.client("ec2", endpoint_url=url, region_name="us-east-1",
                           aws_access_key_id="testing", aws_secret_access_key="testing")


def _project(tmp_path: Path, image_id: str = "", *extra: str) -> Path:
    lines = ["config:", "  aws:region: us-east-1", "  webstack:appName: hello", *extra]
    if image_id:
        lines.append(f"  webstack:serverImage: {image_id}")
    (tmp_path / "Pulumi.prod.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return tmp_path


class Recorder:
    def __init__(self, code: int = 0) -> None:
        self.code, self.calls = code, []

    def __call__(self, command: list[str], **kwargs: object) -> SimpleNamespace:
        self.calls.append((command, kwargs))
        return SimpleNamespace(returncode=self.code)


def test_shows_pinned_and_newest_official_image(ec2, tmp_path, capsys):
    assert image.main(["--stack", "prod", "--project-dir", str(_project(tmp_path))],
                      ec2=ec2) == 0
    out = capsys.readouterr().out
    assert "webstack:serverImage = unset" in out
    assert "ami-0aaaaaaaaaaaaaaa2 (debian-12-amd64-20261115-2000" in out  # not the look-alike


def test_pin_sets_the_newest_with_the_pulumi_cli(ec2, tmp_path, capsys):
    run = Recorder()
    project = _project(tmp_path, "ami-0aaaaaaaaaaaaaaa1")
    assert image.main(["--stack", "prod", "--project-dir", str(project), "--pin"],
                      ec2=ec2, run=run) == 0
    assert [c for c, _ in run.calls] == [["pulumi", "config", "set", "--stack", "prod",
                                          "webstack:serverImage", "ami-0aaaaaaaaaaaaaaa2"]]
    assert run.calls[0][1]["cwd"] == project
    assert "rolls it out" in capsys.readouterr().out


def test_pin_of_the_image_already_pinned_does_nothing(ec2, tmp_path):
    run = Recorder()
    project = _project(tmp_path, "ami-0aaaaaaaaaaaaaaa2")
    assert image.main(["--stack", "prod", "--project-dir", str(project), "--pin"],
                      ec2=ec2, run=run) == 0
    assert run.calls == []


def test_pin_of_a_malformed_id_names_the_setting(tmp_path, capsys):
    run = Recorder()
    assert image.main(["--stack", "prod", "--project-dir", str(_project(tmp_path)),
                       "--pin", "debian"], run=run) == 2
    assert "webstack:serverImage = 'debian'" in capsys.readouterr().err
    assert run.calls == []


def test_the_lookup_uses_the_stacks_provider_profile(aws_env, tmp_path, capsys):
    """The stack's aws:profile is the provider's, so it is ours: one it lacks is exit 2."""
    project = _project(tmp_path, "", "  aws:profile: nosuch-profile")
    assert image.main(["--stack", "prod", "--project-dir", str(project)]) == 2
    assert "nosuch-profile" in capsys.readouterr().err


def test_a_failing_pulumi_cli_is_exit_2(ec2, tmp_path, capsys):
    project = _project(tmp_path)
    assert image.main(["--stack", "prod", "--project-dir", str(project), "--pin",
                       "ami-0123456789abcdef0"], run=Recorder(code=255)) == 2
    assert "exited 255" in capsys.readouterr().err
