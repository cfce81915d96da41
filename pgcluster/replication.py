"""How a replica reaches its primary: the libpq connection string and slot it uses.

One definition, used for a fresh clone (pg_basebackup -R writes it), for re-pointing a
replica after a failover (ALTER SYSTEM) and for a rejoined old primary.

Every connection from one node to another goes over TLS and checks the peer's certificate
against the cluster CA and the address connected to (`ssl_params`): a stolen address or a
man in the middle cannot pose as the primary and receive the replication password.
Anything else that connects node to node (backups, scripts) uses `ssl_params` too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pgcluster.layout import PGPASS, Layout
from pgcluster.model import Node
from pgcluster.tls import client_options


def conninfo_quote(value: Any) -> str:
    text = str(value)
    if text and all(c not in text for c in " '\\"):
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def ssl_params(data: Mapping[str, Any]) -> dict[str, str]:
    """libpq options for a node-to-node connection: TLS, with the server's certificate
    signed by the cluster CA (the node's copy) and naming the host connected to, and the
    SCRAM exchange bound to that TLS channel."""
    return client_options(Layout.from_data(data).tls_ca_file)


def ssl_conninfo(data: Mapping[str, Any]) -> str:
    """ssl_params as key=value words, for scripts that build their own connection strings."""
    return " ".join(f"{key}={conninfo_quote(value)}" for key, value in ssl_params(data).items())


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
        **ssl_params(data),
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
        **ssl_params(data),
    }
    return " ".join(f"{key}={conninfo_quote(value)}" for key, value in parts.items())
