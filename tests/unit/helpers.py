"""Build inventories as data, the way inventory files and group_data describe them."""

from __future__ import annotations

from typing import Any

from pgcluster.control.preflight import group_data_schema, load_group_data
from pgcluster.model.cluster import Cluster, HostEntry

ALL = load_group_data("all")
SCHEMA = group_data_schema()  # group_data/all.py's types
SECRETS = {"admin_password": "s3cret-admin", "replication_password": "s3cret-repl",
           "rewind_password": "s3cret-rewind", "app_password": "s3cret-app",
           "patroni_rest_password": "s3cret-patroni", "monitor_password": "s3cret-monitor"}


def entry(name: str, role: str | None, **data: Any) -> HostEntry:
    merged = {**ALL, **SECRETS, "node_address": f"10.0.0.{abs(hash(name)) % 200 + 10}",
              **data}
    return HostEntry(name, (role,) if role else (), merged)


def three_nodes(**data: Any) -> list[HostEntry]:
    return [
        entry("db1", "primary", node_address="10.0.0.1", **data),
        entry("db2", "standby", node_address="10.0.0.2", **data),
        entry("db3", "readonly", node_address="10.0.0.3", **data),
    ]


def cluster(**data: Any) -> Cluster:
    return Cluster.from_entries(three_nodes(**data))


def lab_named_cascade() -> Cluster:
    """Three nodes named as the lab names its hosts (@lab/pg-a ...), pg-c cascading from
    pg-b: inventory host names that differ from node names."""
    return Cluster.from_entries([
        HostEntry("@lab/pg-a", ("primary",), {"node_address": "10.0.0.1"}),
        HostEntry("@lab/pg-b", ("standby",), {"node_address": "10.0.0.2"}),
        HostEntry("@lab/pg-c", ("readonly",), {"node_address": "10.0.0.3",
                                                "upstream": "pg-b"}),
    ])
