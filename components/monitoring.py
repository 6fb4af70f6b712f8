"""Alarms, an alert topic, log groups with retention and a dashboard.

The alarm list is a pure function of the topology and the thresholds (`alarm_specs`); the
component binds each spec's symbolic dimensions (the server or group, the load balancer, the
certificate) to real IDs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from components import naming
from components.aws_names import fit, logical, rule_for
from components.config import MonitoringConfig
from components.topology import Topology

# Symbolic dimension values, bound to resources by the component.
SERVERS, LOAD_BALANCER, TARGET_GROUP, CERTIFICATE = "servers", "lb", "tg", "cert"
DATABASE, CACHE = "db", "cache"
GIB = 1024**3


@dataclass(frozen=True)
class DataStores:
    """What the data stores' alarms need to know: none by default."""

    database_storage_gib: int = 0  # 0: no database the stack creates
    database_max_connections: int = 0  # the instance class's default max_connections
    cache_engine: str = ""  # "": no cache

    @property
    def cache_cpu_metric(self) -> str:
        """valkey's work is on one thread: EngineCPUUtilization is that thread's, the host's
        CPU would hide it; memcached is multi-threaded, its host CPU is the measure."""
        return "EngineCPUUtilization" if self.cache_engine == "valkey" else "CPUUtilization"


@dataclass(frozen=True)
class AlarmSpec:
    key: str
    description: str
    namespace: str
    metric: str
    statistic: str
    comparison: str
    threshold: float
    period: int
    periods: int
    dimensions: Mapping[str, str]  # dimension name -> symbol
    recover: bool = False  # EC2 auto-recovery on a failed system check (a single server)
    extra: Mapping[str, str] = field(default_factory=dict)  # fixed dimensions


def alarm_specs(shape: Topology, m: MonitoringConfig,
                stores: DataStores = DataStores()) -> list[AlarmSpec]:
    fleet = shape.fleet
    who = {"AutoScalingGroupName": SERVERS} if fleet else {"InstanceId": SERVERS}
    gt = "GreaterThanThreshold"
    specs = [
        AlarmSpec("cpu-high", f"CPU above {m.cpu_percent}% for 15 minutes", "AWS/EC2",
                  "CPUUtilization", "Average", gt, m.cpu_percent, 300, 3, who),
        AlarmSpec("memory-high", f"memory above {m.memory_percent}% for 15 minutes",
                  naming.METRICS_NAMESPACE, "mem_used_percent", "Average", gt,
                  m.memory_percent, 300, 3, who),
        AlarmSpec("disk-full", f"root disk above {m.disk_percent}% full",
                  naming.METRICS_NAMESPACE, "disk_used_percent", "Maximum", gt,
                  m.disk_percent, 300, 1, who),
    ]
    if fleet:  # the group replaces a failed server itself; say so
        specs.append(AlarmSpec("status-check", "a server failed its EC2 status checks",
                               "AWS/EC2", "StatusCheckFailed", "Maximum", gt, 0, 60, 2, who))
    else:
        specs += [
            AlarmSpec("system-check", "host failure: EC2 recovers the server onto new hardware",
                      "AWS/EC2", "StatusCheckFailed_System", "Maximum", gt, 0, 60, 2, who,
                      recover=True),
            AlarmSpec("instance-check", "the server failed its instance status check",
                      "AWS/EC2", "StatusCheckFailed_Instance", "Maximum", gt, 0, 60, 3, who),
        ]
    if shape.load_balanced:
        lb = {"LoadBalancer": LOAD_BALANCER, "TargetGroup": TARGET_GROUP}
        specs += [
            AlarmSpec("http-5xx", f"more than {m.http_5xx_percent}% of requests failed with 5xx "
                      "over 5 minutes", "AWS/ApplicationELB", "5xx-rate", "Sum", gt,
                      m.http_5xx_percent, 300, 1, {"LoadBalancer": LOAD_BALANCER}),
            AlarmSpec("unhealthy-hosts", "a server is failing the load balancer's health check",
                      "AWS/ApplicationELB", "UnHealthyHostCount", "Maximum", gt, 0, 60, 3, lb),
        ]
    if shape.certificate == "acm":
        specs.append(AlarmSpec(
            "certificate-expiry", f"the TLS certificate expires within {m.cert_expiry_days} days",
            "AWS/CertificateManager", "DaysToExpiry", "Minimum", "LessThanThreshold",
            m.cert_expiry_days, 86400, 1, {"CertificateArn": CERTIFICATE}))
    return specs + data_store_specs(m, stores)


