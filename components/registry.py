"""Container image references: parsed by the distribution reference grammar, tags resolved to
digests through the Registry HTTP API v2.

The release pointer of a container app names its image by digest, so every server runs exactly
the image that was planned, whatever a tag points to later. Standard library only: the program
resolves references at plan time and must not need a Docker daemon for it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Collection
from dataclasses import dataclass
from email.message import Message
from pathlib import Path

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
# The hosts a Docker client names Docker Hub by, in references and in config.json's `auths`.
_HUB_ALIASES = frozenset({DOCKER_HUB, "index.docker.io", DOCKER_HUB_API})
LOOPBACK = frozenset({"localhost", "127.0.0.1", "[::1]"})
MANIFEST_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
MAX_MANIFEST = 4 * 1024 * 1024  # what distribution itself accepts for a manifest
PIN_HINT = "pin it by digest: appImage: host/name@sha256:<64 hex>"

# github.com/distribution/reference's grammar (reference.go), ASCII only.
_ALNUM = r"[a-z0-9]+"
_COMPONENT = rf"{_ALNUM}(?:(?:[._]|__|-+){_ALNUM})*"
_PATH = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*", re.ASCII)
_LABEL = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = re.compile(rf"(?:{_LABEL}(?:\.{_LABEL})*|\[[0-9a-fA-F:]+\])(?::([0-9]+))?", re.ASCII)
_TAG = re.compile(r"[\w][\w.-]{0,127}", re.ASCII)
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}", re.ASCII)
_NAME_MAX = 255
_CHALLENGE = re.compile(r'(\w+)="([^"]*)"')


class RegistryError(ValueError):
    """A reference that is not valid, or that its registry does not resolve: one line."""


@dataclass(frozen=True)
class ImageRef:
    host: str  # registry host[:port]; docker.io for Docker Hub
    name: str  # repository path, lowercase (library/x for Hub's official images)
    tag: str = ""  # "" with neither tag nor digest: latest, as Docker reads it
    digest: str = ""  # sha256:<64 hex> or ""

    @property
    def repository(self) -> str:
        return f"{self.host}/{self.name}"

    def pinned(self, digest: str) -> str:
        """The pointer form: `host[:port]/name@sha256:<hex>`, the only one servers pull."""
        return f"{self.repository}@{digest}"

    def __str__(self) -> str:
        return self.repository + (f":{self.tag}" if self.tag else "") + (
            f"@{self.digest}" if self.digest else "")


def _bad(reference: str, why: str) -> RegistryError:
    return RegistryError(f"image {reference!r}: {why}")


def parse(reference: str) -> ImageRef:
    """`reference` as Docker reads it (`nginx` is docker.io/library/nginx), validated.

    RegistryError names what is wrong and the form expected.
    """
    form = "expected [host[:port]/]name[:tag][@sha256:<64 hex>], lowercase name"
    if not reference or reference != reference.strip() or len(reference) > 1024:
        raise _bad(reference, form)
    rest, digest = reference, ""
    if "@" in reference:
        rest, digest = reference.rsplit("@", 1)
        if not _DIGEST.fullmatch(digest):
            raise _bad(reference, "a digest is sha256:<64 lowercase hex> (other algorithms "
                                  "are not accepted)")
    tag = ""
    slash = rest.rfind("/")
    if rest.rfind(":") > slash:
        rest, tag = rest.rsplit(":", 1)
        if not _TAG.fullmatch(tag):
            raise _bad(reference, f"tag {tag!r}: expected [A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}}")
    first, _, path = rest.partition("/")
    # Docker's rule: the first component is a registry when it looks like a host name.
    if path and (any(c in first for c in ".:") or first == "localhost" or first != first.lower()):
        host = first
        match = _DOMAIN.fullmatch(host)
        if not match or (match.group(1) and not 0 < int(match.group(1)) < 65536):
            raise _bad(reference, f"registry {host!r}: expected host[:port]")
    else:
        host, path = DOCKER_HUB, rest
    if host in _HUB_ALIASES:
        host = DOCKER_HUB
        path = path if "/" in path else f"library/{path}"
    if path != path.lower() and _PATH.fullmatch(path.lower()):
        raise _bad(reference, "repository names are lowercase")
    if not _PATH.fullmatch(path):
        raise _bad(reference, form)
    if len(f"{host}/{path}") > _NAME_MAX:
        raise _bad(reference, f"a name is at most {_NAME_MAX} characters")
    return ImageRef(host, path, tag, digest)


def pinned(text: str) -> bool:
    """`text` is a release pointer of appRuntime docker: an image by digest, in the form
    `ImageRef.pinned` writes (what the rollout and the servers accept)."""
    try:
        ref = parse(text)
    except RegistryError:
        return False
    return bool(ref.digest) and not ref.tag and text == ref.pinned(ref.digest)


def _docker_config() -> dict:
    """The user's Docker client config ($DOCKER_CONFIG/config.json, else ~/.docker/)."""
    path = Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker") / "config.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise RegistryError(f"{path}: not readable as JSON ({e})") from None
    return data if isinstance(data, dict) else {}


