"""Image references: parsed as Docker reads them (hostile ones refused in one line), and tags
resolved to digests against a real registry (Debian's docker-registry) on 127.0.0.1, anonymous
and behind token auth, as Docker Hub, GHCR and ECR put it."""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import secrets
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from components.registry import ImageRef, RegistryError, parse, resolve
from devtools import oci
from devtools.registry import Registry, local_registry

HEX = "0123456789abcdef" * 4
DIGEST = f"sha256:{HEX}"


@pytest.mark.parametrize(("reference", "expected"), [
    ("nginx", ImageRef("docker.io", "library/nginx")),
    ("nginx:1.27", ImageRef("docker.io", "library/nginx", "1.27")),
    ("library/python:3.12-slim", ImageRef("docker.io", "library/python", "3.12-slim")),
    ("acme/app", ImageRef("docker.io", "acme/app")),
    ("index.docker.io/nginx", ImageRef("docker.io", "library/nginx")),
    ("ghcr.io/o/n:tag", ImageRef("ghcr.io", "o/n", "tag")),
    ("host:5000/n", ImageRef("host:5000", "n")),
    ("localhost/team/app:v2", ImageRef("localhost", "team/app", "v2")),
    ("127.0.0.1:5000/a.b__c-d/e", ImageRef("127.0.0.1:5000", "a.b__c-d/e")),
    ("[::1]:5000/app", ImageRef("[::1]:5000", "app")),
    ("123456789012.dkr.ecr.us-east-1.amazonaws.com/web@" + DIGEST,
     ImageRef("123456789012.dkr.ecr.us-east-1.amazonaws.com", "web", "", DIGEST)),
    ("ghcr.io/o/n:v1@" + DIGEST, ImageRef("ghcr.io", "o/n", "v1", DIGEST)),
])
def test_references_parse_as_docker_reads_them(reference: str, expected: ImageRef) -> None:
    assert parse(reference) == expected
    assert parse(str(expected)) == expected  # the canonical form reads back the same


@pytest.mark.parametrize(("reference", "why"), [
    ("", "expected [host[:port]/]name"),
    (" nginx", "expected [host[:port]/]name"),
    ("nginx\n", "expected [host[:port]/]name"),
    ("ghcr.io/Owner/app", "lowercase"),
    ("nginx:latest; rm -rf /", "tag"),
    ("nginx:$(id)", "tag"),
    ("ghcr.io/o/n:" + "x" * 129, "tag"),
    ("-rf", "expected [host[:port]/]name"),
    ("ghcr.io/../etc", "expected [host[:port]/]name"),
    ("ghcr.io//n", "expected [host[:port]/]name"),
    ("https://ghcr.io/o/n", "registry"),
    ("host:0/n", "registry"),
    ("host:65536/n", "registry"),
    ("-host.io/n", "registry"),
    ("ghcr.io/o/n@sha256:abc", "sha256:<64 lowercase hex>"),
    ("ghcr.io/o/n@sha256:" + HEX.upper(), "sha256:<64 lowercase hex>"),
    ("ghcr.io/o/n@sha512:" + HEX * 2, "other algorithms"),
    ("ghcr.io/o/n\u00e9", "expected [host[:port]/]name"),
    ("ghcr.io/" + "a/" * 130 + "b", "at most 255"),
])
def test_hostile_or_malformed_references_are_refused_in_one_line(reference: str,
                                                                   why: str) -> None:
    with pytest.raises(RegistryError) as caught:
        parse(reference)
    message = str(caught.value)
    assert why in message and repr(reference) in message and "\n" not in message.replace(
        repr(reference), "")
    assert isinstance(caught.value, ValueError)


# --- resolving against a real registry on loopback -------------------------------------------

def tiny_image(tmp: Path, version: str) -> oci.Image:
    """A one-layer image: the registry stores and names it like any other."""
    return oci.image((oci.app_layer({"VERSION": version.encode()}, tmp),))


