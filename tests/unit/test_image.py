"""appRuntime docker under mocks: the ECR repository and its lifecycle, the build, the image by
digest as the release pointer, and the instance role pulling exactly that repository."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from components import bootstrap, bundle, image, naming
from components.config import ConfigError
from components.instance_role import PULL_ACTIONS
from devtools import oci
from devtools.mockrun import ACCOUNT_ID, MOCK_ECR_PASSWORD, MockRun, run_program, stack_config
from devtools.motoserver import free_port
from devtools.registry import local_registry
from tests import variants

REPOSITORY = "aws:ecr/repository:Repository"
LIFECYCLE = "aws:ecr/lifecyclePolicy:LifecyclePolicy"
BUILD = "docker-build:index:Image"
POLICY = "aws:iam/rolePolicy:RolePolicy"
PARAMETER = "aws:ssm/parameter:Parameter"
CONTAINERS = ("docker-build", "docker-image", "docker-ecr")


@pytest.fixture(scope="module")
def runs(planned, aws_env_module) -> dict[str, MockRun]:
    return planned


def _policies(run: MockRun) -> dict[str, dict]:
    return {r.name: json.loads(r.inputs["policy"]) for r in run.of_type(POLICY)}


def _pointer(run: MockRun) -> str:
    ref = next(r for r in run.of_type(PARAMETER) if r.inputs["name"].endswith("release-ref"))
    return ref.inputs["insecureValue"]


@pytest.mark.parametrize("key", variants.NAMES)
def test_only_a_build_makes_a_repository_and_only_a_container_pulls(runs, key):
    run, cfg = runs[key], variants.cfg(key)
    assert len(run.of_type(REPOSITORY)) == len(run.of_type(BUILD)) == \
        len(run.of_type(LIFECYCLE)) == (1 if cfg.app.builds_image else 0)
    pulls = [p for name, p in _policies(run).items() if name.endswith("-images")]
    assert len(pulls) == (1 if image.pulled_repository(cfg, ACCOUNT_ID) else 0)
    if cfg.app.container:
        assert "appImage" in run.outputs and "@sha256:" in run.outputs["appImage"]
        assert _pointer(run) == run.outputs["appImage"]
        # no code bundle goes to S3: the image is the code
        assert not [r for r in run.of_type("aws:s3/bucketObjectv2:BucketObjectv2")
                    if r.inputs["key"] == naming.bundle_key(cfg.app.name)]
    else:
        assert "appImage" not in run.outputs


def test_the_repository_scans_keeps_n_images_and_never_moves_a_tag(runs):
    run, cfg = runs["docker-build"], variants.cfg("docker-build")
    repo = run.one(REPOSITORY).inputs
    assert repo["name"] == naming.image_repository(cfg) == "hello-dev"
    assert repo["imageTagMutability"] == "IMMUTABLE"
    assert repo["imageScanningConfiguration"] == {"scanOnPush": True}
    assert repo["encryptionConfigurations"] == [{"encryptionType": "AES256"}]
    # images are rebuilt from code, not data: a destroy removes them instead of failing halfway
    assert repo["forceDelete"] is True
    rules = json.loads(run.one(LIFECYCLE).inputs["policy"])["rules"]
    kept = [r for r in rules if r["selection"]["tagStatus"] == "any"]
    assert [r["selection"]["countNumber"] for r in kept] == [cfg.app.images_kept] == [10]
    assert all(r["action"]["type"] == "expire" for r in rules)


def test_the_build_pushes_the_context_for_the_servers_arch_under_its_content_hash(runs):
    run, cfg = runs["docker-build"], variants.cfg("docker-build")
    build = run.one(BUILD).inputs
    url = f"{ACCOUNT_ID}.dkr.ecr.us-east-1.amazonaws.com/hello-dev"
    code = bundle.of_app(cfg.app)
    assert build["push"] is True and build["platforms"] == ["linux/amd64"]
    assert build["context"] == {"location": cfg.app.source}
    assert build["dockerfile"] == {"location": f"{cfg.app.source}/Dockerfile"}
    assert build["tags"] == [f"{url}:{code.sha256[:16]}"]
    [reg] = build["registries"]
    assert reg["address"] == url.split("/")[0] and reg["username"] == "AWS"
    # the registry token is an input of the build only, never an output or the pointer
    assert MOCK_ECR_PASSWORD not in json.dumps(run.outputs, default=str)
    assert _pointer(run).startswith(f"{url}@sha256:")
    assert run.outputs["imageRepositoryUrl"] == url


def test_the_role_pulls_exactly_the_repository_it_runs(runs):
    expected = {"docker-build": f"arn:aws:ecr:us-east-1:{ACCOUNT_ID}:repository/hello-dev",
                "docker-ecr": "arn:aws:ecr:eu-west-1:210987654321:repository/team/shop"}
    for key, arn in expected.items():
        [policy] = [p for n, p in _policies(runs[key]).items() if n.endswith("-images")]
        token, pull = policy["Statement"]
        assert token["Action"] == "ecr:GetAuthorizationToken" and token["Resource"] == "*"
        assert pull["Action"] == list(PULL_ACTIONS) and pull["Resource"] == arn
        assert not any("Push" in a or "Put" in a or "Delete" in a for a in PULL_ACTIONS)


@pytest.mark.parametrize("key", variants.NAMES)
def test_the_ecr_helper_is_installed_exactly_where_the_role_may_pull_from_ecr(key):
    cfg = variants.cfg(key)
    helper = "amazon-ecr-credential-helper" in bootstrap.container_packages(cfg.app)
    assert helper == (image.pulled_repository(cfg, ACCOUNT_ID) is not None)
    assert helper == (key in ("docker-build", "docker-ecr"))


def test_a_private_registry_s_credentials_are_read_from_exactly_their_secret(runs):
    policies = _policies(runs["docker-image"])
    assert not [n for n in policies if n.endswith("-images")]  # not ECR: nothing to pull there
    [secrets] = [p for n, p in policies.items() if n.endswith("-secrets")]
    assert secrets["Statement"][0]["Resource"] == [
        f"arn:aws:secretsmanager:us-east-1:{ACCOUNT_ID}:secret:shop/registry-??????"]


def test_servers_boot_after_the_image_is_pushed(runs):
    run = runs["docker-build"]
    urns = run.by_urn()
    build = run.one(BUILD)
    instance = run.one("aws:ec2/instance:Instance")

    def reaches(reg, target_urn, seen=frozenset()) -> bool:
        deps = [d for d in reg.dependencies if d not in seen]
        return target_urn in deps or any(
            reaches(urns[d], target_urn, seen | {d}) for d in deps if d in urns)

    pointer = next(r for r in run.of_type(PARAMETER) if r.inputs["name"].endswith("release-ref"))
    assert reaches(pointer, build.urn) and reaches(instance, pointer.urn)


def test_a_pinned_image_is_its_own_pointer_and_the_rollout_trigger(runs):
    run = runs["docker-image"]
    assert _pointer(run) == f"ghcr.io/acme/shop@{variants.DIGEST}"
    rollout = next(r for r in run.of_type("command:local:Command") if r.name.endswith("-rollout"))
    assert rollout.inputs["triggers"] == [f"ghcr.io/acme/shop@{variants.DIGEST}"]
    assert f"ghcr.io/acme/shop@{variants.DIGEST}" in rollout.inputs["create"]


@pytest.mark.parametrize(("reference", "expected"), [
    ("123456789012.dkr.ecr.us-east-1.amazonaws.com/shop:1",
     naming.EcrRepository("123456789012", "us-east-1", "shop")),
    ("123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com/a/b@sha256:" + "0" * 64,
     naming.EcrRepository("123456789012", "us-gov-west-1", "a/b")),
    ("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/shop",
     naming.EcrRepository("123456789012", "cn-north-1", "shop")),
    ("ghcr.io/acme/shop:1", None),
    ("123456789012.dkr.ecr.us-east-1.amazonaws.com.evil.example/shop:1", None),
    ("shop:1", None),
])
def test_ecr_images_are_told_by_their_host(reference, expected):
    assert naming.ecr_registry(reference) == expected


def test_the_lifecycle_rule_expires_untagged_leftovers_first():
    rules = json.loads(image.lifecycle_policy(3))["rules"]
    assert [r["rulePriority"] for r in rules] == [1, 2]
    assert rules[0]["selection"]["tagStatus"] == "untagged"
    assert rules[1]["selection"] == {"tagStatus": "any", "countType": "imageCountMoreThan",
                                     "countNumber": 3}


def test_new_code_is_a_new_tag_and_a_new_release(runs, tmp_path: Path):
    """The tag is the context's content hash (the same code, the same tag), and the rollout
    runs on the image's digest, so a rebuild with new code releases it."""
    cfg = variants.cfg("docker-build")
    copy = tmp_path / "app"
    shutil.copytree(cfg.app.source, copy)
    before = image.build_tag(bundle.of_app(replace(cfg.app, source=str(copy))).sha256)
    assert before == image.build_tag(bundle.of_app(cfg.app).sha256)
    (copy / "app.py").write_text((copy / "app.py").read_text() + "\n# new code\n")
    assert image.build_tag(bundle.of_app(replace(cfg.app, source=str(copy))).sha256) != before
    run = runs["docker-build"]
    rollout = next(r for r in run.of_type("command:local:Command") if r.name.endswith("-rollout"))
    assert rollout.inputs["triggers"] == [_pointer(run)]


