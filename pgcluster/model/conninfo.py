"""libpq connection strings: quoting and reading key=value strings, the TLS options every
client uses, and how a replica reaches its primary.

One definition of primary_conninfo, used for a fresh clone (pg_basebackup -R writes it),
for re-pointing a replica after a failover (ALTER SYSTEM) and for a rejoined old primary.

Every connection from one node to another goes over TLS and checks the peer's certificate
against the cluster CA and the address connected to (`ssl_params`): a stolen address or a
man in the middle cannot pose as the primary and receive the replication password.
Anything else that connects node to node (backups, scripts) uses `ssl_params` too.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pgcluster.model.cluster import Node
from pgcluster.model.layout import PGPASS, Layout


def quote(value: Any) -> str:
    """One libpq connection string value, quoted when it needs it."""
    text = str(value)
    if text and all(c not in text for c in " '\\"):
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def value(conninfo: str | None, key: str) -> str | None:
    """One keyword's value from a libpq key=value connection string."""
    if not conninfo:
        return None
    pattern = rf"(?:^|\s){re.escape(key)}\s*=\s*('(?:[^'\\]|\\.)*'|\S+)"
    match = re.search(pattern, conninfo)
    if not match:
        return None
    found = match.group(1)
    if found.startswith("'"):
        found = re.sub(r"\\(.)", r"\1", found[1:-1])
    return found


def tls_options(ca_file: str | Path) -> dict[str, str]:
    """libpq options for a client of the cluster: TLS, a server certificate that must be
    signed by the cluster CA and name the host connected to, and SCRAM bound to that TLS
    channel (channel_binding), so a password exchange cannot be relayed elsewhere."""
    return {"sslmode": "verify-full", "sslrootcert": str(ca_file),
            "channel_binding": "require"}


def ssl_params(data: Mapping[str, Any]) -> dict[str, str]:
    """libpq options for a node-to-node connection: TLS, with the server's certificate
    signed by the cluster CA (the node's copy) and naming the host connected to, and the
    SCRAM exchange bound to that TLS channel."""
    return tls_options(Layout.from_data(data).tls_ca_file)


def ssl_conninfo(data: Mapping[str, Any]) -> str:
    """ssl_params as key=value words, for scripts that build their own connection strings."""
    return " ".join(f"{key}={quote(setting)}" for key, setting in ssl_params(data).items())


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
    return " ".join(f"{key}={quote(setting)}" for key, setting in parts.items())


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
    return " ".join(f"{key}={quote(setting)}" for key, setting in parts.items())
