"""Print a new AUTH token for a valkey cache, nothing else: 64 characters of A-Z a-z 0-9 - _
(ElastiCache accepts 16-128 printable characters other than space, " / @), from the operating
system's random source. Run once per cache by its `<name>-cache-token` command, whose output
Pulumi keeps as a secret and never logs."""

from __future__ import annotations

import secrets

TOKEN_BYTES = 48  # 64 characters in URL-safe base64


def token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


if __name__ == "__main__":
    print(token())
