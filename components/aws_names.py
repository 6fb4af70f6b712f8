"""AWS's rules for the physical names the program gives or lets the engine give, and `fit`,
which keeps a name as it is when it obeys them and otherwise makes a stable, hash-shortened one.

A resource without an explicit name is auto-named by the engine: its logical name, '-' and 7
random characters. So a logical name must leave 8 characters of room. `RULES` is also what the
offline harness applies to every registration (tests/unit/test_names.py): a new resource type
needs its row here.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

AUTONAME_SUFFIX = 8  # "-" + 7 random characters, added by the engine's auto-naming
_HASH = 6


@dataclass(frozen=True)
class NameRule:
    field: str  # the input (camelCase, as registered) that carries the name
    limit: int
    allowed: str  # a regex character class body: the characters AWS accepts
    source: str  # where AWS says so
    autonamed: bool = True  # the engine names it from the logical name when `field` is unset
    edges: str = ""  # characters a name may not begin or end with
    forbidden_prefixes: tuple[str, ...] = ()  # case-insensitive
    forbidden_suffixes: tuple[str, ...] = ()
    first: str = ""  # a regex character class body the first character must be in
    forbidden_substrings: tuple[str, ...] = ()  # e.g. RDS's and ElastiCache's "--"
    reserved: tuple[str, ...] = ()  # whole names AWS refuses, case-insensitive

    def problem(self, name: str) -> str | None:
        """Why AWS would refuse `name`, or None."""
        if not 1 <= len(name) <= self.limit:
            return f"{len(name)} characters, over {self.limit}"
        bad = sorted(set(re.sub(f"[{self.allowed}]", "", name)))
        if bad:
            return f"characters {''.join(bad)!r} are not allowed"
        if self.edges and (name[0] in self.edges or name[-1] in self.edges):
            return f"begins or ends with one of {self.edges!r}"
        if not self.first_ok(name):
            return f"begins with {name[0]!r}, not one of [{self.first}]"
        for substring in self.forbidden_substrings:
            if substring in name:
                return f"contains {substring!r}"
        if name.lower() in self.reserved:
            return f"{name!r} is reserved"
        for prefix in self.forbidden_prefixes:
            if name.lower().startswith(prefix):
                return f"begins with {prefix!r}"
        for suffix in self.forbidden_suffixes:
            if name.endswith(suffix):
                return f"ends with {suffix!r}"
        return None

    def first_ok(self, name: str) -> bool:
        return not self.first or re.match(f"[{self.first}]", name) is not None


_LB = "A-Za-z0-9-"
_IAM = r"\w+=,.@-"
_EC2_TEXT = r"A-Za-z0-9 ._\-:/()#,@\[\]+=&;{}!$*"  # security group names and descriptions
_ELB_DOC = "Elastic Load Balancing API Reference, {}: Name"
_LOWER_ID = "a-z0-9-"  # RDS's and ElastiCache's identifiers, as they store them: lowercase
_NO_DOUBLE_HYPHEN = {"edges": "-", "forbidden_substrings": ("--",)}


def _identifier(field: str, limit: int, source: str) -> NameRule:
    """An RDS or ElastiCache identifier. The program gives them all (autonamed=False), so `fit`
    checks the name itself, not a logical name plus the engine's suffix."""
    return NameRule(field, limit, _LOWER_ID, f"{source} (1-{limit} letters, digits or hyphens; "
                    "first a letter; no two consecutive hyphens; not ending with a hyphen; "
                    "stored in lowercase, and the provider takes only lowercase)",
                    autonamed=False, first="a-z", **_NO_DOUBLE_HYPHEN)