def data_store_specs(m: MonitoringConfig, stores: DataStores) -> list[AlarmSpec]:
    """The database's CPU, free storage and connections; the cache's CPU
    (`DataStores.cache_cpu_metric`) and evictions, on its first node (valkey's primary unless
    it failed over)."""
    gt, db, cache = "GreaterThanThreshold", {"DBInstanceIdentifier": DATABASE}, {
        "CacheClusterId": CACHE}
    specs = []
    if stores.database_storage_gib:
        free = stores.database_storage_gib * m.db_free_storage_percent / 100
        connections = int(stores.database_max_connections * m.db_connections_percent / 100)
        specs += [
            AlarmSpec("db-cpu-high", f"database CPU above {m.cpu_percent}% for 15 minutes",
                      "AWS/RDS", "CPUUtilization", "Average", gt, m.cpu_percent, 300, 3, db),
            AlarmSpec("db-storage-low", f"database free storage below {free:g} GiB "
                      f"({m.db_free_storage_percent}% of the allocated)", "AWS/RDS",
                      "FreeStorageSpace", "Minimum", "LessThanThreshold", free * GIB, 300, 1, db),
            AlarmSpec("db-connections-high", f"database connections above {connections} "
                      f"({m.db_connections_percent}% of max_connections "
                      f"{stores.database_max_connections}) for 15 minutes", "AWS/RDS",
                      "DatabaseConnections", "Maximum", gt, connections, 300, 3, db),
        ]
    if stores.cache_engine:
        specs += [
            AlarmSpec("cache-cpu-high", f"cache CPU above {m.cpu_percent}% for 15 minutes",
                      "AWS/ElastiCache", stores.cache_cpu_metric, "Average", gt,
                      m.cpu_percent, 300, 3, cache),
            AlarmSpec("cache-evictions", f"cache evicting more than {m.cache_evictions} keys "
                      "per 5 minutes for 15 minutes (it is too small)", "AWS/ElastiCache",
                      "Evictions", "Sum", gt, m.cache_evictions, 300, 3, cache),
        ]
    return specs


def error_rate_queries(lb_suffix: str,
                       period: int) -> list[aws.cloudwatch.MetricAlarmMetricQueryArgs]:
    """5xx (from targets and from the ALB itself) as a percentage of requests."""
    def metric(id_: str, name: str) -> aws.cloudwatch.MetricAlarmMetricQueryArgs:
        return aws.cloudwatch.MetricAlarmMetricQueryArgs(
            id=id_, return_data=False, metric=aws.cloudwatch.MetricAlarmMetricQueryMetricArgs(
                namespace="AWS/ApplicationELB", metric_name=name, period=period, stat="Sum",
                dimensions={"LoadBalancer": lb_suffix}))
    return [metric("target5xx", "HTTPCode_Target_5XX_Count"),
            metric("elb5xx", "HTTPCode_ELB_5XX_Count"), metric("requests", "RequestCount"),
            aws.cloudwatch.MetricAlarmMetricQueryArgs(
                id="rate", return_data=True, label="5xx percent",
                expression="100 * (FILL(target5xx, 0) + FILL(elb5xx, 0)) / requests")]


def dashboard_body(shape: Topology, region: str, dims: Mapping[str, str],
                   stores: DataStores = DataStores()) -> str:
    servers = dims[SERVERS]
    key = "AutoScalingGroupName" if shape.fleet else "InstanceId"

    def graph(title: str, metrics: list[list], x: int, y: int) -> dict:
        return {"type": "metric", "x": x, "y": y, "width": 12, "height": 6,
                "properties": {"title": title, "region": region, "view": "timeSeries",
                               "stat": "Average", "period": 300, "metrics": metrics}}
    widgets = [
        graph("CPU %", [["AWS/EC2", "CPUUtilization", key, servers]], 0, 0),
        graph("Memory and disk %", [
            [naming.METRICS_NAMESPACE, "mem_used_percent", key, servers],
            [naming.METRICS_NAMESPACE, "disk_used_percent", key, servers]], 12, 0),
    ]
    if shape.load_balanced:
        lb = dims[LOAD_BALANCER]
        widgets += [
            graph("Requests and errors (sum)", [
                ["AWS/ApplicationELB", "RequestCount", "LoadBalancer", lb, {"stat": "Sum"}],
                ["AWS/ApplicationELB", "HTTPCode_Target_5XX_Count", "LoadBalancer", lb,
                 {"stat": "Sum"}]], 0, 6),
            graph("Response time (s) and healthy servers", [
                ["AWS/ApplicationELB", "TargetResponseTime", "LoadBalancer", lb,
                 {"stat": "p99"}],
                ["AWS/ApplicationELB", "HealthyHostCount", "LoadBalancer", lb, "TargetGroup",
                 dims[TARGET_GROUP]]], 12, 6),
        ]
    if stores.database_storage_gib:
        db = ["DBInstanceIdentifier", dims[DATABASE]]
        widgets += [
            graph("Database CPU % and connections", [
                ["AWS/RDS", "CPUUtilization", *db],
                ["AWS/RDS", "DatabaseConnections", *db, {"yAxis": "right"}]], 0, 12),
            graph("Database free storage (bytes)", [
                ["AWS/RDS", "FreeStorageSpace", *db, {"stat": "Minimum"}]], 12, 12)]
    if stores.cache_engine:
        node = ["CacheClusterId", dims[CACHE]]
        widgets.append(graph("Cache CPU % and evictions", [
            ["AWS/ElastiCache", stores.cache_cpu_metric, *node],
            ["AWS/ElastiCache", "Evictions", *node, {"stat": "Sum", "yAxis": "right"}]], 0, 18))
    return json.dumps({"widgets": widgets})