@pytest.fixture(scope="module")
def anonymous(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    with local_registry(tmp_path_factory.mktemp("registry")) as registry:
        yield registry


@pytest.fixture
def no_docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty DOCKER_CONFIG: the user's own ~/.docker never leaks into a test."""
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    (tmp_path / "docker").mkdir()
    return tmp_path / "docker"


@pytest.mark.realtools
def test_a_tag_resolves_to_the_digest_the_registry_stored_and_follows_a_moved_tag(
        anonymous: Registry, tmp_path: Path, no_docker_config: Path) -> None:
    first = oci.push(anonymous.url, "team/app", "v1", tiny_image(tmp_path, "1"))
    assert resolve(f"{anonymous.host}/team/app:v1") == f"{anonymous.host}/team/app@{first}"
    second = oci.push(anonymous.url, "team/app", "v1", tiny_image(tmp_path, "2"))
    assert second != first
    assert resolve(f"{anonymous.host}/team/app:v1") == f"{anonymous.host}/team/app@{second}"
    # `localhost` is plain HTTP too; no tag means latest
    oci.push(anonymous.url, "team/app", "latest", tiny_image(tmp_path, "1"))
    local = f"localhost:{anonymous.port}/team/app"
    assert resolve(local) == f"{local}@{first}"
    # a digest is returned as is, without asking (the registry need not even have it)
    pinned = f"{anonymous.host}/team/app@sha256:{HEX}"
    assert resolve(f"{anonymous.host}/team/app:v1@sha256:{HEX}") == pinned


@pytest.mark.realtools
def test_what_the_registry_cannot_resolve_is_one_line_saying_what_to_do(
        anonymous: Registry, tmp_path: Path, no_docker_config: Path) -> None:
    with pytest.raises(RegistryError, match=r"has no tag 'v9' \(HTTP 404\): push it, or pin it "
                                            r"by digest: appImage: host/name@sha256:"):
        resolve(f"{anonymous.host}/team/none:v9")
    with local_registry(tmp_path / "gone") as gone:
        host = gone.host
    with pytest.raises(RegistryError, match=f"registry {host} not reachable at http://{host}/v2/"):
        resolve(f"{host}/app:v1", timeout=5)


@pytest.mark.realtools
def test_only_loopback_names_or_hosts_said_insecure_get_plain_http(
        tmp_path: Path, no_docker_config: Path) -> None:
    with local_registry(tmp_path / "r", address="127.0.0.2") as other:
        digest = oci.push(other.url, "app", "v1", tiny_image(tmp_path, "1"))
        with pytest.raises(RegistryError, match=f"not reachable at https://{other.host}/v2/app/"):
            resolve(f"{other.host}/app:v1", timeout=5)
        said_insecure = resolve(f"{other.host}/app:v1", insecure={other.host})
        assert said_insecure == f"{other.host}/app@{digest}"


# --- token auth: the registry trusts a token service, as Docker Hub, GHCR and ECR do ----------

USER, PASSWORD = "ci-bot", "s3cret-pass"
SERVICE, ISSUER = "test-registry", "test-token-issuer"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class TokenService:
    """A token service as the distribution spec has it: Basic credentials in, a JWT signed by
    the key whose certificate the registry trusts out, granting the scope asked for."""
    key: rsa.RSAPrivateKey
    cert: x509.Certificate
    port: int = 0
    asked: list[str] = field(default_factory=list)

    def token(self, scope: str) -> str:
        _, name, actions = scope.split(":")
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256",
                  "x5c": [base64.b64encode(self.cert.public_bytes(Encoding.DER)).decode()]}
        claims = {"iss": ISSUER, "sub": USER, "aud": SERVICE, "iat": now, "nbf": now - 60,
                  "exp": now + 300, "jti": secrets.token_hex(8),
                  "access": [{"type": "repository", "name": name,
                              "actions": actions.split(",")}]}
        signing = ".".join(_b64url(json.dumps(p).encode()) for p in (header, claims))
        signature = self.key.sign(signing.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing}.{_b64url(signature)}"

    def handler(self) -> type[BaseHTTPRequestHandler]:
        service = self
        good = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                service.asked.append(self.headers.get("Authorization", ""))
                if self.headers.get("Authorization") != good or query.get("service") != [SERVICE]:
                    self.send_response(401)
                    self.end_headers()
                    return
                body = json.dumps({"token": service.token(query["scope"][0])}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler


def _self_signed() -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ISSUER)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return key, cert


@pytest.fixture(scope="module")
def token_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Registry,
                                                                            TokenService]]:
    root = tmp_path_factory.mktemp("token-registry")
    service = TokenService(*_self_signed())
    (root / "issuer.pem").write_bytes(service.cert.public_bytes(Encoding.PEM))
    server = ThreadingHTTPServer(("127.0.0.1", 0), service.handler())
    service.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    auth = {"token": {"realm": f"http://127.0.0.1:{service.port}/token", "service": SERVICE,
                      "issuer": ISSUER, "rootcertbundle": str(root / "issuer.pem")}}
    try:
        with local_registry(root, auth=auth) as registry:
            yield registry, service
    finally:
        server.shutdown()
        server.server_close()


