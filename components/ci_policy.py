"""What CI may do in AWS: the actions behind every resource type and lookup the program uses,
and the GitHub OIDC trust of the roles CI assumes. Pure data and functions (the `ci` stack,
components/ci.py, wires them; tests hold the tables to what the program really registers).

Each row lists the calls the Pulumi AWS provider (the Terraform provider's
`internal/service/<service>/<resource>.go`) makes to create, read, update, tag and delete that
type, plus the permissions AWS checks on the caller beyond the call itself (a launch template's
RunInstances, a role's PassRole). Actions are always named exactly: no `*` in any action.
Three roles, by how much they are trusted:
- preview (pull requests): the lookups and plan-time reads a `pulumi preview` makes, no secret
  values (a pull request's code runs with it);
- drift (the default branch, on a schedule): every read, secret values included, because
  `preview --refresh` reads every resource back; no writes;
- deploy (the protected environment): everything, writes scoped where IAM allows it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from components import naming

# --- what each registered type needs -----------------------------------------------------------

_EC2_TAGS = ("ec2:CreateTags", "ec2:DeleteTags", "ec2:DescribeTags")
_SG_RULE = ("ec2:DescribeSecurityGroupRules", "ec2:ModifySecurityGroupRules", *_EC2_TAGS)
_S3_BUCKET_PART = {  # bucket sub-resources: (read, write)
    "Lifecycle": ("s3:GetLifecycleConfiguration", "s3:PutLifecycleConfiguration"),
    "OwnershipControls": ("s3:GetBucketOwnershipControls", "s3:PutBucketOwnershipControls"),
    "Policy": ("s3:GetBucketPolicy", "s3:PutBucketPolicy", "s3:DeleteBucketPolicy"),
    "PublicAccessBlock": ("s3:GetBucketPublicAccessBlock", "s3:PutBucketPublicAccessBlock"),
    "ServerSideEncryptionConfiguration": ("s3:GetEncryptionConfiguration",
                                          "s3:PutEncryptionConfiguration"),
    "Versioning": ("s3:GetBucketVersioning", "s3:PutBucketVersioning"),
}

RESOURCE_ACTIONS: dict[str, tuple[str, ...]] = {
    "aws:acm/certificate:Certificate": (
        "acm:RequestCertificate", "acm:DescribeCertificate", "acm:ListTagsForCertificate",
        "acm:AddTagsToCertificate", "acm:RemoveTagsFromCertificate", "acm:DeleteCertificate",
        "acm:UpdateCertificateOptions"),
    "aws:acm/certificateValidation:CertificateValidation": ("acm:DescribeCertificate",),
    "aws:autoscaling/group:Group": (
        "autoscaling:CreateAutoScalingGroup", "autoscaling:UpdateAutoScalingGroup",
        "autoscaling:DeleteAutoScalingGroup", "autoscaling:DescribeAutoScalingGroups",
        "autoscaling:DescribeScalingActivities", "autoscaling:CreateOrUpdateTags",
        "autoscaling:DeleteTags", "autoscaling:DescribeTags",
        "autoscaling:DescribeLifecycleHooks",
        "autoscaling:DescribeWarmPool", "autoscaling:DescribeTrafficSources",
        "autoscaling:DescribeLoadBalancerTargetGroups",
        "autoscaling:AttachLoadBalancerTargetGroups",
        "autoscaling:DetachLoadBalancerTargetGroups", "autoscaling:EnableMetricsCollection",
        "autoscaling:DisableMetricsCollection", "autoscaling:StartInstanceRefresh",
        "autoscaling:DescribeInstanceRefreshes", "autoscaling:CancelInstanceRefresh",
        "autoscaling:UpdateAutoScalingGroup", "autoscaling:SetInstanceProtection",
        "autoscaling:SuspendProcesses", "autoscaling:ResumeProcesses",
        # the group launches from our launch template with the caller's rights
        "ec2:RunInstances", "ec2:DescribeLaunchTemplateVersions", "iam:PassRole",
        "iam:CreateServiceLinkedRole"),
    "aws:autoscaling/policy:Policy": (
        "autoscaling:PutScalingPolicy", "autoscaling:DescribePolicies",
        "autoscaling:DeletePolicy"),
    "aws:cloudwatch/dashboard:Dashboard": (
        "cloudwatch:PutDashboard", "cloudwatch:GetDashboard", "cloudwatch:DeleteDashboards"),
    "aws:cloudwatch/logGroup:LogGroup": (
        "logs:CreateLogGroup", "logs:DescribeLogGroups", "logs:DeleteLogGroup",
        "logs:PutRetentionPolicy", "logs:DeleteRetentionPolicy", "logs:ListTagsForResource",
        "logs:TagResource", "logs:UntagResource"),
    "aws:cloudwatch/metricAlarm:MetricAlarm": (
        "cloudwatch:PutMetricAlarm", "cloudwatch:DescribeAlarms", "cloudwatch:DeleteAlarms",
        "cloudwatch:ListTagsForResource", "cloudwatch:TagResource", "cloudwatch:UntagResource"),
    "aws:ec2/eip:Eip": (
        "ec2:AllocateAddress", "ec2:DescribeAddresses", "ec2:DescribeAddressesAttribute",
        "ec2:ReleaseAddress", "ec2:DisassociateAddress", *_EC2_TAGS),
    "aws:ec2/eipAssociation:EipAssociation": (
        "ec2:AssociateAddress", "ec2:DisassociateAddress", "ec2:DescribeAddresses"),
    "aws:ec2/instance:Instance": (
        "ec2:RunInstances", "ec2:DescribeInstances", "ec2:DescribeInstanceAttribute",
        "ec2:ModifyInstanceAttribute", "ec2:DescribeInstanceCreditSpecifications",
        "ec2:ModifyInstanceCreditSpecification", "ec2:ModifyInstanceMetadataOptions",
        "ec2:DescribeVolumes", "ec2:ModifyVolume", "ec2:DescribeInstanceTypes",
        "ec2:StopInstances", "ec2:StartInstances", "ec2:TerminateInstances",
        "ec2:AssociateIamInstanceProfile", "ec2:DescribeIamInstanceProfileAssociations",
        "ec2:ReplaceIamInstanceProfileAssociation", "ec2:DescribeNetworkInterfaces",
        "iam:PassRole", *_EC2_TAGS),
    "aws:ec2/internetGateway:InternetGateway": (
        "ec2:CreateInternetGateway", "ec2:DescribeInternetGateways",
        "ec2:AttachInternetGateway", "ec2:DetachInternetGateway", "ec2:DeleteInternetGateway",
        *_EC2_TAGS),
    "aws:ec2/keyPair:KeyPair": (
        "ec2:ImportKeyPair", "ec2:DescribeKeyPairs", "ec2:DeleteKeyPair", *_EC2_TAGS),
    "aws:ec2/launchTemplate:LaunchTemplate": (
        "ec2:CreateLaunchTemplate", "ec2:CreateLaunchTemplateVersion",
        "ec2:DescribeLaunchTemplates", "ec2:DescribeLaunchTemplateVersions",
        "ec2:ModifyLaunchTemplate", "ec2:DeleteLaunchTemplate",
        "ec2:DeleteLaunchTemplateVersions", *_EC2_TAGS),
    "aws:ec2/routeTable:RouteTable": (
        "ec2:CreateRouteTable", "ec2:DescribeRouteTables", "ec2:DeleteRouteTable",
        "ec2:CreateRoute", "ec2:ReplaceRoute", "ec2:DeleteRoute", *_EC2_TAGS),
    "aws:ec2/routeTableAssociation:RouteTableAssociation": (
        "ec2:AssociateRouteTable", "ec2:DisassociateRouteTable",
        "ec2:ReplaceRouteTableAssociation", "ec2:DescribeRouteTables"),
    "aws:ec2/securityGroup:SecurityGroup": (
        "ec2:CreateSecurityGroup", "ec2:DescribeSecurityGroups", "ec2:DeleteSecurityGroup",
        # the provider removes AWS's allow-all egress rule of a new group
        "ec2:RevokeSecurityGroupEgress", "ec2:RevokeSecurityGroupIngress",
        "ec2:DescribeNetworkInterfaces", *_EC2_TAGS),
    "aws:ec2/subnet:Subnet": (
        "ec2:CreateSubnet", "ec2:DescribeSubnets", "ec2:ModifySubnetAttribute",
        "ec2:DeleteSubnet", "ec2:DescribeNetworkInterfaces", *_EC2_TAGS),
    "aws:ec2/vpc:Vpc": (
        "ec2:CreateVpc", "ec2:DescribeVpcs", "ec2:DescribeVpcAttribute",
        "ec2:ModifyVpcAttribute", "ec2:DeleteVpc", "ec2:DescribeRouteTables",
        "ec2:DescribeNetworkAcls", "ec2:DescribeSecurityGroups", *_EC2_TAGS),
    "aws:ecr/lifecyclePolicy:LifecyclePolicy": (
        "ecr:PutLifecyclePolicy", "ecr:GetLifecyclePolicy", "ecr:DeleteLifecyclePolicy"),
    "aws:ecr/repository:Repository": (
        "ecr:CreateRepository", "ecr:DescribeRepositories", "ecr:DeleteRepository",
        "ecr:PutImageTagMutability", "ecr:PutImageScanningConfiguration",
        "ecr:ListTagsForResource", "ecr:TagResource", "ecr:UntagResource",
        # force_delete empties it first
        "ecr:ListImages", "ecr:BatchDeleteImage"),
    "aws:elasticache/cluster:Cluster": (
        "elasticache:CreateCacheCluster", "elasticache:DescribeCacheClusters",
        "elasticache:ModifyCacheCluster", "elasticache:DeleteCacheCluster",
        "elasticache:ListTagsForResource", "elasticache:AddTagsToResource",
        "elasticache:RemoveTagsFromResource", "iam:CreateServiceLinkedRole"),
    "aws:elasticache/replicationGroup:ReplicationGroup": (
        "elasticache:CreateReplicationGroup", "elasticache:DescribeReplicationGroups",
        "elasticache:ModifyReplicationGroup", "elasticache:DeleteReplicationGroup",
        "elasticache:DescribeCacheClusters", "elasticache:ListTagsForResource",
        "elasticache:AddTagsToResource", "elasticache:RemoveTagsFromResource",
        "iam:CreateServiceLinkedRole"),
    "aws:elasticache/subnetGroup:SubnetGroup": (
        "elasticache:CreateCacheSubnetGroup", "elasticache:DescribeCacheSubnetGroups",
        "elasticache:ModifyCacheSubnetGroup", "elasticache:DeleteCacheSubnetGroup",
        "elasticache:ListTagsForResource", "elasticache:AddTagsToResource",
        "elasticache:RemoveTagsFromResource"),
    "aws:iam/instanceProfile:InstanceProfile": (
        "iam:CreateInstanceProfile", "iam:GetInstanceProfile", "iam:DeleteInstanceProfile",
        "iam:AddRoleToInstanceProfile", "iam:RemoveRoleFromInstanceProfile",
        "iam:TagInstanceProfile", "iam:UntagInstanceProfile", "iam:ListInstanceProfileTags",
        "iam:PassRole"),
    "aws:iam/role:Role": (
        "iam:CreateRole", "iam:GetRole", "iam:UpdateRole", "iam:UpdateAssumeRolePolicy",
        "iam:DeleteRole", "iam:TagRole", "iam:UntagRole", "iam:ListRoleTags",
        "iam:ListAttachedRolePolicies", "iam:ListRolePolicies",
        "iam:ListInstanceProfilesForRole"),
    "aws:iam/rolePolicy:RolePolicy": (
        "iam:PutRolePolicy", "iam:GetRolePolicy", "iam:DeleteRolePolicy"),
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": (
        "iam:AttachRolePolicy", "iam:DetachRolePolicy", "iam:ListAttachedRolePolicies"),
    "aws:lb/listener:Listener": (
        "elasticloadbalancing:CreateListener", "elasticloadbalancing:DescribeListeners",
        "elasticloadbalancing:DescribeListenerAttributes",
        "elasticloadbalancing:ModifyListener", "elasticloadbalancing:ModifyListenerAttributes",
        "elasticloadbalancing:DeleteListener", "elasticloadbalancing:AddTags",
        "elasticloadbalancing:RemoveTags", "elasticloadbalancing:DescribeTags"),
    "aws:lb/loadBalancer:LoadBalancer": (
        "elasticloadbalancing:CreateLoadBalancer", "elasticloadbalancing:DescribeLoadBalancers",
        "elasticloadbalancing:DescribeLoadBalancerAttributes",
        "elasticloadbalancing:ModifyLoadBalancerAttributes",
        "elasticloadbalancing:SetSecurityGroups", "elasticloadbalancing:SetSubnets",
        "elasticloadbalancing:DeleteLoadBalancer", "elasticloadbalancing:AddTags",
        "elasticloadbalancing:RemoveTags", "elasticloadbalancing:DescribeTags",
        "ec2:DescribeNetworkInterfaces", "iam:CreateServiceLinkedRole"),
    "aws:lb/targetGroup:TargetGroup": (
        "elasticloadbalancing:CreateTargetGroup", "elasticloadbalancing:DescribeTargetGroups",
        "elasticloadbalancing:DescribeTargetGroupAttributes",
        "elasticloadbalancing:ModifyTargetGroup",
        "elasticloadbalancing:ModifyTargetGroupAttributes",
        "elasticloadbalancing:DeleteTargetGroup", "elasticloadbalancing:AddTags",
        "elasticloadbalancing:RemoveTags", "elasticloadbalancing:DescribeTags"),
    "aws:lb/targetGroupAttachment:TargetGroupAttachment": (
        "elasticloadbalancing:RegisterTargets", "elasticloadbalancing:DeregisterTargets",
        "elasticloadbalancing:DescribeTargetHealth"),
    "aws:rds/instance:Instance": (
        "rds:CreateDBInstance", "rds:DescribeDBInstances", "rds:ModifyDBInstance",
        "rds:DeleteDBInstance", "rds:RebootDBInstance", "rds:AddTagsToResource",
        "rds:RemoveTagsFromResource", "rds:ListTagsForResource", "rds:DescribeDBSnapshots",
        "rds:CreateDBSnapshot",  # the final snapshot a delete takes
        # manageMasterUserPassword: RDS creates and rotates the secret with the caller's rights
        "secretsmanager:CreateSecret", "secretsmanager:TagResource",
        "secretsmanager:RotateSecret", "secretsmanager:DeleteSecret",
        "kms:DescribeKey", "iam:CreateServiceLinkedRole"),
    "aws:rds/parameterGroup:ParameterGroup": (
        "rds:CreateDBParameterGroup", "rds:DescribeDBParameterGroups",
        "rds:DescribeDBParameters", "rds:ModifyDBParameterGroup", "rds:ResetDBParameterGroup",
        "rds:DeleteDBParameterGroup", "rds:AddTagsToResource", "rds:RemoveTagsFromResource",
        "rds:ListTagsForResource"),
    "aws:rds/subnetGroup:SubnetGroup": (
        "rds:CreateDBSubnetGroup", "rds:DescribeDBSubnetGroups", "rds:ModifyDBSubnetGroup",
        "rds:DeleteDBSubnetGroup", "rds:AddTagsToResource", "rds:RemoveTagsFromResource",
        "rds:ListTagsForResource"),
    "aws:route53/record:Record": (
        "route53:ChangeResourceRecordSets", "route53:ListResourceRecordSets",
        "route53:GetChange", "route53:GetHostedZone"),
    "aws:s3/bucket:Bucket": (
        "s3:CreateBucket", "s3:DeleteBucket", "s3:ListBucket", "s3:GetBucketLocation",
        "s3:GetBucketTagging", "s3:PutBucketTagging", "s3:GetBucketAcl", "s3:GetBucketCORS",
        "s3:GetBucketWebsite", "s3:GetAccelerateConfiguration", "s3:GetBucketRequestPayment",
        "s3:GetBucketLogging", "s3:GetReplicationConfiguration",
        "s3:GetBucketObjectLockConfiguration",
        "s3:GetBucketPolicy", "s3:GetBucketVersioning", "s3:GetEncryptionConfiguration",
        "s3:GetLifecycleConfiguration",
        # a destroy of the versioned bucket empties it (forceDestroy)
        "s3:ListBucketVersions", "s3:DeleteObject", "s3:DeleteObjectVersion"),
    **{f"aws:s3/bucket{part}:Bucket{part}" if part != "Lifecycle" else
       "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": actions
       for part, actions in _S3_BUCKET_PART.items()},
    "aws:s3/bucketObjectv2:BucketObjectv2": (
        "s3:PutObject", "s3:GetObject", "s3:GetObjectVersion", "s3:GetObjectTagging",
        "s3:PutObjectTagging", "s3:DeleteObject", "s3:DeleteObjectVersion",
        "s3:ListBucketVersions"),
    "aws:secretsmanager/secret:Secret": (
        "secretsmanager:CreateSecret", "secretsmanager:DescribeSecret",
        "secretsmanager:GetResourcePolicy", "secretsmanager:UpdateSecret",
        "secretsmanager:DeleteSecret", "secretsmanager:TagResource",
        "secretsmanager:UntagResource"),
    "aws:secretsmanager/secretVersion:SecretVersion": (
        "secretsmanager:PutSecretValue", "secretsmanager:GetSecretValue",
        "secretsmanager:ListSecretVersionIds", "secretsmanager:UpdateSecretVersionStage",
        "secretsmanager:DescribeSecret"),
    "aws:sns/topic:Topic": (
        "sns:CreateTopic", "sns:GetTopicAttributes", "sns:SetTopicAttributes",
        "sns:DeleteTopic", "sns:ListTagsForResource", "sns:TagResource", "sns:UntagResource"),
    "aws:sns/topicSubscription:TopicSubscription": (
        "sns:Subscribe", "sns:Unsubscribe", "sns:GetSubscriptionAttributes",
        "sns:SetSubscriptionAttributes", "sns:ListSubscriptionsByTopic"),
    "aws:ssm/parameter:Parameter": (
        "ssm:PutParameter", "ssm:GetParameter", "ssm:GetParameters",
        "ssm:DescribeParameters", "ssm:DeleteParameter", "ssm:AddTagsToResource",
        "ssm:RemoveTagsFromResource", "ssm:ListTagsForResource"),
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": (
        "ec2:AuthorizeSecurityGroupEgress", "ec2:RevokeSecurityGroupEgress", *_SG_RULE),
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": (
        "ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress", *_SG_RULE),
    # docker-build pushes the image to the stack's ECR repository with getAuthorizationToken's
    # credentials: the registry checks these on the caller
    "docker-build:index:Image": (
        "ecr:GetAuthorizationToken", "ecr:BatchCheckLayerAvailability",
        "ecr:InitiateLayerUpload", "ecr:UploadLayerPart", "ecr:CompleteLayerUpload",
        "ecr:PutImage", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"),
    # the deploy tools `pulumi up` runs (deploy/readiness_check, rollout, cloudinit_status)
    "command:local:Command": (
        "sts:GetCallerIdentity", "ec2:DescribeInstances", "ec2:DescribeInstanceStatus",
        "ec2:GetConsoleOutput", "ssm:DescribeInstanceInformation", "ssm:SendCommand",
        "ssm:GetCommandInvocation", "ssm:ListCommandInvocations", "ssm:CancelCommand",
        "autoscaling:DescribeAutoScalingGroups", "elasticloadbalancing:DescribeTargetHealth"),
}

# The lookups the program makes before any resource (invokes, and its own boto3 calls).
INVOKE_ACTIONS: dict[str, tuple[str, ...]] = {
    "aws:ec2/getAmi:getAmi": ("ec2:DescribeImages",),
    "aws:ec2/getInstanceTypeOfferings:getInstanceTypeOfferings": (
        "ec2:DescribeInstanceTypeOfferings",),
    "aws:ec2/getSubnet:getSubnet": ("ec2:DescribeSubnets",),
    "aws:ec2/getSubnets:getSubnets": ("ec2:DescribeSubnets",),
    "aws:ec2/getVpc:getVpc": ("ec2:DescribeVpcs", "ec2:DescribeVpcAttribute"),
    "aws:ecr/getAuthorizationToken:getAuthorizationToken": ("ecr:GetAuthorizationToken",),
    "aws:index/getAvailabilityZones:getAvailabilityZones": ("ec2:DescribeAvailabilityZones",),
    "aws:index/getCallerIdentity:getCallerIdentity": ("sts:GetCallerIdentity",),
    "aws:index/getPartition:getPartition": (),
    "aws:index/getRegion:getRegion": ("ec2:DescribeRegions",),
    "aws:route53/getZone:getZone": (
        "route53:ListHostedZones", "route53:GetHostedZone", "route53:ListTagsForResource"),
}
# components/sizing.py's catalog lookup and the provider's own identity check at start
PLAN_ACTIONS = ("ec2:DescribeInstanceTypes", "sts:GetCallerIdentity")

# Reads that return a secret's value: the drift role's, never the preview role's.
SECRET_READS = frozenset({"secretsmanager:GetSecretValue", "ssm:GetParameter",
                          "ssm:GetParameters"})
# a read: ECR's Batch calls read too (a refresh of the docker-build image reads its manifest)
READ = re.compile(r"^[a-z0-9-]+:(Describe|Get|List|BatchGet|BatchCheck)[A-Za-z0-9]*$")
ACTION = re.compile(r"^[a-z0-9-]+:[A-Z][A-Za-z0-9]*$")  # exact: no wildcard can match
# IAM action names that are no API operation's name (S3 names several differently; PassRole is
# checked, never called).
PERMISSION_ONLY = frozenset({
    "s3:GetBucketPublicAccessBlock", "s3:PutBucketPublicAccessBlock",
    "iam:PassRole", "s3:GetLifecycleConfiguration", "s3:PutLifecycleConfiguration",
    "s3:GetEncryptionConfiguration", "s3:PutEncryptionConfiguration", "s3:ListBucket",
    "s3:ListBucketVersions", "s3:GetBucketCORS", "s3:GetAccelerateConfiguration",
    "s3:GetBucketObjectLockConfiguration", "s3:GetObjectVersion", "s3:DeleteObjectVersion",
    "s3:GetReplicationConfiguration"})
# Services whose roles AWS creates on first use in an account (iam:AWSServiceName)
SERVICE_LINKED = ("autoscaling.amazonaws.com", "elasticloadbalancing.amazonaws.com",
                  "rds.amazonaws.com", "elasticache.amazonaws.com")
# IAM's managed-policy size limit, counted without whitespace (IAM quotas)
MANAGED_POLICY_CHARS = 6144


def needed(types: Iterable[str], invokes: Iterable[str] = ()) -> frozenset[str]:
    """Every action a run registering `types` and calling `invokes` needs; a KeyError names a
    type or lookup without a row."""
    acts: set[str] = set(PLAN_ACTIONS)
    for t in types:
        if t.startswith(("aws:", "docker-build:", "command:")):
            acts.update(RESOURCE_ACTIONS[t])
    for token in invokes:
        acts.update(INVOKE_ACTIONS[token])
    return frozenset(acts)


def every_action() -> frozenset[str]:
    return needed(RESOURCE_ACTIONS, INVOKE_ACTIONS)


def preview_actions() -> frozenset[str]:
    """A pull request's `pulumi preview` (no refresh): the lookups and plan-time reads, and
    the reads of the lookups' results; no resource is read back, no secret value."""
    return needed((), INVOKE_ACTIONS) - SECRET_READS


