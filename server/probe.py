#!/usr/bin/python3
"""Health probe and log redaction for the release script (standard library only).

    probe get URL [--unix SOCKET] [--wait S] [--pid PID] [--redact ENVFILE ...]
        GET URL (over SOCKET when given: the candidate server), retrying refused connections
        for up to S seconds (and only while PID lives). The first answer decides: exit 0 on
        200; otherwise one line "GET <path> answered <status>: <body>" and exit 1.
    probe redact [--redact ENVFILE ...] < text
        stdin to stdout with every value of the env files replaced by ***.
Secret values never reach the release's messages: every body or log excerpt passes redact().
"""

from __future__ import annotations

import argparse
import http.client
import os
import socket
import ssl
import sys
import time
import urllib.parse

from awsclient import read_env, settings

# What ssm-get writes beside the secrets when settings.env names the database's or the cache's
# parameter (it then refuses appSecrets of these names): where they are, no secret, and words as
# common as "app", "5432" or "true", which masking would garble every message with.
PUBLIC = {"DATABASE_PARAMETER": ("DB_ENGINE", "DB_HOST", "DB_PORT", "DB_NAME", "DB_USER"),
          "CACHE_PARAMETER": ("CACHE_ENGINE", "CACHE_HOST", "CACHE_PORT", "CACHE_TLS")}


def secret_values(env_files, conf):
    """The secret values of KEY="value" EnvironmentFiles (as webstack writes them), with a URL's
    password as the URL spells it, longest first."""
    public = {key for setting, keys in PUBLIC.items() if conf.get(setting) for key in keys}
    values = set()
    for path in env_files:
        try:
            found = read_env(path)
        except FileNotFoundError:
            continue
        for key, value in found.items():
            if key in public:
                continue
            values.update(v for v in [value, *value.splitlines()] if len(v.strip()) >= 3)
            try:
                password = urllib.parse.urlsplit(value).password if "://" in value else None
            except ValueError:
                password = None
            if password and len(password) >= 3:
                values.add(password)
    return sorted(values, key=len, reverse=True)


def redact(text, values):
    for value in values:
        text = text.replace(value, "***")
    return text


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def get(url, unix, timeout):
    parts = urllib.parse.urlsplit(url)
    if unix:
        conn = UnixConnection(unix, timeout)
    elif parts.scheme == "https":  # the certificate may be the self-signed placeholder
        conn = http.client.HTTPSConnection(parts.hostname, parts.port, timeout=timeout,
                                           context=ssl._create_unverified_context())
    else:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.request("GET", parts.path or "/", headers={"User-Agent": "webstack-release"})
        resp = conn.getresponse()
        return resp.status, resp.read(2000)
    finally:
        conn.close()


def main():
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("action", choices=["get", "redact"])
    parser.add_argument("url", nargs="?")
    parser.add_argument("--unix")
    parser.add_argument("--wait", type=float, default=60)
    conf = settings()
    parser.add_argument("--timeout", type=float, default=float(conf["PROBE_TIMEOUT"]))
    parser.add_argument("--pid", type=int)
    parser.add_argument("--redact", action="append", default=[])
    args = parser.parse_args()
    values = secret_values(args.redact, conf)
    if args.action == "redact":
        sys.stdout.write(redact(sys.stdin.read(), values))
        return 0
    path = urllib.parse.urlsplit(args.url).path
    deadline = time.monotonic() + args.wait
    while True:
        try:
            status, body = get(args.url, args.unix, args.timeout)
            break
        except OSError as err:  # refused, no socket yet, timed out: not an answer
            if args.pid and not alive(args.pid):
                print(f"the server exited before answering GET {path}")
                return 1
            if time.monotonic() > deadline:
                print(f"GET {path} got no answer within {args.wait:.0f} s ({err})")
                return 1
            time.sleep(0.2)
    if status == 200:
        return 0
    text = " ".join(body.decode("utf-8", "replace").split())
    print(redact(f"GET {path} answered {status}: {text[:300]!r}", values))
    return 1


if __name__ == "__main__":
    sys.exit(main())
