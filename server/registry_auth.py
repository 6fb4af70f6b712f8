#!/usr/bin/python3
"""podman's authfile for pulling one image (appRuntime docker):

    registry-auth IMAGE AUTHFILE

An ECR registry (`<account>.dkr.ecr.<region>.amazonaws.com`): `credHelpers` names ecr-login,
which signs in with the instance role through IMDSv2, so no credential is ever written. With
IMAGE_CREDENTIALS_SECRET (settings.env): that Secrets Manager secret's JSON {"username",
"password"} as the registry's `auths` entry. Else an empty file (a public image). AUTHFILE is
written 0600 (the release script puts it under /run and removes it after the pull); the
credentials never reach argv, a log or this program's output, which names the secret only.
"""

from __future__ import annotations

import base64
import json
import os
import re
import sys

from awsclient import Aws, AwsError, settings

ECR_HOST = re.compile(r"^\d{12}\.dkr\.ecr(-fips)?\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$")


def registry_credentials(aws: Aws, secret: str) -> tuple[str, str]:
    """(username, password) of the secret, or an error naming the secret (never its value)."""
    try:
        text = aws.call("secretsmanager", "secretsmanager.GetSecretValue",
                        {"SecretId": secret})["SecretString"]
    except AwsError as err:
        raise AwsError(f"the registry credentials' secret {secret}: {err}") from None
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not (isinstance(value, dict) and all(isinstance(value.get(k), str) and value[k]
                                            for k in ("username", "password"))):
        raise AwsError(f"the secret {secret} (webstack:appImageCredentialsSecret) is not the "
                       'JSON expected: {"username": "...", "password": "..."}')
    return value["username"], value["password"]


def authfile(image: str, conf: dict[str, str], aws: Aws) -> dict[str, object]:
    host = image.split("/", 1)[0]
    if ECR_HOST.match(host):
        return {"credHelpers": {host: "ecr-login"}}
    secret = conf.get("IMAGE_CREDENTIALS_SECRET", "")
    if not secret:
        return {}
    user, password = registry_credentials(aws, secret)
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"auths": {host: {"auth": token}}}


def main(argv: list[str]) -> int:
    if len(argv) != 2 or "/" not in argv[0]:
        print("usage: registry-auth IMAGE AUTHFILE", file=sys.stderr)
        return 2
    image, out = argv
    conf = settings()
    try:
        data = authfile(image, conf, Aws(conf))
    except AwsError as err:
        print(f"registry-auth: {err}", file=sys.stderr)
        return 1
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        os.fchmod(f.fileno(), 0o600)
        json.dump(data, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
