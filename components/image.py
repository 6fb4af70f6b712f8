"""appRuntime docker: the image servers run, always by digest.

Either the stack builds appSource's Dockerfile into its own ECR repository (scan on push, tags
immutable, a lifecycle rule keeping appImagesKept images) with pulumi-docker-build, or the user
names an image in any registry (appImage), whose tag the program resolves to a digest on every
run, preview included, like a data source: the release pointer then names exactly the image
that was planned, and a tag moved to a new image is a new release on the next `up`.

Servers pull at release time: from ECR with the instance role (`instance_role.pull_policy`)
through the OS's ECR credential helper, elsewhere with appImageCredentialsSecret's credentials.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_aws as aws
import pulumi_docker_build as docker_build

from components import naming, registry
from components.config import NAMESPACE, ConfigError, StackConfig

# Images that keep no tag (a failed push's layers) expire after this many days.
UNTAGGED_DAYS = 1
PLATFORMS = {"x86_64": "linux/amd64", "arm64": "linux/arm64"}
def repository_arn(region: str, account: str, name: str) -> str:
    return f"arn:aws:ecr:{region}:{account}:repository/{name}"


def pulled_repository(cfg: StackConfig, account: str) -> str | None:
    """The ECR repository servers pull from, as an ARN (None: not an ECR image)."""
    if not cfg.app.pulls_from_ecr:
        return None
    if cfg.app.builds_image:
        return repository_arn(cfg.region, account, naming.image_repository(cfg))
    ecr = naming.ecr_registry(cfg.app.image)
    return repository_arn(ecr.region, ecr.account, ecr.name) if ecr else None


def lifecycle_policy(kept: int) -> str:
    """Keep the newest `kept` images (a rollback's reach on new servers); untagged leftovers of
    failed pushes go after a day. Servers keep their own appReleasesKept images locally."""
    return json.dumps({"rules": [
        {"rulePriority": 1, "description": f"expire untagged images after {UNTAGGED_DAYS} day",
         "selection": {"tagStatus": "untagged", "countType": "sinceImagePushed",
                       "countUnit": "days", "countNumber": UNTAGGED_DAYS},
         "action": {"type": "expire"}},
        {"rulePriority": 2, "description": f"keep the newest {kept} images",
         "selection": {"tagStatus": "any", "countType": "imageCountMoreThan",
                       "countNumber": kept},
         "action": {"type": "expire"}}]}, sort_keys=True)


def resolve_named(cfg: StackConfig, *, timeout: float = 20.0) -> str:
    """appImage by digest, before any resource: a tag that does not resolve fails the whole
    run, naming the setting."""
    try:
        return registry.resolve(cfg.app.image, timeout=timeout)
    except registry.RegistryError as err:
        raise ConfigError([f"{NAMESPACE}:appImage = {cfg.app.image!r} cannot be resolved to a "
                           f"digest: {err}"]) from None


def build_tag(code_sha256: str) -> str:
    """The pushed tag: the build context's content hash (the same context, the same tag; ECR's
    immutable tags then refuse a different image under it)."""
    return code_sha256[:16]


@dataclass(frozen=True)
class ImageArgs:
    context: str  # the app directory (appSource/appPath)
    dockerfile: str  # relative to the context
    platform: str
    tag: str
    kept: int
    tags: dict[str, str]


class AppImage(pulumi.ComponentResource):
    """The stack's ECR repository and the image built from appSource into it."""

    reference: pulumi.Output[str]  # <repository url>@sha256:<digest>
    repository_url: pulumi.Output[str]
    repository_arn: pulumi.Output[str]

    def __init__(self, name: str, cfg: StackConfig, args: ImageArgs,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("webstack:image:AppImage", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        repo = aws.ecr.Repository(
            f"{name}-images", name=naming.image_repository(cfg),
            image_tag_mutability="IMMUTABLE",
            image_scanning_configuration={"scan_on_push": True}, force_delete=True,
            encryption_configurations=[{"encryption_type": "AES256"}],
            tags=args.tags, opts=child)
        self.lifecycle = aws.ecr.LifecyclePolicy(
            f"{name}-images-lifecycle", repository=repo.name,
            policy=lifecycle_policy(args.kept), opts=child)
        token = aws.ecr.get_authorization_token_output(registry_id=repo.registry_id)
        self.image = docker_build.Image(
            f"{name}-image", push=True,
            context=docker_build.BuildContextArgs(location=args.context),
            dockerfile=docker_build.DockerfileArgs(
                location=str(Path(args.context) / args.dockerfile)),
            platforms=[docker_build.Platform(args.platform)],
            tags=[pulumi.Output.concat(repo.repository_url, ":", args.tag)],
            registries=[docker_build.RegistryArgs(
                address=repo.repository_url.apply(lambda url: url.split("/", 1)[0]),
                username=token.user_name, password=token.password)],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.lifecycle]))
        self.reference = pulumi.Output.concat(repo.repository_url, "@", self.image.digest)
        self.repository_url = repo.repository_url
        self.repository_arn = repo.arn
        self.register_outputs({"reference": self.reference})
