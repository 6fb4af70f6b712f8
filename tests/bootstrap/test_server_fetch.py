"""The fetcher in the user-data, as a program: the artefact from a real S3 (moto) with IMDSv2
role credentials from the local VM's IMDS, checked by its sha256 before anything is written."""

from __future__ import annotations

import json
import re
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import boto3
import pytest

from components.bootstrap import Endpoints, artefact_key, render
from components.naming import Paths
from devtools.local_aws import imds_handler
from devtools.localrun import local_target
from tests.http_site import serving
from tests.variants import cfg as variant

pytestmark = pytest.mark.aws
BUCKET = "hello-dev-123456789012-us-east-1"


@pytest.fixture
def imds() -> Iterator[str]:
    with serving(imds_handler("us-east-1", "i-0test")) as url:
        yield url


def staged(tmp_path: Path, imds: str, moto_url: str, body: bytes | None = None):
    """The user-data's two files under a root, and the artefact (or `body`) in the bucket."""
    cfg = variant("selfsigned")
    root = tmp_path / "root"
    target = replace(local_target(root, 8080, 8443, root / "venv"),
                     endpoints=Endpoints(imds=imds, s3=moto_url))
    rendered = render(cfg, target, bucket=BUCKET)
    lib = Paths(str(root), cfg.app.name).lib
    for name in ("awsclient.py", "boot.env"):
        Path(lib).mkdir(parents=True, exist_ok=True)
        Path(f"{lib}/{name}").write_text(rendered.files[f"{lib}/{name}"])
    s3 = boto3.client("s3", endpoint_url=moto_url, region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key=artefact_key(rendered.artefact_sha256),
                  Body=rendered.artefact if body is None else body)
    return rendered, lib


def fetch(lib: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["/usr/bin/python3", f"{lib}/awsclient.py", "fetch", *args],
                          capture_output=True, text=True, timeout=120, check=False,
                          env={"PATH": "/usr/bin:/bin"})


def test_fetch_unpacks_every_file_with_its_mode(tmp_path: Path, imds: str, moto_url: str) -> None:
    rendered, lib = staged(tmp_path, imds, moto_url)
    proc = fetch(lib)
    assert proc.returncode == 0, proc.stderr
    assert f"of artefact {rendered.artefact_sha256[:12]} under {tmp_path}/root" in proc.stdout
    for path, text in rendered.files.items():
        assert Path(path).read_text() == text, path
        if not path.startswith((f"{lib}/awsclient.py", f"{lib}/boot.env")):  # cloud-init's
            assert Path(path).stat().st_mode & 0o7777 == rendered.modes[path], path


def test_early_fetch_unpacks_only_the_programs(tmp_path: Path, imds: str, moto_url: str) -> None:
    rendered, lib = staged(tmp_path, imds, moto_url)
    proc = fetch(lib, "--only", lib)
    assert proc.returncode == 0, proc.stderr
    written = {p for p in rendered.files if Path(p).exists()}
    assert written == {p for p in rendered.files if p.startswith(lib + "/")}
    assert Path(f"{lib}/probe").exists() and not any("/nginx/" in p for p in written)


def test_a_tampered_artefact_is_refused_and_nothing_written(
        tmp_path: Path, imds: str, moto_url: str) -> None:
    _, lib = staged(tmp_path, imds, moto_url, body=b"not the artefact")
    proc = fetch(lib)
    assert proc.returncode == 1
    assert proc.stderr.startswith("awsclient: FAILED: s3://") and ": refused" in proc.stderr
    assert not Path(f"{lib}/setup").exists()


def test_a_missing_artefact_fails_with_s3s_answer(tmp_path: Path, imds: str,
                                                  moto_url: str) -> None:
    _, lib = staged(tmp_path, imds, moto_url)
    boot = Path(f"{lib}/boot.env")
    boot.write_text(re.sub(r'ARTEFACT_KEY="[^"]*"', 'ARTEFACT_KEY="artefacts/nope.tar"',
                           boot.read_text()))
    proc = fetch(lib)
    assert proc.returncode == 1 and "answered 404" in proc.stderr and "NoSuchKey" in proc.stderr


def test_imds_wants_a_token_first(imds: str) -> None:
    """IMDSv2 only, as EC2 with HttpTokens=required: a GET without a token is refused."""
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"{imds}/latest/meta-data/instance-id", timeout=5)
    assert err.value.code == 401
    err.value.close()


def test_the_client_reads_secrets_manager_and_ssm_with_the_role(
        tmp_path: Path, imds: str, moto_url: str) -> None:
    """The one client every server program shares: Secrets Manager and SSM (JSON protocol)
    beside S3, signed with the IMDSv2 role's credentials."""
    _, lib = staged(tmp_path, imds, moto_url)
    settings = Path(lib) / "settings.env"
    settings.write_text(f'REGION="us-east-1"\nENDPOINT_IMDS="{imds}"\n'
                        f'ENDPOINT_SECRETSMANAGER="{moto_url}"\nENDPOINT_SSM="{moto_url}"\n')
    session = dict(endpoint_url=moto_url, region_name="us-east-1",
                   aws_access_key_id="testing", aws_secret_access_key="testing")
    boto3.client("secretsmanager", **session).create_secret(
        Name="shop/db", SecretString='{"password": "p@ss \\"w0rd\\""}')
    boto3.client("ssm", **session).put_parameter(Name="/shop/key", Value="k3y",
                                                 Type="SecureString")
    program = ("import awsclient, json\n"
               "aws = awsclient.Aws(awsclient.settings())\n"
               "print(json.dumps([aws.call('secretsmanager', 'secretsmanager.GetSecretValue',"
               " {'SecretId': 'shop/db'})['SecretString'], aws.call('ssm', "
               "'AmazonSSM.GetParameter', {'Name': '/shop/key', 'WithDecryption': True})"
               "['Parameter']['Value']]))\n")
    proc = subprocess.run(["/usr/bin/python3", "-c", program], cwd=lib, capture_output=True,
                          text=True, timeout=60, check=False, env={"PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == ['{"password": "p@ss \\"w0rd\\""}', "k3y"]