RULES: dict[str, tuple[NameRule, ...]] = {
    "aws:lb/loadBalancer:LoadBalancer": (NameRule(
        "name", 32, _LB, _ELB_DOC.format("CreateLoadBalancer"), edges="-",
        forbidden_prefixes=("internal-",)),),
    "aws:lb/targetGroup:TargetGroup": (NameRule(
        "name", 32, _LB, _ELB_DOC.format("CreateTargetGroup"), edges="-"),),
    "aws:autoscaling/group:Group": (NameRule(
        "name", 255, r"\x20-\x7e", "Amazon EC2 Auto Scaling API Reference, "
        "CreateAutoScalingGroup: AutoScalingGroupName (1-255)"),),
    "aws:autoscaling/policy:Policy": (NameRule(
        "name", 255, r"\x20-\x7e", "Amazon EC2 Auto Scaling API Reference, PutScalingPolicy: "
        "PolicyName (1-255)"),),
    "aws:ec2/launchTemplate:LaunchTemplate": (NameRule(
        "name", 128, r"A-Za-z0-9().\-/_", "Amazon EC2 API Reference, CreateLaunchTemplate: "
        "LaunchTemplateName (3-128, [a-zA-Z0-9\\(\\)\\.\\-/_]+)"),),
    "aws:ec2/securityGroup:SecurityGroup": (
        NameRule("name", 255, _EC2_TEXT, "Amazon EC2 API Reference, CreateSecurityGroup: "
                 "GroupName (255, a-zA-Z0-9 ._-:/()#,@[]+=&;{}!$*, not starting sg-)",
                 forbidden_prefixes=("sg-",)),
        NameRule("description", 255, _EC2_TEXT, "Amazon EC2 API Reference, "
                 "CreateSecurityGroup: GroupDescription", autonamed=False)),
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": (NameRule(
        "description", 255, _EC2_TEXT, "Amazon EC2 API Reference, IpRange: Description",
        autonamed=False),),
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": (NameRule(
        "description", 255, _EC2_TEXT, "Amazon EC2 API Reference, IpRange: Description",
        autonamed=False),),
    "aws:ec2/keyPair:KeyPair": (NameRule(
        "keyName", 255, r"\x20-\x7e", "Amazon EC2 API Reference, ImportKeyPair: KeyName "
        "(255 ASCII characters)"),),
    "aws:iam/role:Role": (
        NameRule("name", 64, _IAM, "IAM API Reference, CreateRole: RoleName (1-64, [\\w+=,.@-]+)"),
        NameRule("description", 1000, r"\t\n\r\x20-\x7e\u00a1-\u00ff", "IAM API Reference, "
                 "CreateRole: Description", autonamed=False)),
    "aws:iam/instanceProfile:InstanceProfile": (NameRule(
        "name", 128, _IAM, "IAM API Reference, CreateInstanceProfile: InstanceProfileName "
        "(1-128, [\\w+=,.@-]+)"),),
    "aws:iam/policy:Policy": (
        NameRule("name", 128, _IAM, "IAM API Reference, CreatePolicy: PolicyName (1-128, "
                 "[\\w+=,.@-]+)"),
        NameRule("description", 1000, r"\t\n\r\x20-\x7e\u00a1-\u00ff", "IAM API Reference, "
                 "CreatePolicy: Description", autonamed=False)),
    "aws:iam/rolePolicy:RolePolicy": (NameRule(
        "name", 128, _IAM, "IAM API Reference, PutRolePolicy: PolicyName (1-128, [\\w+=,.@-]+)"),),
    "aws:cloudwatch/logGroup:LogGroup": (NameRule(
        "name", 512, r"A-Za-z0-9._\-/#", "CloudWatch Logs API Reference, CreateLogGroup: "
        "logGroupName (1-512, [\\.\\-_/#A-Za-z0-9]+)"),),
    "aws:cloudwatch/metricAlarm:MetricAlarm": (NameRule(
        "name", 255, r"\x20-\x7e", "CloudWatch API Reference, PutMetricAlarm: AlarmName "
        "(1-255)"),),
    "aws:cloudwatch/dashboard:Dashboard": (NameRule(
        "dashboardName", 255, "A-Za-z0-9_-", "CloudWatch API Reference, PutDashboard: "
        "DashboardName (alphanumerics, '-' and '_', at most 255)", autonamed=False),),
    "aws:sns/topic:Topic": (NameRule(
        "name", 256, "A-Za-z0-9_-", "Amazon SNS API Reference, CreateTopic: Name (1-256 "
        "alphanumerics, hyphens and underscores)"),),
    "aws:ssm/parameter:Parameter": (
        NameRule("name", 1011, r"A-Za-z0-9_.\-/", "AWS Systems Manager API Reference, "
                 "PutParameter: Name (1-1011 of a-zA-Z0-9_.-/, not starting aws or ssm)",
                 autonamed=False, forbidden_prefixes=("aws", "ssm", "/aws", "/ssm")),
        NameRule("description", 1024, r"\x20-\x7e", "AWS Systems Manager API Reference, "
                 "PutParameter: Description (0-1024)", autonamed=False)),
    "aws:s3/bucket:Bucket": (NameRule(
        "bucket", 63, "a-z0-9-", "Amazon S3 User Guide, General purpose bucket naming rules "
        "(3-63 of a-z, 0-9, '.', '-'; begins and ends with a letter or digit; not starting xn--, "
        "sthree-, amzn-s3-demo-; not ending -s3alias, --ol-s3, .mrap, --x-s3, --table-s3; dots "
        "left out: they break TLS for virtual-hosted names)",
        autonamed=False, edges="-", forbidden_prefixes=("xn--", "sthree-", "amzn-s3-demo-"),
        forbidden_suffixes=("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")),),
    "aws:s3/bucketObjectv2:BucketObjectv2": (NameRule(
        "key", 1024, r"A-Za-z0-9!_.*'()/-", "Amazon S3 User Guide, Naming Amazon S3 objects (a "
        "key is up to 1,024 bytes of UTF-8; these are the characters safe everywhere)",
        autonamed=False),),
    "aws:acm/certificate:Certificate": (NameRule(
        "domainName", 64, "a-z0-9.*-", "AWS Certificate Manager API Reference, "
        "RequestCertificate: DomainName (the first name: at most 64 characters, it becomes "
        "the subject's CN)", autonamed=False),),
    "aws:rds/instance:Instance": (
        _identifier("identifier", 63, "Amazon RDS API Reference, CreateDBInstance: "
                    "DBInstanceIdentifier"),
        NameRule("finalSnapshotIdentifier", 255, "A-Za-z0-9-", "Amazon RDS API Reference, "
                 "DeleteDBInstance: FinalDBSnapshotIdentifier (1-255 letters, digits or hyphens; "
                 "first a letter; no two consecutive hyphens; not ending with a hyphen)",
                 autonamed=False, first="A-Za-z", **_NO_DOUBLE_HYPHEN)),
    "aws:rds/subnetGroup:SubnetGroup": (NameRule(
        "name", 255, "a-z0-9 ._-", "Amazon RDS API Reference, CreateDBSubnetGroup: "
        "DBSubnetGroupName (at most 255 letters, digits, spaces, periods, underscores or "
        "hyphens; not 'default'; the provider takes only lowercase)", autonamed=False,
        reserved=("default",)),),
    "aws:rds/parameterGroup:ParameterGroup": (_identifier(
        "name", 255, "Amazon RDS API Reference, CreateDBParameterGroup: DBParameterGroupName"),),
    "aws:elasticache/subnetGroup:SubnetGroup": (NameRule(
        "name", 255, _LOWER_ID, "Amazon ElastiCache API Reference, CreateCacheSubnetGroup: "
        "CacheSubnetGroupName (at most 255 alphanumeric characters or hyphens; stored in "
        "lowercase)", autonamed=False),),
    "aws:elasticache/cluster:Cluster": (_identifier(
        "clusterId", 50, "Amazon ElastiCache API Reference, CreateCacheCluster: CacheClusterId"),),
    "aws:elasticache/replicationGroup:ReplicationGroup": (_identifier(
        "replicationGroupId", 40, "Amazon ElastiCache API Reference, CreateReplicationGroup: "
        "ReplicationGroupId"),),
    "aws:secretsmanager/secret:Secret": (
        NameRule("name", 512, r"A-Za-z0-9/_+=.@-", "AWS Secrets Manager API Reference, "
                 "CreateSecret: Name (1-512 of letters, digits and /_+=.@-; not ending with a "
                 "hyphen and six characters, which look like the ARN's suffix: the engine's "
                 "auto-name ends with seven; a deleted secret's name stays taken for its "
                 "recovery window, so a replacement must not reuse it)"),
        NameRule("description", 2048, r"\x20-\x7e", "AWS Secrets Manager API Reference, "
                 "CreateSecret: Description (at most 2048 characters)", autonamed=False)),
    "aws:ecr/repository:Repository": (NameRule(
        "name", 256, "a-z0-9._/-", "Amazon ECR API Reference, CreateRepository: repositoryName "
        "(2-256 characters, pattern (?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*"
        ": lowercase, each separator between two alphanumerics)",
        autonamed=False, edges="._/-", first="a-z0-9",
        forbidden_substrings=("..", "__", "--", "//", "._", "_.", ".-", "-.", "_-", "-_")),),
}


def fit(text: str, rule: NameRule) -> str:
    """`text` when AWS accepts it (with room for the engine's suffix when auto-named); else
    its allowed characters, cut to fit, with a hash of the whole text: stable and distinct."""
    room = rule.limit - (AUTONAME_SUFFIX if rule.autonamed else 0)
    if rule.problem(text + ("-abcdefg" if rule.autonamed else "")) is None:  # as AWS sees it
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:_HASH]
    clean = re.sub(f"[^{rule.allowed}]", "-", text)
    for substring in rule.forbidden_substrings:  # "a--b" becomes "a-b"
        while substring in clean:
            clean = clean.replace(substring, substring[0])
    if (any(clean.lower().startswith(p) for p in rule.forbidden_prefixes)
            or not rule.first_ok(clean.lstrip(rule.edges or "-"))):
        clean = "w" + clean
    base = clean[:room - _HASH - 1].strip(rule.edges or "-")
    return f"{base}-{digest}" if base else digest


def rule_for(type_token: str, field: str = "name") -> NameRule:
    return next(r for r in RULES[type_token] if r.field == field)


def logical(type_token: str, text: str) -> str:
    """A logical name whose auto-name AWS accepts."""
    return fit(text, rule_for(type_token))
