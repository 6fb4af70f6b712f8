"""Image references: parsed as Docker reads them (hostile ones refused in one line), and tags
resolved to digests against a real registry (Debian's docker-registry) on 127.0.0.1, anonymous
and behind token auth, as Docker Hub, GHCR and ECR put it."""

from __future__ import annotations

import pytest

from components.registry import ImageRef, RegistryError, parse

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