def drift_actions() -> frozenset[str]:
    """`pulumi preview --refresh`: every read of every type, secret values included."""
    return frozenset(a for a in every_action() if READ.match(a))


# --- trust -------------------------------------------------------------------------------------

OIDC_HOST = "token.actions.githubusercontent.com"
OIDC_AUDIENCE = "sts.amazonaws.com"
REPOSITORY = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}$")
ENVIRONMENT = re.compile(r"^[A-Za-z0-9 _.-]{1,255}$")
BRANCH = re.compile(r"^(?!/|.*//|.*\.\.|.*[/.]$)[A-Za-z0-9._/-]{1,255}$")


def subjects(repository: str, *, environment: str, branch: str) -> dict[str, str]:
    """The token's `sub` each role trusts, exactly (GitHub: "Example subject claims"): a job
    with an environment gets `environment:<name>` instead of its ref, a pull request's
    `pull_request`."""
    return {"preview": f"repo:{repository}:pull_request",
            "drift": f"repo:{repository}:ref:refs/heads/{branch}",
            "deploy": f"repo:{repository}:environment:{environment}"}


def trust_policy(provider_arn: str, subject: str) -> str:
    """AssumeRoleWithWebIdentity from GitHub's OIDC provider, for exactly one `sub` and our
    audience (StringEquals, no wildcard: a fork or another repository never matches)."""
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Sid": "GitHubActions", "Effect": "Allow", "Action": "sts:AssumeRoleWithWebIdentity",
        "Principal": {"Federated": provider_arn},
        "Condition": {"StringEquals": {f"{OIDC_HOST}:aud": OIDC_AUDIENCE,
                                       f"{OIDC_HOST}:sub": subject}}}]}, sort_keys=True)


