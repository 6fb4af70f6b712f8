#!/usr/bin/python3
"""AWS for webstack servers (IMDSv2 role credentials, SigV4, retries), in the user-data beside
boot.env, whose endpoints (empty: AWS's) are all a local VM changes. `awsclient.py fetch [--only
DIR]`: the artefact from S3 if its sha256 matches, unpacked (only DIR's: early). The artefact's
programs import it and read settings.env."""

from __future__ import annotations

import datetime
import fcntl
import hashlib
import hmac
import io
import json
import re
import sys
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RETRIED = ("Throttling", "RequestLimitExceeded", "TooManyRequests", "SlowDown", "RequestTimeout")
_OPEN = urllib.request.build_opener(urllib.request.ProxyHandler({})).open


class AwsError(Exception):
    pass


def read_env(path: Path | str) -> dict[str, str]:
    """KEY="value" lines as webstack writes them and sh reads them (backslash escapes)."""
    text = Path(path).read_text(encoding="utf-8")
    return {k: re.sub(r"\\(.)", r"\1", v, flags=re.S) for k, v in re.findall(
        r'^([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"$', text, re.M | re.S)}


def settings(name: str = "settings.env") -> dict[str, str]:
    return read_env(HERE / name)


def send(what: str, req: urllib.request.Request, attempts: int = 5) -> bytes:
    """Network errors, 5xx, 429 and throttling retried (1, 2, 4, 8 s); other 4xx fail at once."""
    last = ""
    for n in range(attempts):
        try:
            with _OPEN(req, timeout=30) as resp:
                return resp.read()
        except urllib.error.HTTPError as err:
            last = f"{what} answered {err.code}: {err.read().decode(errors='replace')[:500]}"
            if err.code < 500 and err.code != 429 and not any(r in last for r in RETRIED):
                raise AwsError(last) from None
        except OSError as err:
            last = f"{what} failed: {getattr(err, 'reason', err)}"
        if n < attempts - 1:
            time.sleep(2**n)
    raise AwsError(f"{last} ({attempts} attempts)")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Aws:
    def __init__(self, conf: dict[str, str]):
        self.region, self.conf = conf["REGION"], conf
        self._creds: list[str] = []

    def endpoint(self, service: str) -> str:
        return (self.conf.get(f"ENDPOINT_{service.upper()}")
                or f"https://{service}.{self.region}.amazonaws.com")

    def creds(self) -> list[str]:
        if not self._creds:
            base = (self.conf.get("ENDPOINT_IMDS") or "http://169.254.169.254") + "/latest/"
            ttl = {"X-aws-ec2-metadata-token-ttl-seconds": "21600"}
            token = send("IMDS token", urllib.request.Request(
                base + "api/token", method="PUT", headers=ttl))
            hdr = {"X-aws-ec2-metadata-token": token.decode()}
            path = base + "meta-data/iam/security-credentials/"
            role = send("IMDS", urllib.request.Request(path, headers=hdr)).decode().split()
            if not role:
                raise AwsError("this server has no instance role")
            got = json.loads(send("IMDS", urllib.request.Request(path + role[0], headers=hdr)))
            self._creds = [got["AccessKeyId"], got["SecretAccessKey"], got["Token"]]
        return self._creds

    def request(self, service: str, method: str, url: str, body: bytes = b"",
                headers: dict[str, str] | None = None) -> bytes:
        key_id, secret, token = self.creds()
        parts = urllib.parse.urlsplit(url)
        now = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
        h = {**(headers or {}), "host": parts.netloc, "x-amz-date": now,
             "x-amz-security-token": token}
        if service == "s3":  # S3 wants the payload's hash as a header too
            h["x-amz-content-sha256"] = sha256_hex(body)
        names = ";".join(sorted(h))
        canonical = "\n".join([method, urllib.parse.quote(parts.path or "/", safe="/~"),
                               parts.query, "".join(f"{k}:{h[k]}\n" for k in sorted(h)), names,
                               sha256_hex(body)])
        scope = f"{now[:8]}/{self.region}/{service}/aws4_request"
        key = ("AWS4" + secret).encode()
        for part in scope.split("/"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        sign = f"AWS4-HMAC-SHA256\n{now}\n{scope}\n{sha256_hex(canonical.encode())}".encode()
        h["authorization"] = (f"AWS4-HMAC-SHA256 Credential={key_id}/{scope}, SignedHeaders="
                              f"{names}, Signature={hmac.new(key, sign, 'sha256').hexdigest()}")
        what = f"{service} {h.get('x-amz-target', method + ' ' + parts.path)}"
        return send(what, urllib.request.Request(url, body or None, h, method=method))

    def call(self, service: str, target: str, payload: dict[str, Any]) -> dict[str, Any]:
        """A JSON-protocol action, e.g. AmazonSSM.GetParameter."""
        h = {"content-type": "application/x-amz-json-1.1", "x-amz-target": target}
        url = self.endpoint(service) + "/"
        return json.loads(self.request(service, "POST", url, json.dumps(payload).encode(), h))

    def s3_get(self, bucket: str, key: str, sha256: str, version: str = "") -> bytes:
        """The object (that version of it), refused unless its sha256 is `sha256`. Path-style:
        the same URL shape locally."""
        where = f"{key}?versionId={urllib.parse.quote(version, safe='')}" if version else key
        data = self.request("s3", "GET", f"{self.endpoint('s3')}/{bucket}/{where}")
        if sha256_hex(data) != sha256:
            raise AwsError(f"s3://{bucket}/{where} has sha256 {sha256_hex(data)}, not {sha256}: "
                           "refused")
        return data


def unpack(data: bytes, root: str, only: str = "") -> int:
    """Plain files at relative paths only, each written whole then renamed, with its mode."""
    count = 0
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        members = tar.getmembers()
        for m in members:  # all checked before the first is written
            if not m.isfile() or m.name.startswith("/") or ".." in m.name.split("/"):
                raise AwsError(f"artefact member {m.name!r} is not a plain relative file")
        for m in members:
            path = Path(f"{root}/{m.name}")
            if only and not str(path).startswith(only.rstrip("/") + "/"):
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.new")
            tmp.write_bytes(tar.extractfile(m).read())  # type: ignore[union-attr]
            tmp.chmod(m.mode)
            tmp.replace(path)
            count += 1
    return count


def fetch(only: str = "") -> str:
    conf = settings("boot.env")
    bucket, key, sha, root = (conf[k] for k in ("ARTEFACT_BUCKET", "ARTEFACT_KEY",
                                                "ARTEFACT_SHA256", "ROOT"))
    with open(HERE / ".fetch.lock", "w") as lock:  # the early fetch and runcmd's: one at a time
        fcntl.flock(lock, fcntl.LOCK_EX)
        count = unpack(Aws(conf).s3_get(bucket, key, sha), root, only)
    return f"fetch: {count} file(s) of artefact {sha[:12]} under {root or '/'}"


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] != ["fetch"] or args[1:2] not in ([], ["--only"]) or len(args) not in (1, 3):
        sys.exit("usage: awsclient.py fetch [--only DIR]")
    try:
        print(fetch(args[2] if args[1:] else ""))
    except (AwsError, OSError, KeyError, ValueError, tarfile.TarError) as err:
        sys.exit(f"awsclient: FAILED: {err}")