class LogGroups(pulumi.ComponentResource):
    """Where the servers' agent ships logs, with retention: made before any server boots (the
    agent may not create groups, see components/instance_role.py)."""

    groups: list[aws.cloudwatch.LogGroup]
    names: list[str]
    by_kind: dict[str, str]

    def __init__(self, name: str, *, names: Mapping[str, str], retention_days: int,
                 tags: dict[str, str], opts: pulumi.ResourceOptions | None = None):
        """`names`: each group's name by kind (`naming.log_groups`)."""
        super().__init__("webstack:monitoring:LogGroups", name, None, opts)
        self.groups = [
            aws.cloudwatch.LogGroup(f"{name}-{kind}", name=group, tags=tags,
                                    retention_in_days=retention_days,
                                    opts=pulumi.ResourceOptions(parent=self))
            for kind, group in names.items()]
        self.names = list(names.values())
        self.by_kind = dict(names)
        self.register_outputs({"names": self.names})


class Monitoring(pulumi.ComponentResource):
    topic_arn: pulumi.Output[str]
    dashboard_url: pulumi.Output[str]

    def __init__(self, name: str, shape: Topology, settings: MonitoringConfig, *, region: str,
                 tags: dict[str, str], servers: pulumi.Input[str],
                 lb_arn_suffix: pulumi.Input[str] | None = None,
                 tg_arn_suffix: pulumi.Input[str] | None = None,
                 certificate_arn: pulumi.Input[str] | None = None,
                 stores: DataStores = DataStores(),
                 database_id: pulumi.Input[str] | None = None,
                 cache_id: pulumi.Input[str] | None = None,
                 opts: pulumi.ResourceOptions | None = None):
        """`stores`, `database_id` (the instance identifier), `cache_id` (the node whose
        metrics the cache's alarms watch): with a database or cache the stack creates."""
        super().__init__("webstack:monitoring:Monitoring", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        topic = aws.sns.Topic(logical("aws:sns/topic:Topic", f"{name}-alerts"), tags=tags,
                              opts=child)
        for i, email in enumerate(settings.alert_emails):
            aws.sns.TopicSubscription(f"{name}-alerts-{i + 1}", topic=topic.arn,
                                      protocol="email", endpoint=email, opts=child)
        bound = {SERVERS: servers, LOAD_BALANCER: lb_arn_suffix, TARGET_GROUP: tg_arn_suffix,
                 CERTIFICATE: certificate_arn, DATABASE: database_id, CACHE: cache_id}
        for spec in alarm_specs(shape, settings, stores):
            actions: list[pulumi.Input[str]] = [topic.arn]
            if spec.recover:
                actions.append(f"arn:aws:automate:{region}:ec2:recover")
            math = spec.metric == "5xx-rate"  # a metric-math expression over ALB metrics
            aws.cloudwatch.MetricAlarm(
                f"{name}-{spec.key}",
                alarm_description=f"{name}: {spec.description}",
                comparison_operator=spec.comparison, threshold=spec.threshold,
                evaluation_periods=spec.periods, alarm_actions=actions, ok_actions=[topic.arn],
                treat_missing_data="missing",
                namespace=None if math else spec.namespace,
                metric_name=None if math else spec.metric,
                statistic=None if math else spec.statistic,
                period=None if math else spec.period,
                dimensions=None if math else {k: bound[v] for k, v in spec.dimensions.items()},
                metric_queries=pulumi.Output.from_input(lb_arn_suffix).apply(
                    lambda lb, p=spec.period: error_rate_queries(str(lb), p)) if math else None,
                tags=tags, opts=child)

        dashboard = aws.cloudwatch.Dashboard(
            f"{name}-dashboard", dashboard_name=fit(
                name, rule_for("aws:cloudwatch/dashboard:Dashboard", "dashboardName")),
            dashboard_body=pulumi.Output.all(**{k: v for k, v in bound.items()
                                                if v is not None}).apply(
                lambda dims: dashboard_body(shape, region, dims, stores)),
            opts=child)
        self.topic_arn = topic.arn
        self.dashboard_url = dashboard.dashboard_name.apply(
            lambda n: f"https://{region}.console.aws.amazon.com/cloudwatch/home"
                      f"?region={region}#dashboards:name={n}")
        self.register_outputs({"topic_arn": self.topic_arn, "dashboard_url": self.dashboard_url})