# --- the policies ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Scope:
    """What of the account is CI's: the webstack stacks it deploys (their IAM names start with
    `<app>-<stack>-`: config.prefix; their parameters live under naming.app_path; everything
    carries the standard tags), and the state bucket if the Pulumi state lives in S3."""

    account: str
    app: str
    stacks: tuple[str, ...]
    managed_policies: tuple[str, ...]
    state_bucket: str = ""
    project: str = "webstack"

    @property
    def prefixes(self) -> tuple[str, ...]:
        return tuple(naming.resource_prefix(self.app, s) for s in self.stacks)


_IAM_SCOPED = ("iam:PassRole", "iam:AttachRolePolicy", "iam:DetachRolePolicy",
               "iam:CreateServiceLinkedRole")


def _statements(actions: Iterable[str], scope: Scope) -> list[dict]:
    """The role's statements; the scoped IAM writes appear only where `actions` has them (the
    deploy role's: preview and drift only read)."""
    acts = sorted(set(actions))
    roles = sorted(f"arn:aws:iam::{scope.account}:role/{p}-*" for p in scope.prefixes)
    iam_arns = sorted([*roles, *(f"arn:aws:iam::{scope.account}:instance-profile/{p}-*"
                                 for p in scope.prefixes)])
    plain = [a for a in acts if not a.startswith("iam:") and a not in SECRET_READS
             and a != "ssm:SendCommand"]
    iam = [a for a in acts if a.startswith("iam:") and a not in _IAM_SCOPED]
    out: list[dict] = []
    by_service: dict[str, list[str]] = {}
    for a in plain:
        by_service.setdefault(a.split(":")[0], []).append(a)
    for service, group in sorted(by_service.items()):
        out.append({"Sid": re.sub(r"[^A-Za-z0-9]", "", service.title()), "Effect": "Allow",
                    "Action": group, "Resource": "*"})
    out += _secret_reads([a for a in acts if a in SECRET_READS], scope)
    if "ssm:SendCommand" in acts:
        out += _run_command(scope)
    if iam:
        out.append({"Sid": "IamOfOurStacks", "Effect": "Allow", "Action": iam,
                    "Resource": iam_arns})
    if "iam:PassRole" in acts:
        out.append({"Sid": "PassOurRolesToEc2", "Effect": "Allow", "Action": "iam:PassRole",
                    "Resource": roles,
                    "Condition": {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}})
    if "iam:AttachRolePolicy" in acts:
        out.append({"Sid": "AttachOnlyOurManagedPolicies", "Effect": "Allow",
                    "Action": ["iam:AttachRolePolicy", "iam:DetachRolePolicy"],
                    "Resource": roles,
                    "Condition": {"ArnEquals": {"iam:PolicyARN": list(scope.managed_policies)}}})
    if "iam:CreateServiceLinkedRole" in acts:
        out.append({"Sid": "ServiceLinkedRoles", "Effect": "Allow",
                    "Action": "iam:CreateServiceLinkedRole",
                    "Resource": f"arn:aws:iam::{scope.account}:role/aws-service-role/*",
                    "Condition": {"StringEquals": {"iam:AWSServiceName": list(SERVICE_LINKED)}}})
    return out


