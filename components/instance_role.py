"""What a server may do in AWS: SSM (Session Manager, Run Command), ship metrics to our namespace
and logs to our log groups, read its artefacts and exactly the app's own SSM parameters, and keep
its Let's Encrypt certificate in one. Shared by the single server and the fleet."""

from __future__ import annotations

import json
from collections.abc import Callable

import pulumi
import pulumi_aws as aws

from components import artefact, naming
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
    """The app's secrets, and the release ref when servers read it (a git app)."""
    names = set(cfg.app.secrets.values())
    if not cfg.app.bundled:
        names.add(naming.release_ref_parameter(cfg))
    return sorted(names)


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


def tls_store_policy(region: str, account: str, name: str) -> str:
    """Read and write exactly the certificate slot (tlsMode letsencrypt): the server stores each
    certificate it gets and restores it when replaced. Its key is aws/ssm, whose own policy
    allows encryption through SSM."""
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Sid": "StoreTlsCertificate", "Effect": "Allow",
        "Action": ["ssm:GetParameter", "ssm:PutParameter"],
        "Resource": parameter_arn(region, account, name)}]})


def agent_policy(region: str, account: str, cfg: StackConfig) -> str:
    """The CloudWatch agent's needs, narrower than AWS's CloudWatchAgentServerPolicy: our
    metric namespace, streams in our log groups only (it may not create groups, so retention is
    ours), and the tag lookup that gives metrics their Auto Scaling group dimension."""
    groups = [f"arn:aws:logs:{region}:{account}:log-group:{name}"
              for name in naming.log_groups(cfg).values()]
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "Metrics", "Effect": "Allow", "Action": "cloudwatch:PutMetricData",
         "Resource": "*",  # PutMetricData has no resource ARNs: limited by namespace instead
         "Condition": {"StringEquals": {"cloudwatch:namespace": naming.METRICS_NAMESPACE}}},
        {"Sid": "Logs", "Effect": "Allow",
         "Action": ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
         "Resource": sorted([*groups, *(f"{g}:log-stream:*" for g in groups)])},
        {"Sid": "Dimensions", "Effect": "Allow", "Action": "ec2:DescribeTags",
         "Resource": "*"},  # a Describe call: no resource ARNs exist for it
    ]})


class InstanceRole(pulumi.ComponentResource):
    role_name: pulumi.Output[str]
    profile_name: pulumi.Output[str]
    profile_arn: pulumi.Output[str]

    def __init__(self, name: str, cfg: StackConfig, artefact_bucket: str,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("webstack:iam:InstanceRole", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        role = aws.iam.Role(logical("aws:iam/role:Role", f"{name}-role"),
                            assume_role_policy=assume_role_policy(),
                            description=f"webstack {cfg.prefix} servers", tags=cfg.tags,
                            opts=child)
        # What the first boot needs granted before it starts (SSM, logs, parameters).
        self.policies: list[pulumi.Resource] = [
            aws.iam.RolePolicyAttachment(f"{name}-{arn.rsplit('/', 1)[1]}", role=role.name,
                                         policy_arn=arn, opts=child)
            for arn in MANAGED_POLICIES]
        account = aws.get_caller_identity_output(
            opts=pulumi.InvokeOutputOptions(parent=self)).account_id

        def grant(suffix: str, policy: Callable[[str], str]) -> None:
            """An inline policy of the role, written once the account id is known."""
            self.policies.append(aws.iam.RolePolicy(
                logical(_POLICY, f"{name}-{suffix}"), role=role.id,
                policy=account.apply(policy), opts=child))

        grant("cloudwatch-agent", lambda acct: agent_policy(cfg.region, acct, cfg))
        grant("artefacts", lambda _: artefact.read_policy(artefact_bucket))
        names = readable_parameters(cfg)
        if names:
            grant("parameters", lambda acct: parameters_policy(cfg.region, acct, names))
        if cfg.tls.mode == "letsencrypt":
            slot = naming.tls_parameter(cfg)
            grant("tls-store", lambda acct: tls_store_policy(cfg.region, acct, slot))
        profile = aws.iam.InstanceProfile(
            logical("aws:iam/instanceProfile:InstanceProfile", f"{name}-profile"),
            role=role.name, tags=cfg.tags, opts=child)
        self.role_name = role.name
        self.profile_name = profile.name
        self.profile_arn = profile.arn
        self.register_outputs({"role_name": self.role_name, "profile_name": self.profile_name})
