#!/usr/bin/python3
"""SSM Parameter Store for a webstack server (the instance role's credentials, via awsclient).

    ssm-get --get NAME      print one parameter's (decrypted) value, nothing else
    ssm-get MAPPING OUT     the app's secrets into OUT, mode 0600, as KEY="value" lines that
                            systemd's EnvironmentFile and POSIX sh read the same way: appSecrets
                            (MAPPING: ENV_VAR -> parameter name, JSON), then the database's and
                            the cache's variables when settings.env names their parameters
    ssm-get --put NAME      (letsencrypt) store stdin as the SecureString NAME
Secret values go to a 0600 file (written whole, then renamed) or come from stdin, and are never
printed or put in a command line. Errors exit 1 with AWS's own error document; those about the
database or cache name the parameter or secret, never a value.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import urllib.parse
from dataclasses import dataclass
from typing import Any

from awsclient import Aws, AwsError, settings

DB_VARIABLES = ("DATABASE_URL", "DB_ENGINE", "DB_HOST", "DB_PORT", "DB_NAME", "DB_USER",
                "DB_PASSWORD")
CACHE_VARIABLES = ("CACHE_URL", "CACHE_ENGINE", "CACHE_HOST", "CACHE_PORT", "CACHE_TLS",
                   "CACHE_PASSWORD")
URL_FORM = ("postgres://USER:PASSWORD@HOST:PORT/NAME (or postgresql://, mysql://; user and "
            "password percent-encoded) or RDS's JSON {\"engine\", \"host\", \"port\", "
            "\"username\", \"password\", \"dbname\"}")


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


def get_parameter(aws: Aws, name: str) -> str:
    # GetParameter (singular): the IAM action granted on the parameters servers read one by one
    return aws.call("ssm", "AmazonSSM.GetParameter",
                    {"Name": name, "WithDecryption": True})["Parameter"]["Value"]


def secret_string(aws: Aws, secret: str, what: str) -> str:
    try:
        answer = aws.call("secretsmanager", "secretsmanager.GetSecretValue", {"SecretId": secret})
    except AwsError as err:
        raise AwsError(f"{what}'s secret {secret}: {err}") from None
    return answer["SecretString"]


def json_object(text: str, where: str, expected: str) -> dict[str, Any]:
    """`text` as a JSON object, or an error naming `where` (never the text: it may be secret)."""
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise AwsError(f"{where} is not the JSON expected: {expected}")
    return value


def required(obj: dict[str, Any], key: str, where: str) -> str:
    value = obj.get(key)
    if value is None or value == "" or isinstance(value, dict | list):
        raise AwsError(f"{where} has no {key!r}")
    return str(value)


@dataclass(frozen=True)
class Database:
    engine: str  # postgres | mysql
    host: str
    port: str
    name: str
    user: str
    password: str
    query: str = ""

    def env(self) -> dict[str, str]:
        netloc = f"{q(self.user)}:{q(self.password)}@{host_port(self.host, self.port)}"
        scheme = "postgresql" if self.engine == "postgres" else "mysql"
        url = f"{scheme}://{netloc}/{q(self.name)}" + (f"?{self.query}" if self.query else "")
        return dict(zip(DB_VARIABLES, (url, self.engine, self.host, self.port, self.name,
                                       self.user, self.password), strict=True))


def q(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def host_port(host: str, port: str) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# RDS's force_ssl=1 (the stack's parameter group) refuses connections without TLS
REQUIRE_TLS = {"postgres": "sslmode=require", "mysql": ""}


def engine_of(name: str, where: str) -> str:
    """postgres or mysql from a URL scheme or an RDS secret's engine (mariadb, aurora-mysql...)."""
    if name in ("postgres", "postgresql", "aurora-postgresql"):
        return "postgres"
    if name in ("mysql", "mariadb", "aurora", "aurora-mysql"):
        return "mysql"
    raise AwsError(f"{where} is for a {name!r} database: expected postgres or mysql")


