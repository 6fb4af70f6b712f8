#!/usr/bin/python3
"""SSM Parameter Store for a webstack server (the instance role's credentials, via awsclient).

    ssm-get --get NAME      print one parameter's (decrypted) value, nothing else
    ssm-get MAPPING OUT     (appSecrets) MAPPING: ENV_VAR -> parameter name (JSON), into OUT,
                            mode 0600, as KEY="value" lines that systemd's EnvironmentFile and
                            POSIX sh read the same way
    ssm-get --put NAME      (letsencrypt) store stdin as the SecureString NAME
Secret values go to a 0600 file (written whole, then renamed) or come from stdin, and are never
printed or put in a command line. Errors exit 1 with AWS's own error document.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile

from awsclient import Aws, AwsError, settings


def get_parameters(aws: Aws, names: list[str]) -> dict[str, str]:
    values = {}
    for i in range(0, len(names), 10):
        answer = aws.call("ssm", "AmazonSSM.GetParameters",
                               {"Names": names[i:i + 10], "WithDecryption": True})
        if answer.get("InvalidParameters"):
            raise AwsError("missing SSM parameters: " + ", ".join(answer["InvalidParameters"]))
        values.update({p["Name"]: p["Value"] for p in answer["Parameters"]})
    return values


def env_line(key: str, value: str) -> str:
    return key + '="' + re.sub(r'([\\"$`])', r"\\\1", value) + '"\n'


def write_secrets(aws: Aws, mapping_file: str, out: str) -> str:
    with open(mapping_file, encoding="utf-8") as f:
        mapping = json.load(f)
    values = get_parameters(aws, sorted(set(mapping.values())))
    os.makedirs(os.path.dirname(out), mode=0o700, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(out))
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.writelines(env_line(k, values[name]) for k, name in sorted(mapping.items()))
    os.replace(tmp, out)
    return f"ssm-get: wrote {len(mapping)} variable(s) to {out}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--get", metavar="NAME")
    mode.add_argument("--put", metavar="NAME")
    parser.add_argument("files", nargs="*", metavar="MAPPING OUT")
    args = parser.parse_args(argv)
    if (len(args.files) == 2) == bool(args.get or args.put):
        parser.error("give one of --get NAME, --put NAME or MAPPING OUT")
    conf = settings()
    aws = Aws(conf)
    try:
        if args.get:
            # GetParameter (singular): the IAM action granted on the release ref and the TLS slot
            answer = aws.call("ssm", "AmazonSSM.GetParameter",
                                   {"Name": args.get, "WithDecryption": True})
            print(answer["Parameter"]["Value"])
        elif args.put:
            aws.call("ssm", "AmazonSSM.PutParameter",
                          {"Name": args.put, "Value": sys.stdin.read(), "Type": "SecureString",
                           "Tier": conf["TLS_TIER"], "Overwrite": True})
        else:
            print(write_secrets(aws, *args.files))
    except AwsError as err:
        print(f"ssm-get: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