def docker_login(config_dir: Path, host: str, password: str) -> None:
    """What `docker login` leaves in config.json without a credential store."""
    auth = base64.b64encode(f"{USER}:{password}".encode()).decode()
    (config_dir / "config.json").write_text(json.dumps({"auths": {host: {"auth": auth}}}))


@pytest.mark.realtools
def test_a_private_registry_is_resolved_with_a_token_from_config_json_credentials(
        token_registry: tuple[Registry, TokenService], tmp_path: Path,
        no_docker_config: Path) -> None:
    registry, service = token_registry
    push_token = service.token("repository:private/app:pull,push")
    with pytest.raises(RuntimeError, match="HTTP 401"):  # the registry does want a token
        oci.push(registry.url, "private/app", "v1", tiny_image(tmp_path, "1"))
    digest = oci.push(registry.url, "private/app", "v1", tiny_image(tmp_path, "1"),
                      {"Authorization": f"Bearer {push_token}"})
    docker_login(no_docker_config, f"http://{registry.host}", PASSWORD)
    service.asked.clear()
    assert resolve(f"{registry.host}/private/app:v1") == f"{registry.host}/private/app@{digest}"
    assert service.asked == ["Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()]


@pytest.mark.realtools
@pytest.mark.parametrize(("config", "expected"), [
    (None, r"wants credentials \(HTTP 401\) and config.json has none for it: `docker login "
           r"127.0.0.1:\d+`, or pin it by digest"),
    ({"credsStore": "desktop"}, r"they are in a credential helper \(credsStore\), which "
                                r"webstack does not run: put an `auth` entry"),
    ({"credHelpers": {"HOST": "ecr-login"}}, r"credential helper \(credHelpers\)"),
    ("wrong-password", r"the token service of 127.0.0.1:\d+ refused the credentials of "
                       r"config.json \(HTTP 401\): `docker login 127.0.0.1:\d+` again"),
])
def test_missing_or_wrong_credentials_say_where_webstack_looked(
        token_registry: tuple[Registry, TokenService], no_docker_config: Path,
        config: dict[str, object] | str | None, expected: str) -> None:
    registry, _ = token_registry
    if config == "wrong-password":
        docker_login(no_docker_config, registry.host, "not-it")
    elif isinstance(config, dict):
        text = json.dumps(config).replace("HOST", registry.host)
        (no_docker_config / "config.json").write_text(text)
    with pytest.raises(RegistryError, match=expected) as caught:
        resolve(f"{registry.host}/private/app:v1")
    assert "not-it" not in str(caught.value) and "\n" not in str(caught.value)


class _BasicNoHeadRegistry(BaseHTTPRequestHandler):
    """A registry as some are: Basic auth, no HEAD (405), no Docker-Content-Digest header."""
    manifest = json.dumps({"schemaVersion": 2, "layers": []}).encode()
    seen: list[tuple[str, str, str]] = []  # method, Accept, Authorization

    def _answer(self) -> None:
        auth = self.headers.get("Authorization", "")
        self.seen.append((self.command, self.headers.get("Accept", ""), auth))
        if auth != "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode():
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="registry"')
            self.end_headers()
        elif self.command == "HEAD":
            self.send_response(405)
            self.end_headers()
        else:
            self.send_response(200)
            self.send_header("Content-Length", str(len(self.manifest)))
            self.end_headers()
            self.wfile.write(self.manifest)

    do_GET = do_HEAD = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_basic_auth_and_a_registry_without_head_or_digest_header(no_docker_config: Path) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _BasicNoHeadRegistry)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host = f"127.0.0.1:{server.server_address[1]}"
    try:
        with pytest.raises(RegistryError, match="wants credentials"):
            resolve(f"{host}/app:v1")
        docker_login(no_docker_config, host, PASSWORD)
        expected = hashlib.sha256(_BasicNoHeadRegistry.manifest).hexdigest()
        assert resolve(f"{host}/app:v1") == f"{host}/app@sha256:{expected}"
    finally:
        server.shutdown()
        server.server_close()
    methods = [(method, bool(auth)) for method, _, auth in _BasicNoHeadRegistry.seen]
    assert methods == [("HEAD", False), ("HEAD", False), ("HEAD", True), ("GET", True)]
    accept = _BasicNoHeadRegistry.seen[-1][1]
    assert "application/vnd.oci.image.index.v1+json" in accept
    assert "application/vnd.docker.distribution.manifest.v2+json" in accept