def brought(text: str, secret: str) -> Database:
    """A database the user brings: its secret holds a URL or RDS's JSON."""
    where = f"the database's secret {secret}"
    if text.lstrip().startswith("{"):
        obj = json_object(text, where, URL_FORM)
        engine = engine_of(required(obj, "engine", where), where)
        return Database(engine, required(obj, "host", where), required(obj, "port", where),
                        required(obj, "dbname", where), required(obj, "username", where),
                        required(obj, "password", where), REQUIRE_TLS[engine])
    url = urllib.parse.urlsplit(text.strip())
    try:
        engine = engine_of(url.scheme, where)
        port = str(url.port or (5432 if engine == "postgres" else 3306))
    except ValueError:  # a port that is not a number
        raise AwsError(f"{where} is not a database URL: expected {URL_FORM}") from None
    name = urllib.parse.unquote(url.path.lstrip("/"))
    if not (url.username and url.password and url.hostname and name) or "/" in name:
        raise AwsError(f"{where} is not a database URL with a user, password, host and "
                       f"database name: expected {URL_FORM}")
    return Database(engine, url.hostname, port, name, urllib.parse.unquote(url.username),
                    urllib.parse.unquote(url.password), url.query)


def database_env(aws: Aws, parameter: str) -> dict[str, str]:
    """The database's variables: from the SSM parameter the stack writes (where the database
    is, which secret holds its credentials), then the secret."""
    where = f"the database parameter {parameter}"
    info = json_object(get_parameter(aws, parameter), where,
                       '{"engine", "host", "port", "name", "secret"} or {"url_secret"}')
    if "url_secret" in info:
        secret = required(info, "url_secret", where)
        return brought(secret_string(aws, secret, "the database"), secret).env()
    secret = required(info, "secret", where)
    creds = json_object(secret_string(aws, secret, "the database"),
                        f"the database's secret {secret}", '{"username", "password"}')
    engine = engine_of(required(info, "engine", where), where)
    return Database(engine, required(info, "host", where), required(info, "port", where),
                    required(info, "name", where), required(creds, "username", f"secret {secret}"),
                    required(creds, "password", f"secret {secret}"), REQUIRE_TLS[engine]).env()


def cache_env(aws: Aws, parameter: str) -> dict[str, str]:
    """The cache's variables: memcache://HOST:PORT[,HOST:PORT...], or valkey's redis(s)://:TOKEN@HOST:PORT/0
    with the AUTH token from its secret."""
    where = f"the cache parameter {parameter}"
    info = json_object(get_parameter(aws, parameter), where,
                       '{"engine", "host", "port", "tls", "secret"}')
    engine, host, port = (required(info, k, where) for k in ("engine", "host", "port"))
    tls = "true" if info.get("tls") is True else "false"
    values = {"CACHE_ENGINE": engine, "CACHE_HOST": host, "CACHE_PORT": port, "CACHE_TLS": tls}
    if engine == "memcached":  # every node, when the parameter lists them: the client spreads
        nodes = [n for n in info.get("nodes") or [] if isinstance(n, str) and n]  # keys itself
        return {"CACHE_URL": "memcache://" + (",".join(nodes) or host_port(host, port)),
                **values}
    if engine != "valkey":
        raise AwsError(f"{where} is for a {engine!r} cache: expected memcached or valkey")
    auth = ""
    if info.get("secret"):
        secret = required(info, "secret", where)
        token = required(json_object(secret_string(aws, secret, "the cache"),
                                  f"the cache's secret {secret}", '{"password"}'),
                      "password", f"the cache's secret {secret}")
        values["CACHE_PASSWORD"] = token
        auth = f":{q(token)}@"
    scheme = "rediss" if tls == "true" else "redis"
    return {"CACHE_URL": f"{scheme}://{auth}{host_port(host, port)}/0", **values}


def write_secrets(aws: Aws, mapping_file: str, out: str) -> str:
    with open(mapping_file, encoding="utf-8") as f:
        mapping = json.load(f)
    values = get_parameters(aws, sorted(set(mapping.values())))
    lines = [env_line(k, values[name]) for k, name in sorted(mapping.items())]
    conf = aws.conf
    for setting, variables, read in (("DATABASE_PARAMETER", DB_VARIABLES, database_env),
                                     ("CACHE_PARAMETER", CACHE_VARIABLES, cache_env)):
        if not conf.get(setting):
            continue
        taken = sorted(set(mapping) & set(variables))
        if taken:
            raise AwsError(f"webstack:appSecrets sets {', '.join(taken)}, which the "
                           f"{setting.split('_')[0].lower()}'s variables set: expected other "
                           "names")
        lines += [env_line(k, v) for k, v in read(aws, conf[setting]).items()]
    os.makedirs(os.path.dirname(out), mode=0o700, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(out))
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.writelines(lines)
    os.replace(tmp, out)
    return f"ssm-get: wrote {len(lines)} variable(s) to {out}"


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
            print(get_parameter(aws, args.get))
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