def _config_host(key: str) -> str:
    """A config.json `auths` key (`ghcr.io`, `https://index.docker.io/v1/`) as a host."""
    host = urllib.parse.urlsplit(key).netloc if "://" in key else key.split("/", 1)[0]
    return DOCKER_HUB if host in _HUB_ALIASES else host


@dataclass(frozen=True)
class _Credentials:
    basic: str  # base64(user:password), "" when config.json has none for the host
    helper: str  # why there may be credentials we do not read ("" when none)


def _credentials(host: str) -> _Credentials:
    config = _docker_config()
    for key, entry in (config.get("auths") or {}).items():
        if _config_host(key) == host and isinstance(entry, dict) and entry.get("auth"):
            return _Credentials(str(entry["auth"]), "")
    helpers = {_config_host(k) for k in config.get("credHelpers") or {}}
    helper = ("credHelpers" if host in helpers else
              "credsStore" if config.get("credsStore") else "")
    return _Credentials("", helper)


@dataclass(frozen=True)
class _Answer:
    status: int
    headers: Message
    body: bytes  # at most MAX_MANIFEST + 1 bytes


class _Http:
    """Requests to one registry: its scheme, the proxy rule and the credentials in use."""

    def __init__(self, ref: ImageRef, reference: str, timeout: float,
                 insecure: Collection[str]) -> None:
        self.ref, self.reference, self.timeout = ref, reference, timeout
        self.plain = re.sub(r":[0-9]+$", "", ref.host) in LOOPBACK or ref.host in insecure
        api = DOCKER_HUB_API if ref.host == DOCKER_HUB else ref.host
        self.base = f"{'http' if self.plain else 'https'}://{api}/v2/{ref.name}"
        loopback = urllib.parse.urlsplit(self.base).hostname in {"localhost", "127.0.0.1", "::1"}
        handlers = [urllib.request.ProxyHandler({})] if loopback else []
        self.open = urllib.request.build_opener(*handlers).open
        self.credentials = _credentials(ref.host)

    def fail(self, why: str) -> RegistryError:
        return _bad(self.reference, why)

    def request(self, method: str, url: str, headers: dict[str, str],
                authorization: str = "") -> _Answer:
        request = urllib.request.Request(url, method=method, headers=headers)
        if authorization:  # never carried over a redirect to another host
            request.add_unredirected_header("Authorization", authorization)
        try:
            with self.open(request, timeout=self.timeout) as answer:
                return _Answer(answer.status, answer.headers, answer.read(MAX_MANIFEST + 1))
        except urllib.error.HTTPError as e:
            with e:
                return _Answer(e.code, e.headers, b"")
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise self.fail(f"registry {self.ref.host} not reachable at {url} ({reason}); "
                            f"{PIN_HINT}") from None

    def token(self, challenge: str) -> str:
        """The Bearer token a `WWW-Authenticate: Bearer realm=...` challenge asks for."""
        params = dict(_CHALLENGE.findall(challenge))
        realm = params.pop("realm", "")
        parts = urllib.parse.urlsplit(realm)
        if parts.scheme != "https" and not (parts.scheme == "http" and self.plain):
            raise self.fail(f"the registry's token service {realm!r} is not https")
        params.setdefault("scope", f"repository:{self.ref.name}:pull")
        query = urllib.parse.urlencode({k: params[k] for k in ("service", "scope") if k in params})
        basic = f"Basic {self.credentials.basic}" if self.credentials.basic else ""
        answer = self.request("GET", f"{realm}?{query}", {"Accept": "application/json"}, basic)
        if answer.status != 200:
            raise self.denied(answer.status, "token service")
        try:
            body = json.loads(answer.body)
            return str(body.get("token") or body["access_token"])
        except (ValueError, KeyError, AttributeError):
            raise self.fail(f"the token service {realm} gave no token") from None

    def head(self, url: str, headers: dict[str, str],
             authorization: str) -> tuple[int, str, str]:
        """The manifest's status, auth challenge and Docker-Content-Digest."""
        answer = self.request("HEAD", url, headers, authorization)
        return (answer.status, answer.headers.get("WWW-Authenticate", ""),
                answer.headers.get("Docker-Content-Digest", ""))

    def authorization(self, challenge: str) -> str:
        """The Authorization a 401's challenge asks for: a Bearer token, or config.json's
        Basic credentials."""
        scheme = challenge.split(" ", 1)[0].lower()
        if scheme == "bearer":
            return f"Bearer {self.token(challenge)}"
        if scheme == "basic" and self.credentials.basic:
            return f"Basic {self.credentials.basic}"
        raise self.denied(401, "registry")

    def denied(self, status: int, what: str) -> RegistryError:
        if self.credentials.basic:
            return self.fail(f"the {what} of {self.ref.host} refused the credentials of "
                             f"config.json (HTTP {status}): `docker login {self.ref.host}` again")
        where = (f"; they are in a credential helper ({self.credentials.helper}), which webstack "
                 "does not run: put an `auth` entry in config.json's auths, or " + PIN_HINT
                 if self.credentials.helper else f": `docker login {self.ref.host}`, or {PIN_HINT}")
        return self.fail(f"{self.ref.host} wants credentials (HTTP {status}) and "
                         f"config.json has none for it{where}")


