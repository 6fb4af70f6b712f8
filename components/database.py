"""The app's RDS database: PostgreSQL or MySQL in the private subnets, reachable only from the
servers' security group, encrypted, backed up, protected from deletion, and with a master
password that RDS generates, keeps in Secrets Manager and rotates, so it is never in the
program, its state, the user-data or the outputs.

What each setting becomes is a pure function (`instance_plan`), tested without Pulumi; the
component only wires it. Servers find the database through an SSM parameter (`discovery`),
not the user-data, so a new endpoint or secret reaches them at the next app start.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components.aws_names import fit, rule_for
from components.config import DatabaseConfig

INSTANCE = "aws:rds/instance:Instance"
# RDS's windows, in UTC: backups first, then maintenance, both away from European and American
# working hours; they must not overlap.
BACKUP_WINDOW = "03:00-04:00"
MAINTENANCE_WINDOW = "sun:04:30-sun:05:30"
TIMEOUTS = pulumi.CustomTimeouts(create="60m", update="80m", delete="60m")


def family(db: DatabaseConfig) -> str:
    """The parameter group family of the engine's major version (postgres17, mysql8.4)."""
    return f"{db.engine}{db.version}"


def parameters(db: DatabaseConfig) -> list[dict[str, str]]:
    """Ours on top of RDS's defaults: PostgreSQL refuses unencrypted connections (libpq's
    default sslmode, prefer, already asks for TLS; DATABASE_URL says require); both log slow
    statements. MySQL keeps plain connections allowed: common drivers (PyMySQL) do not ask
    for TLS unless told, and RDS's certificate must be given to them for verification."""
    slow = ([{"name": "log_min_duration_statement", "value": "1000"}]
            if db.engine == "postgres" else
            [{"name": "slow_query_log", "value": "1"}, {"name": "long_query_time", "value": "1"}])
    force_tls = ([{"name": "rds.force_ssl", "value": "1"}] if db.engine == "postgres" else [])
    return [*force_tls, *slow]


def instance_plan(db: DatabaseConfig, identifier: str, instance_class: str) -> dict[str, Any]:
    """The instance's inputs that follow from the settings alone."""
    return {
        "identifier": identifier, "engine": db.engine, "engine_version": db.version,
        "instance_class": instance_class, "allocated_storage": db.storage_gib,
        "max_allocated_storage": db.max_storage_gib or None, "storage_type": "gp3",
        "storage_encrypted": True, "db_name": db.name, "username": db.user,
        # RDS makes the password, keeps it in Secrets Manager (its own KMS key) and rotates it
        "manage_master_user_password": True, "multi_az": db.multi_az,
        "backup_retention_period": db.backup_days, "backup_window": BACKUP_WINDOW,
        "maintenance_window": MAINTENANCE_WINDOW, "copy_tags_to_snapshot": True,
        "publicly_accessible": False, "deletion_protection": db.protect,
        "skip_final_snapshot": not db.final_snapshot,
        "final_snapshot_identifier": final_snapshot(identifier) if db.final_snapshot else None,
        # minor versions in the maintenance window; a new major version only when asked
        # (databaseVersion), as an in-place upgrade
        "auto_minor_version_upgrade": True, "allow_major_version_upgrade": True,
        # `pulumi up` converges now rather than at the next maintenance window; a class or
        # storage change briefly interrupts a Single-AZ instance (Multi-AZ fails over)
        "apply_immediately": True,
    }


def final_snapshot(identifier: str) -> str:
    """The snapshot RDS takes when the instance is deleted: named for the instance, so the
    stack's data is found by name after a destroy."""
    return fit(f"{identifier}-final", rule_for(INSTANCE, "finalSnapshotIdentifier"))


def discovery(engine: str, host: str, port: int, name: str, secret_arn: str) -> str:
    """The database parameter's value: where it is and which secret holds its credentials."""
    return json.dumps({"engine": engine, "host": host, "port": port, "name": name,
                       "secret": secret_arn}, sort_keys=True)


def byo_discovery(url_secret: str) -> str:
    """The database parameter's value for a database the user brings: only the secret."""
    return json.dumps({"url_secret": url_secret}, sort_keys=True)


@dataclass(frozen=True)
class DatabaseArgs:
    instance_class: str  # from sizing
    subnet_ids: pulumi.Input[list[str]]  # the private subnets, in two or more zones
    security_group_id: pulumi.Input[str]  # the firewall's "db" group
    tags: dict[str, str]


class Database(pulumi.ComponentResource):
    address: pulumi.Output[str]
    port: pulumi.Output[int]
    secret_arn: pulumi.Output[str]
    identifier: pulumi.Output[str]
    instance: aws.rds.Instance
    parameter_value: pulumi.Output[str]  # for the database SSM parameter

    def __init__(self, name: str, db: DatabaseConfig, args: DatabaseArgs,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("webstack:database:Database", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = args.tags
        lower = name.lower()  # RDS stores these names in lowercase
        subnets = aws.rds.SubnetGroup(
            f"{name}-db", name=fit(f"{lower}-db", rule_for("aws:rds/subnetGroup:SubnetGroup")),
            subnet_ids=args.subnet_ids, description=f"webstack {name}: private subnets",
            tags=tags, opts=child)
        # The family in the name: a major upgrade makes a new group beside the old one.
        group = aws.rds.ParameterGroup(
            f"{name}-db-{family(db).replace('.', '-')}",
            name=fit(f"{lower}-{family(db).replace('.', '-')}",
                     rule_for("aws:rds/parameterGroup:ParameterGroup")),
            family=family(db), description=f"webstack {name}: {db.engine} {db.version}",
            parameters=[aws.rds.ParameterGroupParameterArgs(**p) for p in parameters(db)],
            tags=tags, opts=child)
        plan = instance_plan(db, fit(f"{lower}-db", rule_for(INSTANCE, "identifier")),
                             args.instance_class)
        self.instance = aws.rds.Instance(
            f"{name}-db", **plan, db_subnet_group_name=subnets.name,
            vpc_security_group_ids=[args.security_group_id], parameter_group_name=group.name,
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self, protect=db.protect,
                                        custom_timeouts=TIMEOUTS))
        self.address = self.instance.address
        self.port = self.instance.port
        self.identifier = self.instance.identifier
        self.secret_arn = self.instance.master_user_secrets.apply(
            lambda secrets: (secrets[0].secret_arn or "") if secrets else "")
        self.parameter_value = pulumi.Output.all(self.address, self.port, self.secret_arn).apply(
            lambda v: discovery(db.engine, v[0], int(v[1]), db.name, v[2]))
        self.register_outputs({"address": self.address, "port": self.port,
                               "secret_arn": self.secret_arn})
