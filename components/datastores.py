"""The app's data stores as the program wires them: sized before any resource (`plan`), then
built in the private subnets (`build`), and handed to the parts that need them — where they
are (SSM parameters for the servers), which secrets the servers may read, what monitoring
watches and what the outputs say. A database the user brings (databaseUrlSecret) has only
its parameter and its secret's grant."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi

from components import dbsizing, naming, sizing
from components.cache import Cache, CacheArgs
from components.config import StackConfig
from components.database import Database, DatabaseArgs, byo_discovery
from components.firewall import Firewall
from components.monitoring import DataStores
from components.network import Network
from components.outputs import DataStoreOutputs


@dataclass(frozen=True)
class Plan:
    database: dbsizing.DatabaseChoice | None
    cache: dbsizing.CacheChoice | None

    @property
    def private(self) -> bool:
        """The network needs private subnets."""
        return self.database is not None or self.cache is not None

    def ports(self, cfg: StackConfig) -> dict[str, int]:
        """The firewall's data-store groups by port."""
        return {**({"db": cfg.database.port} if self.database else {}),
                **({"cache": cfg.cache.port} if self.cache else {})}


def plan(cfg: StackConfig, prices: sizing.PriceTable) -> Plan:
    """Sizing only (its errors are config errors, raised before any resource)."""
    return Plan(
        database=dbsizing.size_database(cfg.database, cfg.region, prices)
        if cfg.database.created else None,
        cache=dbsizing.size_cache(cfg.cache, cfg.region, prices) if cfg.cache.enabled else None)


@dataclass
class Stores:
    database: Database | None = None
    cache: Cache | None = None
    locations: list[tuple[str, str, pulumi.Input[str]]] = field(default_factory=list)
    secret_arns: list[pulumi.Input[str]] = field(default_factory=list)
    monitoring: dict[str, Any] = field(default_factory=dict)  # Monitoring's keyword arguments
    outputs: DataStoreOutputs = field(default_factory=DataStoreOutputs)


def build(name: str, cfg: StackConfig, sized: Plan, network: Network,
          firewall: Firewall) -> Stores:
    out = Stores()
    private = network.private_subnet_ids
    db, cache = sized.database, sized.cache
    if db is not None and private is not None:
        out.database = Database(name, cfg.database, DatabaseArgs(
            instance_class=db.instance_class, subnet_ids=private,
            security_group_id=firewall.data_group_ids["db"], tags=cfg.tags))
        out.locations.append(("database", naming.database_parameter(cfg),
                              out.database.parameter_value))
        out.secret_arns.append(out.database.secret_arn)
    elif cfg.database.url_secret:
        out.locations.append(("database", naming.database_parameter(cfg),
                              byo_discovery(cfg.database.url_secret)))
    if cache is not None and private is not None:
        out.cache = Cache(name, cfg.cache, CacheArgs(
            node_type=cache.node_type, subnet_ids=private,
            security_group_id=firewall.data_group_ids["cache"], tags=cfg.tags))
        out.locations.append(("cache", naming.cache_parameter(cfg), out.cache.parameter_value))
        if out.cache.secret_arn is not None:
            out.secret_arns.append(out.cache.secret_arn)
    out.monitoring = {
        "stores": DataStores(
            database_storage_gib=cfg.database.storage_gib if out.database else 0,
            database_max_connections=db.max_connections if db else 0,
            cache_engine=cfg.cache.engine if out.cache else ""),
        "database_id": out.database.identifier if out.database else None,
        "cache_id": out.cache.node_ids.apply(lambda ids: ids[0]) if out.cache else None}
    out.outputs = DataStoreOutputs(
        private_subnet_ids=private, database=out.database, database_name=cfg.database.name,
        database_class=db.instance_class if db else "", database_reason=db.reason if db else "",
        database_secret_arn=(out.database.secret_arn if out.database
                             else cfg.database.url_secret or None),
        database_parameter=naming.database_parameter(cfg), cache=out.cache,
        cache_node_type=cache.node_type if cache else "",
        cache_reason=cache.reason if cache else "", group_ids=firewall.data_group_ids)
    return out