def resolve(reference: str, *, timeout: float = 20.0,
            insecure: Collection[str] = frozenset()) -> str:
    """`reference` pinned: `host[:port]/name@sha256:<digest>` of what its tag names now.

    A reference with a digest is returned in that form without a request. Plain HTTP only for
    loopback hosts and the hosts in `insecure`; Basic credentials come from config.json's
    `auths` (credential helpers are not run). RegistryError: one line, what to do.
    """
    ref = parse(reference)
    if ref.digest:
        return ref.pinned(ref.digest)
    http = _Http(ref, reference, timeout, insecure)
    url = f"{http.base}/manifests/{ref.tag or 'latest'}"
    headers = {"Accept": ", ".join(MANIFEST_TYPES)}
    status, challenge, digest = http.head(url, headers, "")
    authorization = ""
    if status == 401 and challenge:  # anonymous first, then what the challenge asks for
        authorization = http.authorization(challenge)
        status, _, digest = http.head(url, headers, authorization)
    if status in (401, 403):
        raise http.denied(status, "registry")
    if status == 404:
        raise http.fail(f"{ref.repository} has no tag {ref.tag or 'latest'!r} (HTTP 404): "
                        f"push it, or {PIN_HINT}")
    if status == 200 and _DIGEST.fullmatch(digest):
        return ref.pinned(digest)
    # No digest header (optional in the API) or no HEAD at all: the manifest's own sha256.
    answer = http.request("GET", url, headers, authorization)
    if answer.status != 200:
        raise http.fail(f"{ref.host} answered HTTP {answer.status} for the manifest; {PIN_HINT}")
    if len(answer.body) > MAX_MANIFEST:
        raise http.fail(f"the manifest is over {MAX_MANIFEST} bytes")
    return ref.pinned(f"sha256:{hashlib.sha256(answer.body).hexdigest()}")
