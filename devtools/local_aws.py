"""The AWS a local VM's server talks to: an IMDSv2 endpoint (token, instance id, region, role
credentials) and S3, SSM and Secrets Manager (moto), all on the host's 127.0.0.1, which the guest
reaches through qemu's user networking at `GUEST_HOST`. With these, the VM boots the same
user-data as EC2 and fetches the same artefact and secrets the same way; only `Endpoints`
differ, and `guest_endpoints` is the one place that says how. A stack's database and cache are
servers on the host's loopback too, published as the stack's RDS and ElastiCache are
(`publish_database`, `publish_cache`): an SSM parameter with the endpoint at `GUEST_HOST` and a
Secrets Manager secret with the credentials.

    python -m devtools.local_aws --state DIR --region R [--detach]   serve until SIGTERM
                                   (--detach: in the background, so it outlives `make demo`)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3

from components import naming
from components.bootstrap import Endpoints, RenderedBootstrap, artefact_key
from components.bundle import Bundle
from components.config import StackConfig
from devtools.localrun import wait_until
from devtools.motoserver import free_port

HOST = "127.0.0.1"
GUEST_HOST = "10.0.2.2"  # qemu user networking: the host's loopback, as the guest sees it
ROLE = "webstack-local-vm"
ACCOUNT = "123456789012"  # moto's account: names the bucket as the real account would
CREDENTIALS = {"AccessKeyId": "ASIALOCALVMTESTING00", "SecretAccessKey": "local-vm-secret",
               "Token": "local-vm-session-token"}
_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class LocalAwsInfo:
    moto_port: int
    imds_port: int
    region: str
    pid: int


def guest_endpoints(info: LocalAwsInfo) -> Endpoints:
    aws = f"http://{GUEST_HOST}:{info.moto_port}"
    return Endpoints(imds=f"http://{GUEST_HOST}:{info.imds_port}", s3=aws, ssm=aws,
                     secretsmanager=aws)


def imds_handler(region: str, instance_id: str) -> type[BaseHTTPRequestHandler]:
    """IMDSv2 as EC2 answers it: PUT a token first; every GET without a valid one is 401."""
    tokens: set[str] = set()
    paths = {
        "/latest/meta-data/instance-id": instance_id,
        "/latest/meta-data/placement/region": region,
        "/latest/meta-data/iam/security-credentials/": ROLE,
        f"/latest/meta-data/iam/security-credentials/{ROLE}": json.dumps({
            "Code": "Success", "Type": "AWS-HMAC", **CREDENTIALS,
            "Expiration": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                        time.gmtime(time.time() + 6 * 3600))}),
    }

    class Imds(BaseHTTPRequestHandler):
        def reply(self, status: int, body: str) -> None:
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_PUT(self) -> None:
            if self.path != "/latest/api/token" or not self.headers.get(
                    "X-aws-ec2-metadata-token-ttl-seconds"):
                return self.reply(400, "")
            token = secrets.token_urlsafe(24)
            tokens.add(token)
            self.reply(200, token)

        def do_GET(self) -> None:
            if self.headers.get("X-aws-ec2-metadata-token") not in tokens:
                return self.reply(401, "")
            body = paths.get(self.path)
            self.reply(200, body) if body is not None else self.reply(404, "")

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Imds


def serve(state: Path, region: str) -> None:
    """moto and the IMDS on free 127.0.0.1 ports until SIGTERM; `local-aws.json` says where."""
    from moto.server import ThreadedMotoServer  # a development dependency only

    moto_port, imds_port = free_port(), free_port()
    moto = ThreadedMotoServer(ip_address=HOST, port=moto_port, verbose=False)
    moto.start()
    imds = ThreadingHTTPServer((HOST, imds_port), imds_handler(region, "i-0localvm00000000"))
    threading.Thread(target=imds.serve_forever, daemon=True).start()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    info = LocalAwsInfo(moto_port, imds_port, region, os.getpid())
    tmp = state / "local-aws.json.new"
    tmp.write_text(json.dumps(asdict(info)) + "\n", encoding="utf-8")
    tmp.replace(info_file(state))
    done.wait()
    imds.shutdown()
    moto.stop()


def info_file(state: Path) -> Path:
    return state / "local-aws.json"


def running(state: Path) -> LocalAwsInfo | None:
    try:
        info = LocalAwsInfo(**json.loads(info_file(state).read_text(encoding="utf-8")))
        cmdline = Path(f"/proc/{info.pid}/cmdline").read_bytes()
    except (OSError, ValueError, TypeError):
        return None
    return info if b"devtools.local_aws" in cmdline and str(state).encode() in cmdline else None


def start(state: Path, region: str, timeout: float = 30.0) -> LocalAwsInfo:
    """A detached server for this VM (its own session: it outlives the caller, as the VM
    does); `stop` ends it."""
    stop(state)
    state.mkdir(parents=True, exist_ok=True)
    with open(state / "local-aws.log", "wb") as log:
        subprocess.run([sys.executable, "-m", "devtools.local_aws", "--state", str(state),
                        "--region", region, "--detach"], cwd=_ROOT, stdin=subprocess.DEVNULL,
                       stdout=log, stderr=subprocess.STDOUT, check=True, timeout=timeout,
                       env={**os.environ, "PYTHONPATH": str(_ROOT)})
    if not wait_until(lambda: running(state) is not None, timeout, interval=0.1):
        tail = (state / "local-aws.log").read_text(errors="replace")[-1500:]
        raise RuntimeError(f"the local AWS endpoints did not start within {timeout:.0f}s:\n{tail}")
    info = running(state)
    assert info is not None
    return info


def stop(state: Path) -> bool:
    info = running(state)
    if info is not None:
        os.kill(info.pid, signal.SIGTERM)
        if not wait_until(lambda: running(state) is None, 10, interval=0.1):
            os.kill(info.pid, signal.SIGKILL)
    info_file(state).unlink(missing_ok=True)
    return info is not None


def client(info: LocalAwsInfo, service: str) -> Any:  # a boto3 client of any service
    return boto3.client(service, endpoint_url=f"http://{HOST}:{info.moto_port}",
                        region_name=info.region, aws_access_key_id="testing",
                        aws_secret_access_key="testing")


def publish(info: LocalAwsInfo, bucket: str, rendered: RenderedBootstrap,
            parameters: dict[str, str]) -> None:
    """What `pulumi up` puts in place before a server boots: the bucket and its artefact, and
    the SSM parameters the server reads (SecureStrings)."""
    s3 = client(info, "s3")
    where = ({} if info.region == "us-east-1" else
             {"CreateBucketConfiguration": {"LocationConstraint": info.region}})
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket=bucket, **where)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_object(Bucket=bucket, Key=artefact_key(rendered.artefact_sha256),
                  Body=rendered.artefact)
    ssm = client(info, "ssm")
    for name, value in sorted(parameters.items()):
        ssm.put_parameter(Name=name, Value=value, Type="SecureString", Overwrite=True)


def publish_bundle(info: LocalAwsInfo, bucket: str, app: str, bundle: Bundle,
                   pointer_parameter: str) -> str:
    """New code as `pulumi up` ships it: a new version of the app's bundle object, then the
    release pointer moved to it. Returns the pointer (sha256@version)."""
    version = client(info, "s3").put_object(Bucket=bucket, Key=naming.bundle_key(app),
                                            Body=bundle.data)["VersionId"]
    pointer = f"{bundle.sha256}@{version}"
    client(info, "ssm").put_parameter(Name=pointer_parameter, Value=pointer, Type="String",
                                      Overwrite=True)
    return pointer


def _publish_endpoint(info: LocalAwsInfo, parameter: str, endpoint: dict[str, object],
                      secret_name: str, secret: dict[str, str] | None) -> str:
    """The secret (its JSON), then the String parameter naming its ARN beside the endpoint, as
    the stack's components leave them; the secret's ARN ("" without one)."""
    arn = ""
    if secret is not None:
        sm = client(info, "secretsmanager")
        with contextlib.suppress(sm.exceptions.ResourceExistsException):
            sm.create_secret(Name=secret_name, SecretString="{}")
        arn = sm.put_secret_value(SecretId=secret_name, SecretString=json.dumps(secret))["ARN"]
    client(info, "ssm").put_parameter(
        Name=parameter, Type="String", Overwrite=True,
        Value=json.dumps({**endpoint, "host": GUEST_HOST, "secret": arn}))
    return arn


def publish_database(info: LocalAwsInfo, cfg: StackConfig, port: int, password: str) -> str:
    """The host's database server on `port` as the stack's RDS instance: its endpoint in
    `naming.database_parameter` and the master user's RDS-style secret
    ({"username", "password"}); the secret's ARN."""
    return _publish_endpoint(
        info, naming.database_parameter(cfg),
        {"engine": cfg.database.engine, "port": port, "name": cfg.database.name},
        f"rds-db-{cfg.prefix}", {"username": cfg.database.user, "password": password})


def publish_cache(info: LocalAwsInfo, cfg: StackConfig, port: int, tls: bool,
                  token: str) -> str:
    """The host's cache server on `port` as the stack's ElastiCache of one node: its endpoint in
    `naming.cache_parameter` and, for valkey, the AUTH token's secret ({"password"}); the
    secret's ARN ("" for memcached)."""
    return _publish_endpoint(
        info, naming.cache_parameter(cfg),
        {"engine": cfg.cache.engine, "port": port, "tls": tls, "nodes": [f"{GUEST_HOST}:{port}"]},
        f"{cfg.prefix}-cache-auth", {"password": token} if cfg.cache.engine == "valkey" else None)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--state", type=Path, required=True)
    parser.add_argument("--region", required=True)
    parser.add_argument("--detach", action="store_true")
    args = parser.parse_args()
    if args.detach:
        if os.fork():  # the caller waits for this parent only; the child serves on
            return 0
        os.setsid()
    serve(args.state, args.region)
    return 0


if __name__ == "__main__":
    sys.exit(main())
