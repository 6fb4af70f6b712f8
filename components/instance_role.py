"""What a server may do in AWS: SSM (Session Manager, Run Command), ship metrics to our namespace
and logs to our log groups, read its artefacts and exactly the app's own SSM parameters, and keep
its Let's Encrypt certificate in one. Shared by the single server and the fleet."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components import artefact, image, naming
from components.aws_names import logical
from components.config import StackConfig

_POLICY = "aws:iam/rolePolicy:RolePolicy"
MANAGED_POLICIES = (
    "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore",  # Session Manager, Run Command
)


def assume_role_policy() -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
        "Action": "sts:AssumeRole"}]})


def parameter_arn(region: str, account: str, name: str) -> str:
    return f"arn:aws:ssm:{region}:{account}:parameter/{name.lstrip('/')}"


def readable_parameters(cfg: StackConfig) -> list[str]:
    """The app's secrets, the release pointer, a private appRepo's deploy key or token, and
    where its database and cache are."""
    names = {*cfg.app.secrets.values(), naming.release_ref_parameter(cfg)}
    if cfg.app.repo_credential is not None:
        names.add(cfg.app.repo_credential.parameter)
    if cfg.database.enabled:
        names.add(naming.database_parameter(cfg))
    if cfg.cache.enabled:
        names.add(naming.cache_parameter(cfg))
    return sorted(names)


def named_secret_arn(region: str, account: str, name_or_arn: str) -> str:
    """A Secrets Manager secret the user names, as a policy resource: an ARN as given, a name
    with the six random characters Secrets Manager appends to it."""
    if name_or_arn.startswith("arn:"):
        return name_or_arn
    return f"arn:aws:secretsmanager:{region}:{account}:secret:{name_or_arn}-??????"


def secrets_policy(region: str, arns: Sequence[str]) -> str:
    """Read exactly these secrets (the database's credentials, the cache's AUTH token, or the
    URL of a database the user brings). RDS's and ours use the aws/secretsmanager key, whose
    own policy allows decryption through Secrets Manager; one the user brings may use a
    customer-managed key: kms:Decrypt only through Secrets Manager and only for these secrets
    (it encrypts each with the encryption context SecretARN)."""
    arns = sorted(arns)
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "ReadAppSecrets", "Effect": "Allow",
         "Action": "secretsmanager:GetSecretValue", "Resource": arns},
        {"Sid": "DecryptAppSecrets", "Effect": "Allow", "Action": "kms:Decrypt",
         "Resource": "*",  # the keys are the user's choice; the conditions pin the use
         "Condition": {"StringEquals": {
             "kms:ViaService": f"secretsmanager.{region}.amazonaws.com"},
             "StringLike": {"kms:EncryptionContext:SecretARN": arns}}}]})


def parameters_policy(region: str, account: str, names: list[str]) -> str:
    """Read exactly these parameters. Decrypting them: the aws/ssm key's own policy allows it
    through SSM; a SecureString of `appSecrets` may use a customer-managed key, which needs
    kms:Decrypt — granted only through SSM and only for these parameters (SSM encrypts each
    with the encryption context PARAMETER_ARN), whichever key it is."""
    arns = sorted(parameter_arn(region, account, n) for n in names)
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "ReadAppParameters", "Effect": "Allow",
         "Action": ["ssm:GetParameter", "ssm:GetParameters"], "Resource": arns},
        {"Sid": "DecryptAppParameters", "Effect": "Allow", "Action": "kms:Decrypt",
         "Resource": "*",  # the keys are the user's choice; the conditions pin the use
         "Condition": {"StringEquals": {"kms:ViaService": f"ssm.{region}.amazonaws.com",
                                        "kms:EncryptionContext:PARAMETER_ARN": arns}}}]})


# ECR's pull actions (its "pull" set); GetAuthorizationToken has no resource-level permission,
# so it alone is granted on "*" (Amazon ECR User Guide, Private repository policies).
PULL_ACTIONS = ("ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage",
                "ecr:GetDownloadUrlForLayer")


def pull_policy(repository_arn: str) -> str:
    """Pull exactly one ECR repository's images (appRuntime docker), through the OS's ECR
    credential helper."""
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "EcrToken", "Effect": "Allow", "Action": "ecr:GetAuthorizationToken",
         "Resource": "*"},
        {"Sid": "EcrPull", "Effect": "Allow", "Action": list(PULL_ACTIONS),
         "Resource": repository_arn}]})


def tls_store_policy(region: str, account: str, name: str) -> str:
    """Read and write exactly the certificate slot (tlsMode letsencrypt): the server stores each
    certificate it gets and restores it when replaced. Its key is aws/ssm, whose own policy
    allows encryption through SSM."""
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Sid": "StoreTlsCertificate", "Effect": "Allow",
        "Action": ["ssm:GetParameter", "ssm:PutParameter"],
        "Resource": parameter_arn(region, account, name)}]})


def agent_policy(region: str, account: str, log_groups: Sequence[str]) -> str:
    """The CloudWatch agent's needs, narrower than AWS's CloudWatchAgentServerPolicy: our
    metric namespace, streams in our log groups only (it may not create groups, so retention is
    ours), and the tag lookup that gives metrics their Auto Scaling group dimension. The SSM
    agent writes Run Command's output to the `run` group with the same grants, after asking
    whether the group exists (DescribeLogGroups: names only, no events)."""
    groups = [f"arn:aws:logs:{region}:{account}:log-group:{name}" for name in log_groups]
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "Metrics", "Effect": "Allow", "Action": "cloudwatch:PutMetricData",
         "Resource": "*",  # PutMetricData has no resource ARNs: limited by namespace instead
         "Condition": {"StringEquals": {"cloudwatch:namespace": naming.METRICS_NAMESPACE}}},
        {"Sid": "Logs", "Effect": "Allow",
         "Action": ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
         "Resource": sorted([*groups, *(f"{g}:log-stream:*" for g in groups)])},
        {"Sid": "Dimensions", "Effect": "Allow", "Action": "ec2:DescribeTags",
         "Resource": "*"},  # a Describe call: no resource ARNs exist for it
        {"Sid": "FindGroups", "Effect": "Allow", "Action": "logs:DescribeLogGroups",
         # it lists by prefix, authorized on the account's group ARN pattern only
         "Resource": f"arn:aws:logs:{region}:{account}:log-group:*"},
    ]})


@dataclass(frozen=True)
class RoleArgs:
    region: str
    account: str
    artefact_bucket: str  # readable: exactly its artefacts/ prefix (and bundle_key)
    bundle_key: str  # the app's bundle, readable in every version ("": a git app, none)
    log_groups: Sequence[str]  # the agent ships to these only
    parameters: Sequence[str]  # SSM parameters it reads (readable_parameters)
    tls_parameter: str | None  # the Let's Encrypt slot it reads and writes, if any
    tags: dict[str, str]
    secrets: Sequence[pulumi.Input[str]] = ()  # Secrets Manager ARNs it reads
    images: str | None = None  # the ECR repository (ARN) it pulls from, if any


def role_args(cfg: StackConfig, account: str, artefact_bucket: str,
              secrets: Sequence[pulumi.Input[str]] = ()) -> RoleArgs:
    """`secrets`: the created database's and cache's secret ARNs (a database the user brings
    adds its own here)."""
    for named in (cfg.database.url_secret, cfg.app.image_credentials_secret):
        if named:
            secrets = [*secrets, named_secret_arn(cfg.region, account, named)]
    return RoleArgs(
        region=cfg.region, account=account, artefact_bucket=artefact_bucket,
        bundle_key="" if cfg.app.from_git or cfg.app.container else naming.bundle_key(cfg.app.name),
        log_groups=tuple(naming.log_groups(cfg).values()), parameters=readable_parameters(cfg),
        tls_parameter=naming.tls_parameter(cfg) if cfg.tls.mode == "letsencrypt" else None,
        tags=cfg.tags, secrets=tuple(secrets), images=image.pulled_repository(cfg, account))


class InstanceRole(pulumi.ComponentResource):
    role_name: pulumi.Output[str]
    profile_name: pulumi.Output[str]
    profile_arn: pulumi.Output[str]

    def __init__(self, name: str, args: RoleArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("webstack:iam:InstanceRole", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        role = aws.iam.Role(logical("aws:iam/role:Role", f"{name}-role"),
                            assume_role_policy=assume_role_policy(),
                            description=f"webstack {name} servers", tags=args.tags,
                            opts=child)
        # What the first boot needs granted before it starts (SSM, logs, parameters).
        self.policies: list[pulumi.Resource] = [
            aws.iam.RolePolicyAttachment(f"{name}-{arn.rsplit('/', 1)[1]}", role=role.name,
                                         policy_arn=arn, opts=child)
            for arn in MANAGED_POLICIES]

        def grant(suffix: str, policy: pulumi.Input[str]) -> None:
            self.policies.append(aws.iam.RolePolicy(
                logical(_POLICY, f"{name}-{suffix}"), role=role.id, policy=policy, opts=child))

        region, account = args.region, args.account
        grant("cloudwatch-agent", agent_policy(region, account, args.log_groups))
        grant("artefacts", artefact.read_policy(args.artefact_bucket, args.bundle_key))
        if args.parameters:
            grant("parameters", parameters_policy(region, account, list(args.parameters)))
        if args.tls_parameter:
            grant("tls-store", tls_store_policy(region, account, args.tls_parameter))
        if args.images:
            grant("images", pull_policy(args.images))
        if args.secrets:
            grant("secrets", pulumi.Output.all(*args.secrets).apply(
                lambda arns: secrets_policy(region, arns)))
        profile = aws.iam.InstanceProfile(
            logical("aws:iam/instanceProfile:InstanceProfile", f"{name}-profile"),
            role=role.name, tags=args.tags, opts=child)
        self.role_name = role.name
        self.profile_name = profile.name
        self.profile_arn = profile.arn
        self.register_outputs({"role_name": self.role_name, "profile_name": self.profile_name})