def _named(reference: str) -> MockRun:
    return run_program("dev", stack_config("dev", {"webstack:appRuntime": "docker",
                                                   "webstack:appImage": reference}))


@pytest.mark.realtools
def test_a_tag_is_resolved_before_any_resource_and_a_moved_tag_is_a_new_release(
        aws_env_module, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))  # never the user's own
    with local_registry(tmp_path / "registry") as registry:
        def push(version: str) -> str:
            layer = oci.app_layer({"VERSION": version.encode()}, tmp_path)
            return oci.push(registry.url, "team/shop", "stable", oci.image((layer,)))
        first = push("1")
        run = _named(f"{registry.host}/team/shop:stable")
        assert run.error is None, run.error
        assert _pointer(run) == run.outputs["appImage"] == f"{registry.host}/team/shop@{first}"
        second = push("2")  # the tag moves: the next run releases the new image
        rollout = next(r for r in _named(f"{registry.host}/team/shop:stable").of_type(
            "command:local:Command") if r.name.endswith("-rollout"))
        assert rollout.inputs["triggers"] == [f"{registry.host}/team/shop@{second}"] != [first]


def test_a_tag_that_does_not_resolve_registers_nothing(aws_env_module, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    reference = f"127.0.0.1:{free_port('127.0.0.1')}/team/shop:1"  # nothing listens there
    run = _named(reference)
    assert isinstance(run.error, ConfigError)
    assert f"webstack:appImage = {reference!r} cannot be resolved to a digest" in str(run.error)
    assert run.resources == []