def _secret_reads(actions: Sequence[str], scope: Scope) -> list[dict]:
    """A secret's value only of our stacks: SSM parameters under their path, Secrets Manager
    secrets by their standard tags (a user's own secrets are never CI's to read)."""
    out = []
    ssm = [a for a in actions if a.startswith("ssm:")]
    if ssm:
        paths = [naming.app_path(scope.project, s, scope.app) for s in scope.stacks]
        out.append({"Sid": "OurParameters", "Effect": "Allow", "Action": ssm, "Resource": [
            f"arn:aws:ssm:*:{scope.account}:parameter{p}/*" for p in paths]})
    if "secretsmanager:GetSecretValue" in actions:
        out.append({"Sid": "OurSecretValues", "Effect": "Allow",
                    "Action": ["secretsmanager:GetSecretValue"], "Resource": "*",
                    "Condition": {"StringEquals": {
                        "aws:ResourceTag/webstack:project": scope.project,
                        "aws:ResourceTag/webstack:app": scope.app,
                        "aws:ResourceTag/webstack:stack": list(scope.stacks)}}})
    return out


def _run_command(scope: Scope) -> list[dict]:
    """Run Command (the rollout, the gates) runs as root: only AWS's shell document, and only on
    the deployed stacks' servers (their standard tags, which the instances and the launch
    template's instances carry)."""
    return [{"Sid": "RunShellScript", "Effect": "Allow", "Action": ["ssm:SendCommand"],
             "Resource": "arn:aws:ssm:*::document/AWS-RunShellScript"},
            {"Sid": "OnOurServers", "Effect": "Allow", "Action": ["ssm:SendCommand"],
             "Resource": f"arn:aws:ec2:*:{scope.account}:instance/*",
             "Condition": {"StringEquals": {
                 "ssm:resourceTag/webstack:project": scope.project,
                 "ssm:resourceTag/webstack:app": scope.app,
                 "ssm:resourceTag/webstack:stack": list(scope.stacks)}}}]


