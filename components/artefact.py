"""The stack's own S3 bucket, the server artefact and the app's code bundle in it.

The artefact is every file a server installs beyond what its user-data carries (programs,
rendered configuration), one tar named by its sha256, which the fetcher in the user-data checks
before unpacking. Old artefacts are kept while the stack lives: a server booting from the
previous launch template version (a rolled-back instance refresh) still finds its own.

The bundle (appSource) lives at one key per app: each upload is a new S3 version, the release
pointer names the version and its sha256, and a lifecycle rule keeps `appBundlesKept` previous
versions for rollback. The bucket holds nothing that cannot be rebuilt from the program and the
app's source, so `pulumi destroy` removes it with its objects.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_aws as aws

from components import naming

NONCURRENT_DAYS = 30  # versions overwritten or deleted by hand: kept a month, then expired


def tls_only_policy(bucket: str) -> str:
    """Every request over TLS, whoever makes it (AWS's recommended `aws:SecureTransport` deny)."""
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Sid": "TlsOnly", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
        "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]})


def read_policy(bucket: str, bundle_key: str = "") -> str:
    """The instance role's grant: read the artefacts and the app's bundle in any of its versions
    (`bundle_key`; "" for a git app), nothing else in the bucket."""
    statements: list[dict[str, object]] = [{
        "Sid": "ReadServerArtefacts", "Effect": "Allow", "Action": "s3:GetObject",
        "Resource": f"arn:aws:s3:::{bucket}/{naming.ARTEFACT_PREFIX}/*"}]
    if bundle_key:
        statements.append({"Sid": "ReadAppBundle", "Effect": "Allow",
                           "Action": ["s3:GetObject", "s3:GetObjectVersion"],
                           "Resource": f"arn:aws:s3:::{bucket}/{bundle_key}"})
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


def lifecycle_rules(
        bundles_kept: int | None) -> list[aws.s3.BucketLifecycleConfigurationRuleArgsDict]:
    """Artefacts: versions overwritten or deleted by hand expire after a month. Bundles (None:
    a git app has none): the newest `bundles_kept` previous versions stay (rollback), older ones
    go a day after they are replaced (S3's minimum)."""
    rules: list[aws.s3.BucketLifecycleConfigurationRuleArgsDict] = [
        {"id": "expire-noncurrent-artefacts", "status": "Enabled",
         "filter": {"prefix": f"{naming.ARTEFACT_PREFIX}/"},
         "noncurrent_version_expiration": {"noncurrent_days": NONCURRENT_DAYS},
         "abort_incomplete_multipart_upload": {"days_after_initiation": 1}}]
    if bundles_kept is not None:
        rules.append(
            {"id": "keep-bundles", "status": "Enabled",
             "filter": {"prefix": f"{naming.BUNDLE_PREFIX}/"},
             "noncurrent_version_expiration": {"noncurrent_days": 1,
                                               "newer_noncurrent_versions": bundles_kept},
             "abort_incomplete_multipart_upload": {"days_after_initiation": 1}})
    return rules


def standard_tags(tags: dict[str, str]) -> dict[str, str]:
    """S3 allows an object 10 tags: the object gets the four the program sets (a user's own tag
    can neither start with webstack: nor be ManagedBy, config refuses them)."""
    return {k: v for k, v in tags.items() if k.startswith("webstack:") or k == "ManagedBy"}


@dataclass(frozen=True)
class BundleArgs:
    key: str  # naming.bundle_key(app)
    path: str  # the packed bundle (components.bundle.cached), relative to the working directory
    sha256: str
    kept: int  # appBundlesKept


@dataclass(frozen=True)
class ArtefactArgs:
    bucket: str  # naming.artefact_bucket(...): also named in the user-data
    key: str  # content-addressed (bootstrap.artefact_key)
    content: bytes
    tags: dict[str, str]
    bundle: BundleArgs | None = None  # None: a git app


class ServerArtefact(pulumi.ComponentResource):
    bucket_name: pulumi.Output[str]
    object: aws.s3.BucketObjectv2
    bundle: aws.s3.BucketObjectv2 | None
    release_pointer: pulumi.Output[str] | None  # "<sha256>@<version>" of the bundle

    def __init__(self, name: str, args: ArtefactArgs,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("webstack:storage:ServerArtefact", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        bucket = aws.s3.Bucket(f"{name}-artefacts", bucket=args.bucket, force_destroy=True,
                               tags=args.tags, opts=child)
        guards: list[pulumi.Resource] = [
            aws.s3.BucketPublicAccessBlock(
                f"{name}-artefacts-private", bucket=bucket.id, block_public_acls=True,
                block_public_policy=True, ignore_public_acls=True, restrict_public_buckets=True,
                opts=child),
            aws.s3.BucketOwnershipControls(
                f"{name}-artefacts-owner", bucket=bucket.id,
                rule={"object_ownership": "BucketOwnerEnforced"}, opts=child),  # no ACLs
            aws.s3.BucketServerSideEncryptionConfiguration(
                f"{name}-artefacts-encryption", bucket=bucket.id,
                rules=[{"apply_server_side_encryption_by_default": {"sse_algorithm": "AES256"},
                        "bucket_key_enabled": True}], opts=child),
            aws.s3.BucketVersioning(
                f"{name}-artefacts-versioning", bucket=bucket.id,
                versioning_configuration={"status": "Enabled"}, opts=child),
            aws.s3.BucketPolicy(f"{name}-artefacts-tls", bucket=bucket.id,
                                policy=tls_only_policy(args.bucket), opts=child),
        ]
        guards.append(aws.s3.BucketLifecycleConfiguration(
            f"{name}-artefacts-lifecycle", bucket=bucket.id,
            rules=lifecycle_rules(args.bundle.kept if args.bundle else None),
            opts=pulumi.ResourceOptions(parent=self, depends_on=guards[-2:-1])))
        self.object = aws.s3.BucketObjectv2(
            f"{name}-artefact", bucket=bucket.id, key=args.key,
            content_base64=base64.b64encode(args.content).decode(),
            content_type="application/x-tar", tags=standard_tags(args.tags),
            opts=pulumi.ResourceOptions(parent=self, depends_on=guards, retain_on_delete=True))
        self.bundle, self.release_pointer = None, None
        if args.bundle is not None:
            b = args.bundle
            # A new bundle is an update of this one object (S3 keeps the old as a version),
            # never a replacement; the pointer moves only once the upload has its version.
            self.bundle = aws.s3.BucketObjectv2(
                f"{name}-bundle", bucket=bucket.id, key=b.key,
                source=pulumi.FileAsset(Path(b.path)), content_type="application/x-tar",
                metadata={"sha256": b.sha256}, tags=standard_tags(args.tags),
                opts=pulumi.ResourceOptions(parent=self, depends_on=guards))
            self.release_pointer = self.bundle.version_id.apply(
                lambda v: f"{b.sha256}@{v}" if v else b.sha256)
        self.bucket_name = bucket.bucket
        self.register_outputs({"bucket_name": self.bucket_name})
