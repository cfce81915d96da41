"""How a replica reaches its primary: the libpq connection string and slot it uses.

One definition, used for a fresh clone (pg_basebackup -R writes it), for re-pointing a
replica after a failover (ALTER SYSTEM) and for a rejoined old primary.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pgcluster.layout import PGPASS
from pgcluster.model import Node


def conninfo_quote(value: Any) -> str:
    text = str(value)
    if text and all(c not in text for c in " '\\"):
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def primary_conninfo(primary: Node, replica: Node, data: Mapping[str, Any]) -> str:
    """The replica's primary_conninfo: the replication role, its password from .pgpass,
    and application_name = the replica's node name (what pg_stat_replication shows)."""
    parts = {
        "host": primary.address,
        "port": primary.port,
        "user": data["replication_user"],
        "passfile": PGPASS,
        "application_name": replica.name,
        "connect_timeout": 5,
    }
    return " ".join(f"{key}={conninfo_quote(value)}" for key, value in parts.items())


def rewind_conninfo(primary: Node, data: Mapping[str, Any]) -> str:
    """pg_rewind's --source-server: the rewind role on the primary's database postgres."""
    parts = {
        "host": primary.address,
        "port": primary.port,
        "user": data["rewind_user"],
        "passfile": PGPASS,
        "dbname": "postgres",
        "connect_timeout": 5,
    }
    return " ".join(f"{key}={conninfo_quote(value)}" for key, value in parts.items())