def state_statements(bucket: str, *, write: bool) -> list[dict]:
    """The Pulumi state in S3 (`pulumi login s3://bucket`): a preview reads it and takes the
    stack's lock; an up writes it."""
    if not bucket:
        return []
    objects = f"arn:aws:s3:::{bucket}/*"
    return [{"Sid": "StateList", "Effect": "Allow", "Action": ["s3:ListBucket"],
             "Resource": f"arn:aws:s3:::{bucket}"},
            {"Sid": "StateRead", "Effect": "Allow", "Action": ["s3:GetObject"],
             "Resource": objects},
            {"Sid": "StateLock" if not write else "StateWrite", "Effect": "Allow",
             "Action": ["s3:PutObject", "s3:DeleteObject"],
             "Resource": f"arn:aws:s3:::{bucket}/.pulumi/locks/*" if not write else objects}]


def _size(doc: Mapping) -> int:
    return len(re.sub(r"\s", "", json.dumps(doc)))


def _split(st: dict) -> list[dict]:
    """A statement too big for one document, halved by its actions until each part fits."""
    if _size({"Version": "2012-10-17", "Statement": [st]}) <= MANAGED_POLICY_CHARS - 200 \
            or not isinstance(st["Action"], list) or len(st["Action"]) < 2:
        return [st]
    half = len(st["Action"]) // 2
    return [*_split({**st, "Sid": st["Sid"] + "A", "Action": st["Action"][:half]}),
            *_split({**st, "Sid": st["Sid"] + "B", "Action": st["Action"][half:]})]


def documents(statements: Sequence[dict]) -> list[str]:
    """The statements packed, in order, into as few policy documents as fit IAM's
    managed-policy limit."""
    docs: list[list[dict]] = [[]]
    for part in (p for st in statements for p in _split(st)):
        if _size({"Version": "2012-10-17", "Statement": [*docs[-1], part]}) > \
                MANAGED_POLICY_CHARS:
            docs.append([])
        docs[-1].append(part)
    return [json.dumps({"Version": "2012-10-17", "Statement": d}, sort_keys=True)
            for d in docs if d]


def role_documents(role: str, scope: Scope) -> list[str]:
    """The managed policies of one role: `preview`, `drift` or `deploy`."""
    actions = {"preview": preview_actions, "drift": drift_actions,
               "deploy": every_action}[role]()
    statements = _statements(actions, scope)
    return documents([*statements, *state_statements(scope.state_bucket,
                                                     write=role == "deploy")])
