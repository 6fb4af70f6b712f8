"""The stack's own S3 bucket and the server artefact in it: every file a server installs beyond
what its user-data carries (programs, rendered configuration, the bundled app), one tar named by
its sha256, which the fetcher in the user-data checks before unpacking.

The bucket holds nothing that cannot be rebuilt from the program (the artefact is derived from
the config), so `pulumi destroy` removes it with its objects. Old artefacts are kept while the
stack lives: a server booting from the previous launch template version (a rolled-back instance
refresh) still finds its own.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass

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


def read_policy(bucket: str) -> str:
    """The instance role's grant: read the artefacts, nothing else in the bucket."""
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Sid": "ReadServerArtefacts", "Effect": "Allow", "Action": "s3:GetObject",
        "Resource": f"arn:aws:s3:::{bucket}/{naming.ARTEFACT_PREFIX}/*"}]})


def standard_tags(tags: dict[str, str]) -> dict[str, str]:
    """S3 allows an object 10 tags: the object gets the four the program sets (a user's own tag
    can neither start with webstack: nor be ManagedBy, config refuses them)."""
    return {k: v for k, v in tags.items() if k.startswith("webstack:") or k == "ManagedBy"}


@dataclass(frozen=True)
class ArtefactArgs:
    bucket: str  # naming.artefact_bucket(...): also named in the user-data
    key: str  # content-addressed (bootstrap.artefact_key)
    content: bytes
    tags: dict[str, str]


class ServerArtefact(pulumi.ComponentResource):
    bucket_name: pulumi.Output[str]
    object: aws.s3.BucketObjectv2

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
            f"{name}-artefacts-lifecycle", bucket=bucket.id, rules=[{
                "id": "expire-noncurrent", "status": "Enabled", "filter": {},
                "noncurrent_version_expiration": {"noncurrent_days": NONCURRENT_DAYS},
                "abort_incomplete_multipart_upload": {"days_after_initiation": 1}}],
            opts=pulumi.ResourceOptions(parent=self, depends_on=guards[-2:-1])))
        self.object = aws.s3.BucketObjectv2(
            f"{name}-artefact", bucket=bucket.id, key=args.key,
            content_base64=base64.b64encode(args.content).decode(),
            content_type="application/x-tar", tags=standard_tags(args.tags),
            opts=pulumi.ResourceOptions(parent=self, depends_on=guards, retain_on_delete=True))
        self.bucket_name = bucket.bucket
        self.register_outputs({"bucket_name": self.bucket_name})
