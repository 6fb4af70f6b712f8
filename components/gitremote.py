"""A private app repository's remote: the host and port of an ssh URL (for the host keys it must
be pinned by and the firewall's egress), and the known_hosts lines that pin it. Pure and stdlib
only: config checks the settings with it, the firewall opens the port, the renderer writes the
lines as they were given.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from dataclasses import dataclass

SSH_PORT = 22
# The key types ssh-keyscan prints and OpenSSH 9 accepts as host keys.
HOST_KEY_TYPES = ("ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384",
                  "ecdsa-sha2-nistp521", "ssh-rsa", "sk-ssh-ed25519@openssh.com",
                  "sk-ecdsa-sha2-nistp256@openssh.com")
HOST_KEY_FORM = ("a known_hosts line 'HOST KEYTYPE BASE64KEY' as `ssh-keyscan HOST` prints it "
                 "(HOST: the URL's host, [host]:port with a port other than 22, or its hashed "
                 "form as ssh-keygen -H writes it; KEYTYPE: " + ", ".join(HOST_KEY_TYPES) + ")")
_SSH_URL = re.compile(r"^ssh://[^@/]+@(?P<host>[^:/]+)(:(?P<port>\d+))?(/|$)")
_SCP_URL = re.compile(r"^[^@/:]+@(?P<host>[^:/]+):")
_LINE = re.compile(r"^(?P<hosts>\S+) (?P<type>\S+) (?P<key>[A-Za-z0-9+/]+={0,3})( [ -~]{0,200})?$")


@dataclass(frozen=True)
class SshRemote:
    host: str
    port: int

    @property
    def known_hosts_name(self) -> str:
        """How ssh looks the host up in known_hosts: `[host]:port` off the standard port."""
        return self.host.lower() if self.port == SSH_PORT else f"[{self.host.lower()}]:{self.port}"

    @property
    def keyscan(self) -> str:
        """The command that prints the host's known_hosts lines."""
        return f"ssh-keyscan{'' if self.port == SSH_PORT else f' -p {self.port}'} {self.host}"


def ssh_remote(url: str) -> SshRemote | None:
    """The host and port of an ssh URL (`ssh://user@host[:port]/path`, `user@host:path`); None
    for https:// or "". The URL's form is config's check; this only reads it."""
    match = _SSH_URL.match(url) or _SCP_URL.match(url)
    if match is None:
        return None
    port = match.groupdict().get("port")
    return SshRemote(match["host"], int(port) if port else SSH_PORT)


def _names(hosts: str, name: str) -> bool:
    """Whether a known_hosts line's host field names `name`: plainly or hashed (|1|salt|hash,
    HMAC-SHA1 of the name keyed by the salt, as `ssh-keygen -H` writes it)."""
    for entry in hosts.split(","):
        if entry.startswith("|1|"):
            try:
                salt, digest = (base64.b64decode(p, validate=True)
                                for p in entry[3:].split("|", 1))
            except (binascii.Error, ValueError):
                continue
            if hmac.compare_digest(hmac.new(salt, name.encode(), hashlib.sha1).digest(), digest):
                return True
        elif entry.lower() == name:
            return True
    return False


def host_key_problem(line: str, remote: SshRemote) -> str | None:
    """Why `line` cannot pin `remote`'s host key, or None when it can."""
    match = _LINE.match(line)
    if match is None or match["type"] not in HOST_KEY_TYPES:
        return f"expected {HOST_KEY_FORM}"
    try:
        blob = base64.b64decode(match["key"], validate=True)
    except binascii.Error:
        return f"expected {HOST_KEY_FORM} (the key is not base64)"
    # The key blob starts with its own type as an SSH string: a pasted key of another type, or
    # a truncated one, fails here rather than as "Host key verification failed" on a server.
    size = int.from_bytes(blob[:4], "big")
    if blob[4:4 + size] != match["type"].encode():
        return f"expected {HOST_KEY_FORM} (the key is not a {match['type']} key)"
    if not _names(match["hosts"], remote.known_hosts_name):
        return (f"expected a line for {remote.known_hosts_name}, the host of appRepo "
                f"(`{remote.keyscan}` prints its lines)")
    return None


DEPLOY_KEY_FORM = ("an OpenSSH private key without a passphrase, the whole file from "
                   "-----BEGIN OPENSSH PRIVATE KEY----- to its END line (ssh-keygen -t ed25519 "
                   "-N '' -f deploy_key makes one)")
_KEY_FILE = re.compile(r"^-----BEGIN (?P<kind>OPENSSH|RSA|EC) PRIVATE KEY-----\r?\n"
                       r"(?P<body>[A-Za-z0-9+/=\r\n:, -]+)-----END (?P=kind) PRIVATE KEY-----$")
_OPENSSH_MAGIC = b"openssh-key-v1\x00"


def deploy_key_problem(text: str) -> str | None:
    """Why `text` cannot be the deploy key ssh reads unattended (BatchMode: no passphrase
    prompt), or None when it can. Messages never quote the key."""
    match = _KEY_FILE.match(text.strip())
    if match is None:
        return f"expected {DEPLOY_KEY_FORM}"
    body = match["body"]
    if match["kind"] != "OPENSSH":  # PEM: an encrypted one says so in its headers
        return (f"expected {DEPLOY_KEY_FORM} (this PEM key has a passphrase)"
                if "ENCRYPTED" in body else None)
    try:
        blob = base64.b64decode(re.sub(r"\s", "", body), validate=True)
    except binascii.Error:
        return f"expected {DEPLOY_KEY_FORM} (its body is not base64)"
    if not blob.startswith(_OPENSSH_MAGIC):
        return f"expected {DEPLOY_KEY_FORM} (not an openssh-key-v1 file)"
    rest = blob[len(_OPENSSH_MAGIC):]
    cipher = rest[4:4 + int.from_bytes(rest[:4], "big")]
    if cipher != b"none":
        return (f"expected {DEPLOY_KEY_FORM}: this one has a passphrase, which a server cannot "
                "type (ssh-keygen -p -N '' -f deploy_key removes it)")
    return None
