"""What each waiting thing of the program waits for, on create and on update, and the test that
proves the update path — because mocks never wait, and a wait that is right on create can hang
or pass too early on the next `pulumi up`.

One row per waiting resource or gate, and for the one that deliberately waits for nothing (the
Auto Scaling group); `proof` names pytest node ids (file::test) whose failure would show the
update path broken. Every other type the program creates is in `SHORT_WAITS`, with what its
create and update amount to; tests/unit/test_names.py fails on a type in neither.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Wait:
    thing: str  # the resource or command, as the program names it
    on_create: str
    on_update: str
    proof: tuple[str, ...]
    type: str = "command:local:Command"  # the resource type it is


WAITS: tuple[Wait, ...] = (
    Wait(
        thing="server gate (command.local.Command <name>-servers, components/readiness.py)",
        on_create=(
            "after the servers and the load balancer's listeners (a target is health-checked "
            "only once a listener forwards to it; the HTTPS one waits for the certificate). "
            "Single server: the instance running and cloud-init done (SSM or console), then "
            "healthy in the target group when load balanced. Fleet: the group has no instance "
            "refresh yet, so as many servers as its desired capacity of --launch-template-"
            "version, pending or in service, each then as a single server."),
        on_update=(
            "re-runs when its triggers (instance id or group name, launch template version, "
            "user-data hash; not the app ref, which is a rollout on the same servers) or its "
            "command line change. Fleet: waits while the "
            "group's latest instance refresh (the provider starts it and returns) is Pending/"
            "InProgress/Cancelling/RollbackInProgress/Baking; fails (exit 1) with its status, "
            "reason and percentage, and the rollback reason, when it ends other than "
            "Successful; then checks only the servers of the new version."),
        proof=(
            "tests/readiness/test_readiness_refresh.py::"
            "test_waits_while_the_refresh_runs_then_takes_the_new_version_s_servers",
            "tests/readiness/test_readiness_refresh.py::"
            "test_a_refresh_that_did_not_succeed_fails_the_gate_with_its_reason",
            "tests/readiness/test_readiness_refresh.py::"
            "test_only_servers_of_the_deployed_version_count",
            "tests/readiness/test_readiness_refresh.py::"
            "test_a_refresh_still_running_at_the_deadline_is_the_reason_given",
            "tests/readiness/test_readiness_aws.py::"
            "test_group_gate_waits_for_the_instance_refresh",
            "tests/readiness/test_readiness_aws.py::"
            "test_group_gate_fails_on_a_rolled_back_refresh",
        )),
    Wait(
        thing="URL gate (command.local.Command <name>-url, components/readiness.py)",
        on_create=(
            "after the server gate, the Elastic IP's association, the DNS records, the "
            "certificate validation, the listeners and the rollout: the health URL answers 200 "
            "(refused connections, 502/503/504 are 'not yet'), bounded by "
            "readinessTimeoutSeconds."),
        on_update=(
            "re-runs when the URL, the server gate's triggers or the code (appRef, the bundle's "
            "sha256) change, after the "
            "server gate and the rollout have re-run: it vouches for the new release, never "
            "the old one."),
        proof=(
            "tests/readiness/test_readiness_http.py::test_503_then_200_is_ready",
            "tests/unit/test_program.py::test_gates_for_the_servers_and_the_url",
            "tests/unit/test_program.py::test_every_stack_rolls_out_new_code_after_the_gates",
        )),
    Wait(
        thing="rollout (command.local.Command <name>-rollout, components/release.py)",
        on_create=(
            "after the server gate: each in-service server (or the single one) in turn runs its "
            "release script through SSM Run Command until Success, then is healthy in the "
            "target group; a fresh group's servers already read the ref at boot."),
        on_update=(
            "re-runs only when the code changes (appRef, the bundle's sha256): the same "
            "one-server-at-a-time release, the "
            "first failure or a timeout stops it (exit 1) naming the server, the servers after "
            "it keep their release."),
        proof=(
            "tests/release/test_rollout.py::"
            "test_asg_rollout_releases_on_each_in_service_server_in_order",
            "tests/release/test_rollout.py::"
            "test_the_first_failure_stops_the_rollout_and_quotes_the_servers_reason",
            "tests/unit/test_components.py::test_rollout_runs_only_when_the_ref_changes",
        )),
    Wait(
        thing="Auto Scaling group (aws:autoscaling/group:Group, components/fleet.py)",
        type="aws:autoscaling/group:Group",
        on_create=(
            "nothing: wait_for_capacity_timeout 0. The provider's ELB wait would count exactly "
            "N healthy servers, before any listener has health-checked them; the server gate "
            "waits instead, with reasons."),
        on_update=(
            "nothing: wait_for_elb_capacity would wait for exactly N on every update and time "
            "out once scaling moved the size; min_elb_capacity is create-only but meets the "
            "same listener problem. The provider starts an instance refresh and returns; the "
            "server gate waits for it."),
        proof=(
            "tests/unit/test_components.py::test_fleet_launch_template_group_scaling_and_refresh",
            "tests/unit/test_components.py::test_fixed_size_fleet_keeps_the_count_it_is_given",
            "tests/readiness/test_readiness_refresh.py::"
            "test_waits_while_the_refresh_runs_then_takes_the_new_version_s_servers",
        )),
    Wait(
        thing="certificate validation (aws:acm/certificateValidation, components/certificate.py)",
        type="aws:acm/certificateValidation:CertificateValidation",
        on_create=(
            "ACM says ISSUED for the DNS records we create (the provider's default create "
            "timeout, 75 minutes); the HTTPS listener takes the certificate from it, so no "
            "listener, and no gate, runs before the certificate is valid."),
        on_update=(
            "no update path: its inputs (the certificate, the record names) force a new "
            "validation, which waits the same way; an unchanged certificate waits for nothing."),
        proof=(
            "tests/unit/test_program.py::test_listeners_wait_for_the_validated_certificate",
            "tests/unit/test_replacement.py::test_a_second_run_changes_nothing",
        )),
    Wait(
        thing="Elastic IP association (aws:ec2/eipAssociation, components/webserver.py)",
        type="aws:ec2/eipAssociation:EipAssociation",
        on_create=(
            "waits for nothing itself; created after the server gate, so the address reaches "
            "a server only once it is ready."),
        on_update=(
            "a new server replaces the association (delete before create: seconds without the "
            "address), after the new server's gate passed; the old server is deleted after."),
        proof=("tests/unit/test_program.py::test_gates_for_the_servers_and_the_url",)),
    Wait(
        thing="single server (aws:ec2/instance:Instance, components/webserver.py)",
        type="aws:ec2/instance:Instance",
        on_create=(
            "the provider waits until EC2 says `running` (not until it has booted: the server "
            "gate waits for that)."),
        on_update=(
            "an instance-type change stops the server, changes it and waits until it runs "
            "again (the README's table: in place, a minute or two down); a disk size change "
            "waits for the volume modification; anything forcing a new instance is a create."),
        proof=("tests/unit/test_change_effects.py::test_the_readme_says_what_the_change_does",)),
    Wait(
        thing="load balancer (aws:lb/loadBalancer:LoadBalancer, components/loadbalancer.py)",
        type="aws:lb/loadBalancer:LoadBalancer",
        on_create="the provider waits until the ALB is `active` (minutes).",
        on_update=(
            "a change of subnets or security groups waits until it is `active` again; a no-op "
            "`up` changes neither (so it waits for nothing)."),
        proof=("tests/unit/test_replacement.py::test_a_second_run_changes_nothing",)),
    Wait(
        thing="database (aws:rds/instance:Instance, components/database.py)",
        type="aws:rds/instance:Instance",
        on_create=(
            "the provider waits until RDS says `available` (or `storage-optimization`) three "
            "polls running, after a minute's delay: create timeout 40m by default, update 80m, "
            "delete 60m (internal/service/rds/instance.go; our customTimeouts may only raise "
            "them). The master password's secret exists once it is available."),
        on_update=(
            "every ModifyDBInstance (class, storage, Multi-AZ, version, parameter group, "
            "windows) is retried while the instance is busy, then waited for until `available` "
            "again within the update timeout; with applyImmediately it is applied now, so the "
            "wait covers the change (without it the change waits for the maintenance window "
            "and `up` returns at once, the old settings still in force). A new engine version "
            "is such an in-place upgrade; a downgrade is refused by RDS. A second `up` with no "
            "change modifies nothing and waits for nothing."),
        proof=(
            "tests/unit/test_datastores.py::"
            "test_the_database_waits_with_timeouts_that_cover_the_providers",
            "tests/unit/test_datastores.py::test_database_changes_apply_immediately",
            "tests/unit/test_provider_model.py::"
            "test_a_database_upgrade_is_in_place_and_a_new_engine_replaces_it",
        )),
    Wait(
        thing="memcached cache (aws:elasticache/cluster:Cluster, components/cache.py)",
        type="aws:elasticache/cluster:Cluster",
        on_create=(
            "the provider waits until the cluster is `available` (creating/modifying/"
            "snapshotting/rebooting are pending): 40 minutes, fixed in "
            "internal/service/elasticache/cluster.go, which has no timeouts block, so "
            "customTimeouts do not change it."),
        on_update=(
            "ModifyCacheCluster (node count, version, parameter group, security groups, "
            "window), then `available` again within 80 fixed minutes, applied now with "
            "applyImmediately. A new memcached node type or an older version is a new cluster, "
            "not an update: deleted first (its clusterId stays, and the bridge replaces an "
            "explicitly named resource delete-before-create), then created empty."),
        proof=(
            "tests/unit/test_datastores.py::test_cache_changes_apply_immediately",
            "tests/unit/test_provider_model.py::"
            "test_a_memcached_node_type_replaces_the_cluster_and_a_valkey_one_does_not",
        )),
    Wait(
        thing="valkey cache (aws:elasticache/replicationGroup, components/cache.py)",
        type="aws:elasticache/replicationGroup:ReplicationGroup",
        on_create=(
            "the provider waits until the group is `available` after 30 seconds: create "
            "timeout 60m by default, update 40m, delete 45m "
            "(internal/service/elasticache/replication_group.go); every refresh also waits for "
            "`available` (the update timeout), since its tags cannot be read before."),
        on_update=(
            "each step (replica count up, ModifyReplicationGroup, AUTH token, replica count "
            "down) waits for `available` before and after, each within the update timeout; "
            "applyImmediately applies them now. A newer version is in place, an older one or "
            "another engine than redis to valkey replaces the group."),
        proof=(
            "tests/unit/test_datastores.py::"
            "test_the_cache_waits_with_timeouts_that_cover_the_providers",
            "tests/unit/test_datastores.py::test_cache_changes_apply_immediately",
            "tests/unit/test_provider_model.py::"
            "test_a_cache_version_downgrade_replaces_and_an_upgrade_does_not",
        )),
    Wait(
        thing="the app's image (docker_build.Image <name>-image, components/image.py)",
        type="docker-build:index:Image",
        on_create=(
            "after the ECR repository and its lifecycle rule: buildx builds appSource's "
            "Dockerfile for the servers' platform and pushes it under the context's content "
            "hash; the create returns with the pushed manifest's digest. The release pointer "
            "(repository@digest) is written after it and the servers are created after the "
            "pointer, so a first boot pulls an image that exists."),
        on_update=(
            "an Update (never a replacement): a changed context (its hash), Dockerfile, "
            "platform or tag builds and pushes again; an unchanged one does nothing (a new ECR "
            "token is ignored by its Diff). A new digest changes the pointer and the rollout's "
            "trigger, so running servers release it; the same code is the same tag, which the "
            "repository's immutable tags hold to one image."),
        proof=(
            "tests/unit/test_image.py::test_servers_boot_after_the_image_is_pushed",
            "tests/unit/test_image.py::test_new_code_is_a_new_tag_and_a_new_release",
        )),
)

# Types whose create and update wait at most for AWS to show the resource (seconds), alike on
# create and update, and for nothing the program or the servers do.
SHORT_WAITS: dict[str, str] = {
    "aws:acm/certificate:Certificate": "RequestCertificate returns at once; validation waits",
    "aws:autoscaling/policy:Policy": "PutScalingPolicy",
    "aws:iam/policy:Policy": "CreatePolicy; an update is CreatePolicyVersion (the oldest of 5 "
                             "deleted first)",
    "aws:iam/openIdConnectProvider:OpenIdConnectProvider": "CreateOpenIDConnectProvider",
    "aws:cloudwatch/dashboard:Dashboard": "PutDashboard",
    "aws:cloudwatch/logGroup:LogGroup": "CreateLogGroup, PutRetentionPolicy",
    "aws:cloudwatch/metricAlarm:MetricAlarm": "PutMetricAlarm",
    "aws:ec2/eip:Eip": "AllocateAddress",
    "aws:ecr/repository:Repository":
        "CreateRepository (the provider retries the read until it shows); delete waits <= 20m",
    "aws:ecr/lifecyclePolicy:LifecyclePolicy": "PutLifecyclePolicy",
    "aws:ec2/internetGateway:InternetGateway": "create and attach",
    "aws:ec2/keyPair:KeyPair": "ImportKeyPair",
    "aws:ec2/launchTemplate:LaunchTemplate": "a new version; the group's refresh waits",
    "aws:ec2/routeTable:RouteTable": "the provider polls until the table is visible (seconds)",
    "aws:ec2/routeTableAssociation:RouteTableAssociation": "AssociateRouteTable",
    "aws:ec2/securityGroup:SecurityGroup": "CreateSecurityGroup (visible in seconds)",
    "aws:s3/bucket:Bucket": "CreateBucket (the provider retries until it is readable)",
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration":
        "PutBucketLifecycleConfiguration (the provider waits until it reads back)",
    "aws:s3/bucketObjectv2:BucketObjectv2": "PutObject",
    "aws:s3/bucketOwnershipControls:BucketOwnershipControls": "PutBucketOwnershipControls",
    "aws:s3/bucketPolicy:BucketPolicy": "PutBucketPolicy",
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": "PutPublicAccessBlock",
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration":
        "PutBucketEncryption",
    "aws:s3/bucketVersioning:BucketVersioning": "PutBucketVersioning",
    "aws:ec2/subnet:Subnet": "the provider polls until `available` (seconds)",
    "aws:ec2/vpc:Vpc": "the provider polls until `available` (seconds)",
    "aws:elasticache/subnetGroup:SubnetGroup": "CreateCacheSubnetGroup",
    "aws:rds/parameterGroup:ParameterGroup":
        "CreateDBParameterGroup, then ModifyDBParameterGroup in chunks of 20",
    "aws:rds/subnetGroup:SubnetGroup": "CreateDBSubnetGroup",
    "aws:secretsmanager/secret:Secret": "CreateSecret (the provider retries until it reads back)",
    "aws:secretsmanager/secretVersion:SecretVersion":
        "PutSecretValue (the provider retries until the version reads back)",
    "aws:iam/instanceProfile:InstanceProfile": "the provider retries until IAM shows it",
    "aws:iam/role:Role": "CreateRole; IAM propagation is seconds, the first boot retries",
    "aws:iam/rolePolicy:RolePolicy": "PutRolePolicy; servers are created after it",
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": "AttachRolePolicy; as above",
    "aws:lb/listener:Listener": "CreateListener (after the certificate validation)",
    "aws:lb/targetGroup:TargetGroup": "CreateTargetGroup",
    "aws:lb/targetGroupAttachment:TargetGroupAttachment": "RegisterTargets",
    "aws:route53/record:Record": "the provider waits for the change to be INSYNC (seconds)",
    "aws:sns/topic:Topic": "CreateTopic",
    "aws:sns/topicSubscription:TopicSubscription": "Subscribe; an e-mail confirms later",
    "aws:ssm/parameter:Parameter": "PutParameter; servers are created after it",
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": "AuthorizeSecurityGroupIngress",
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": "AuthorizeSecurityGroupEgress",
}
