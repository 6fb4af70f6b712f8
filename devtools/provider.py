"""What the real provider would do with a change, modelled offline: mocks compute no diff.

`REPLACES` lists, per resource type the program creates, the top-level inputs whose change
forces a replacement (the Terraform AWS provider's schema marks them "Forces new resource";
pulumi-aws v7 bridges it unchanged: its registry docs for each resource say the same), and
`diff` compares two recorded runs the way the engine would: by URN, honouring ignore_changes.
A type missing here fails tests/unit/test_replacement.py, so a new type comes with its row.
`REPLACES_IF` holds the provider's conditional cases (a CustomizeDiff's ForceNewIf), which a
set of names cannot say: each is decided from the resource's old and new inputs.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass

import pulumi

from devtools.mockrun import MockRun

_DOCS = "registry.terraform.io/providers/hashicorp/aws/latest/docs/resources/{}"

# type: (inputs that force a replacement, the resource's provider docs page)
REPLACES: dict[str, tuple[frozenset[str], str]] = {
    "aws:acm/certificate:Certificate": (frozenset({
        "domainName", "subjectAlternativeNames", "validationMethod", "keyAlgorithm",
        "certificateAuthorityArn"}), "acm_certificate"),
    "aws:acm/certificateValidation:CertificateValidation": (frozenset({
        "certificateArn", "validationRecordFqdns"}), "acm_certificate_validation"),
    "aws:autoscaling/group:Group": (frozenset({"name", "namePrefix"}), "autoscaling_group"),
    "aws:autoscaling/policy:Policy": (frozenset({"name", "autoscalingGroupName"}),
                                      "autoscaling_policy"),
    "aws:cloudwatch/dashboard:Dashboard": (frozenset({"dashboardName"}),
                                           "cloudwatch_dashboard"),
    "aws:cloudwatch/logGroup:LogGroup": (frozenset({"name", "namePrefix", "logGroupClass"}),
                                         "cloudwatch_log_group"),
    "aws:cloudwatch/metricAlarm:MetricAlarm": (frozenset({"name"}), "cloudwatch_metric_alarm"),
    "aws:ec2/eip:Eip": (frozenset({"domain", "address", "networkBorderGroup", "publicIpv4Pool",
                                   "customerOwnedIpv4Pool"}), "eip"),
    "aws:ec2/eipAssociation:EipAssociation": (frozenset({
        "allocationId", "instanceId", "networkInterfaceId", "privateIpAddress", "publicIp",
        "allowReassociation"}), "eip_association"),
    # userDataBase64 forces a new instance only with userDataReplaceOnChange (we set it).
    "aws:ec2/instance:Instance": (frozenset({
        "ami", "availabilityZone", "subnetId", "associatePublicIpAddress", "keyName",
        "privateIp", "placementGroup", "tenancy", "cpuOptions", "hibernation", "launchTemplate",
        "ebsBlockDevices", "ephemeralBlockDevices", "networkInterfaces", "userDataBase64",
        "userData", "rootBlockDevice.encrypted", "rootBlockDevice.kmsKeyId"}), "instance"),
    "aws:ec2/internetGateway:InternetGateway": (frozenset(), "internet_gateway"),
    "aws:ec2/keyPair:KeyPair": (frozenset({"keyName", "keyNamePrefix", "publicKey"}),
                                "key_pair"),
    # Other changes make a new version; the group's instance refresh then replaces servers.
    "aws:ec2/launchTemplate:LaunchTemplate": (frozenset({"name", "namePrefix"}),
                                              "launch_template"),
    "aws:ec2/routeTable:RouteTable": (frozenset({"vpcId"}), "route_table"),
    "aws:ec2/routeTableAssociation:RouteTableAssociation": (frozenset({
        "subnetId", "gatewayId"}), "route_table_association"),
    "aws:ec2/securityGroup:SecurityGroup": (frozenset({
        "name", "namePrefix", "description", "vpcId"}), "security_group"),
    "aws:ec2/subnet:Subnet": (frozenset({
        "availabilityZone", "availabilityZoneId", "cidrBlock", "vpcId", "outpostArn"}),
        "subnet"),
    "aws:ec2/vpc:Vpc": (frozenset({"cidrBlock", "ipv4IpamPoolId", "ipv4NetmaskLength"}), "vpc"),
    # ForceNew in internal/service/elasticache/cluster.go; engineVersion (a downgrade) and
    # nodeType (memcached cannot scale vertically) replace it only conditionally: REPLACES_IF.
    "aws:elasticache/cluster:Cluster": (frozenset({
        "availabilityZone", "clusterId", "engine", "networkType", "outpostMode", "port",
        "preferredOutpostArn", "replicationGroupId", "snapshotArns", "snapshotName",
        "subnetGroupName", "transitEncryptionEnabled"}), "elasticache_cluster"),
    # internal/service/elasticache/replication_group.go (v6); engine, engineVersion and
    # transitEncryptionEnabled only conditionally: REPLACES_IF. A new authToken is an in-place
    # ModifyReplicationGroup (its authTokenUpdateStrategy says how).
    "aws:elasticache/replicationGroup:ReplicationGroup": (frozenset({
        "atRestEncryptionEnabled", "dataTieringEnabled", "globalReplicationGroupId", "kmsKeyId",
        "networkType", "port", "replicationGroupId", "securityGroupNames", "snapshotArns",
        "snapshotName", "subnetGroupName"}), "elasticache_replication_group"),
    # internal/service/elasticache/subnet_group.go: subnets and description change in place.
    "aws:elasticache/subnetGroup:SubnetGroup": (frozenset({"name"}), "elasticache_subnet_group"),
    "aws:iam/instanceProfile:InstanceProfile": (frozenset({"name", "namePrefix", "path"}),
                                                "iam_instance_profile"),
    "aws:iam/role:Role": (frozenset({"name", "namePrefix", "path"}), "iam_role"),
    # the ci stack's (components/ci.py): IAM has no UpdatePolicy for a description (a new
    # document is a new default version, in place)
    "aws:iam/policy:Policy": (frozenset({"name", "namePrefix", "path", "description"}),
                              "iam_policy"),
    # the issuer URL names the provider; the client ids are modelled as replacing too (the
    # conservative reading: an audience change is rare and a replacement only re-creates it)
    "aws:iam/openIdConnectProvider:OpenIdConnectProvider": (frozenset({"url", "clientIdLists"}),
                                                            "iam_openid_connect_provider"),
    "aws:iam/rolePolicy:RolePolicy": (frozenset({"name", "namePrefix", "role"}),
                                      "iam_role_policy"),
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": (frozenset({"role", "policyArn"}),
                                                          "iam_role_policy_attachment"),
    "aws:lb/listener:Listener": (frozenset({"loadBalancerArn"}), "lb_listener"),
    "aws:lb/loadBalancer:LoadBalancer": (frozenset({
        "name", "namePrefix", "internal", "loadBalancerType", "customerOwnedIpv4Pool"}), "lb"),
    "aws:lb/targetGroup:TargetGroup": (frozenset({
        "name", "namePrefix", "port", "protocol", "protocolVersion", "targetType", "vpcId",
        "ipAddressType"}), "lb_target_group"),
    "aws:lb/targetGroupAttachment:TargetGroupAttachment": (frozenset({
        "targetGroupArn", "targetId", "port", "availabilityZone"}), "lb_target_group_attachment"),
    # internal/service/rds/instance.go. `identifier` is not ForceNew since provider v5: a new
    # one renames the instance in place (ModifyDBInstance NewDBInstanceIdentifier), which
    # changes its address. engineVersion is an in-place ModifyDBInstance (a new major version
    # needs allowMajorVersionUpgrade); RDS refuses a downgrade, so that `up` fails and nothing
    # is replaced. instanceClass, storage, multiAz, dbSubnetGroupName, vpcSecurityGroupIds and
    # parameterGroupName are ModifyDBInstance too (applyImmediately: now, else in the window).
    "aws:rds/instance:Instance": (frozenset({
        "availabilityZone", "backupTarget", "characterSetName", "customIamInstanceProfile",
        "dbName", "engine", "kmsKeyId", "ncharCharacterSetName", "restoreToPointInTime",
        "s3Import", "snapshotIdentifier", "storageEncrypted", "timezone", "username"}),
        "db_instance"),
    # internal/service/rds/parameter_group.go: the description too. An explicit name makes a
    # replacement delete-before-create, which RDS refuses while an instance uses the group: a
    # new family needs a new name (a new resource), never a replacement.
    "aws:rds/parameterGroup:ParameterGroup": (frozenset({
        "name", "namePrefix", "family", "description"}), "db_parameter_group"),
    # internal/service/rds/subnet_group.go: subnets and description change in place.
    "aws:rds/subnetGroup:SubnetGroup": (frozenset({"name", "namePrefix"}), "db_subnet_group"),
    "aws:route53/record:Record": (frozenset({"zoneId", "name", "type", "setIdentifier"}),
                                  "route53_record"),
    "aws:s3/bucket:Bucket": (frozenset({"bucket", "bucketPrefix", "objectLockEnabled",
                                        "bucketNamespace"}), "s3_bucket"),
    # The bucket's configuration resources: a new bucket only replaces them.
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": (frozenset({
        "bucket", "expectedBucketOwner"}), "s3_bucket_lifecycle_configuration"),
    "aws:s3/bucketOwnershipControls:BucketOwnershipControls": (frozenset({"bucket"}),
                                                               "s3_bucket_ownership_controls"),
    "aws:s3/bucketPolicy:BucketPolicy": (frozenset({"bucket"}), "s3_bucket_policy"),
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": (frozenset({"bucket"}),
                                                               "s3_bucket_public_access_block"),
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": (
        frozenset({"bucket", "expectedBucketOwner"}),
        "s3_bucket_server_side_encryption_configuration"),
    "aws:s3/bucketVersioning:BucketVersioning": (frozenset({"bucket", "expectedBucketOwner"}),
                                                 "s3_bucket_versioning"),
    # A new artefact is a new key (content-addressed): a new object, the old one retained. The
    # app's bundle keeps its key: new content (`source`, a content-addressed path) is an update,
    # a PutObject that makes a new S3 version. Only bucket and key are ForceNew
    # (internal/service/s3/object.go); deleting the resource deletes every version of its key.
    "aws:s3/bucketObjectv2:BucketObjectv2": (frozenset({"bucket", "key"}), "s3_object"),
    # internal/service/secretsmanager/secret.go: description and kmsKeyId are UpdateSecret.
    "aws:secretsmanager/secret:Secret": (frozenset({"name", "namePrefix"}),
                                         "secretsmanager_secret"),
    # internal/service/secretsmanager/secret_version.go: a new value is a new version (the
    # new one becomes AWSCURRENT, then the old one loses its labels).
    "aws:secretsmanager/secretVersion:SecretVersion": (frozenset({
        "secretId", "secretString", "secretBinary"}), "secretsmanager_secret_version"),
    "aws:sns/topic:Topic": (frozenset({"name", "namePrefix", "fifoTopic"}), "sns_topic"),
    "aws:sns/topicSubscription:TopicSubscription": (frozenset({
        "topic", "protocol", "endpoint"}), "sns_topic_subscription"),
    # name and data_type are ForceNew; so is tier, but only from Advanced down to Standard (a
    # CustomizeDiff in internal/service/ssm/parameter.go): ours never changes tier. A new value
    # (the release pointer, a secret) is an in-place PutParameter with Overwrite.
    "aws:ssm/parameter:Parameter": (frozenset({"name", "dataType"}), "ssm_parameter"),
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": (frozenset({
        "securityGroupId"}), "vpc_security_group_ingress_rule"),
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": (frozenset({
        "securityGroupId"}), "vpc_security_group_egress_rule"),
    # internal/service/ecr/repository.go: name and encryption_configuration are ForceNew; tag
    # mutability and scanning are Put* calls in place.
    "aws:ecr/repository:Repository": (frozenset({"name", "encryptionConfigurations"}),
                                      "ecr_repository"),
    # internal/service/ecr/lifecycle_policy.go: no Update, both inputs ForceNew (a replacement is
    # another PutLifecyclePolicy on the same repository).
    "aws:ecr/lifecyclePolicy:LifecyclePolicy": (frozenset({"repository", "policy"}),
                                                "ecr_lifecycle_policy"),
    # pulumi-docker-build's Image.Diff (provider/internal/image.go): every input change is an
    # Update, a new build and push (registry passwords are ignored, so a new ECR token is no
    # change); its Delete leaves pushed tags in the registry.
    "docker-build:index:Image": (frozenset(), ""),
    # pulumi-command: `triggers` replace (the command runs again); any other change updates.
    "command:local:Command": (frozenset({"triggers"}), ""),
}


Inputs = dict[str, object]


def _version(text: object) -> tuple[int, ...]:
    """An engine version as the provider orders them: "6.x" is the newest 6 (normalizeEngineVersion
    in internal/service/elasticache/engine_version.go)."""
    return tuple(sys.maxsize if part == "x" else int(part) for part in str(text).split("."))


def _downgrade(old: Inputs, new: Inputs) -> bool:
    """customizeDiffEngineVersionForceNewOnDowngrade: an older engineVersion replaces; a newer
    one is an in-place upgrade. Unset on either side is no change (the input is computed)."""
    before, after = old.get("engineVersion"), new.get("engineVersion")
    return bool(before and after) and _version(after) < _version(before)


def _engine_change(old: Inputs, new: Inputs) -> bool:
    """customizeDiffEngineForceNewOnDowngrade: only redis (the default) to valkey is in place."""
    return (old.get("engine") or "redis", new.get("engine")) != ("redis", "valkey")


def _transit_before_705(old: Inputs, new: Inputs) -> bool:
    """Before engine 7.0.5, transit encryption is set only at creation (a ForceNewIf on the
    engine_version_actual, which the configured major.minor stands for offline)."""
    return _version(old.get("engineVersion") or "0") < (7, 0, 5)


# type: {input: whether its change replaces the resource, given (old inputs, new inputs)}
REPLACES_IF: dict[str, dict[str, Callable[[Inputs, Inputs], bool]]] = {
    "aws:elasticache/cluster:Cluster": {
        "engineVersion": _downgrade,
        # clusterForceNewOnMemcachedNodeTypeChange: a new memcached node type is a new cluster
        # (empty, at a new address); redis's scales in place
        "nodeType": lambda old, new: new.get("engine") == "memcached",
    },
    "aws:elasticache/replicationGroup:ReplicationGroup": {
        "engineVersion": _downgrade, "engine": _engine_change,
        "transitEncryptionEnabled": _transit_before_705,
    },
}


def docs(type_token: str) -> str:
    page = REPLACES[type_token][1]
    return _DOCS.format(page) if page else "pulumi.com/registry/packages/command"


@dataclass(frozen=True)
class Change:
    urn: str
    type: str
    prop: str  # a top-level input, or "rootBlockDevice.encrypted" style for nested ones
    replaces: bool


def _value(value: object) -> object:
    """An input as the engine compares it: an asset by what it names (the engine diffs a
    FileAsset by its content's hash; ours are content-addressed paths), not by identity."""
    if isinstance(value, pulumi.FileAsset):
        return f"FileAsset({value.path})"
    return value


def _flat(inputs: dict) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in inputs.items():
        out[key] = _value(value)
        if isinstance(value, dict):
            for sub, v in value.items():
                out[f"{key}.{sub}"] = v
    return out


def diff(before: MockRun, after: MockRun) -> tuple[set[str], set[str], list[Change]]:
    """(URNs only in `before`: deleted, URNs only in `after`: created, changed inputs)."""
    old, new = before.by_urn(), after.by_urn()
    changes = []
    for urn in sorted(set(old) & set(new)):
        a, b = old[urn], new[urn]
        if not b.custom:
            continue
        forcing, conditional = REPLACES[b.type][0], REPLACES_IF.get(b.type, {})
        ignored = set(b.ignore_changes)
        fa, fb = _flat(a.inputs), _flat(b.inputs)
        for prop in sorted(set(fa) | set(fb)):
            if prop.split(".")[0] in ignored or fa.get(prop) == fb.get(prop):
                continue
            if "." in prop and prop not in forcing:
                continue  # the top-level entry reports it
            replaces = prop in forcing or (prop in conditional
                                           and conditional[prop](a.inputs, b.inputs))
            changes.append(Change(urn, b.type, prop, replaces))
    return set(old) - set(new), set(new) - set(old), changes


_EFFECTS = ("none", "release", "in place", "rolling", "replaced", "new")  # mildest first


def _effect(change: Change) -> str:
    if change.type == "aws:ec2/instance:Instance":
        return "replaced" if change.replaces else "in place"
    if change.type == "aws:ec2/launchTemplate:LaunchTemplate":
        return "rolling"
    if change.type == "aws:autoscaling/group:Group":
        return "in place"
    if change.type == "command:local:Command" and change.urn.endswith("-rollout"):
        return "release"
    return "none"


def server_effect(before: MockRun, after: MockRun) -> str:
    """What a change does to the servers, in the words of the README's table: `new` (the
    network under them changes: everything is created anew), `replaced` (a single server:
    a new one, which takes the address once healthy), `rolling` (a fleet's new template
    version: the instance refresh), `in place` (the running servers are updated), `release`
    (only the app's release: the rollout), `none`."""
    deleted, created, changes = diff(before, after)
    moved = {urn.split("::")[-2].rsplit("$", 1)[-1] for urn in deleted | created}
    if "aws:ec2/vpc:Vpc" in moved or any(c.type == "aws:ec2/vpc:Vpc" and c.replaces
                                         for c in changes):
        return "new"
    effects = {_effect(c) for c in changes} | {"none"}
    if "aws:ec2/instance:Instance" in moved:
        effects.add("replaced")
    return max(effects, key=_EFFECTS.index)
