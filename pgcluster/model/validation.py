"""Checks on the inventory and its data, run before any host is touched (pure: the
secrets and the TLS files are checked by pgcluster.control, which reads them).

Every problem is reported at once, each with what is wrong and how to fix it.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from collections.abc import Iterable

from pgcluster.model.cluster import (
    ROLES,
    SLOT_NAME_MAX,
    Cluster,
    HostEntry,
    is_valid_slot_name,
    role_of,
)
from pgcluster.model.sql import is_plain_identifier

SUPPORTED_VERSIONS = (15,)
IDENTIFIERS = ("database_name", "database_schema", "admin_user", "replication_user",
               "rewind_user", "app_user")
ROLE_KEYS = ("admin_user", "replication_user", "rewind_user", "app_user")


def problems(entries: Iterable[HostEntry]) -> list[str]:
    entries = list(entries)
    found: list[str] = []
    if not entries:
        return ["the inventory has no hosts: declare them in the groups primary, standby, readonly"]

    found += _role_problems(entries)
    cluster = Cluster.from_entries(entries)
    found += _name_problems(cluster)
    found += _port_problems(cluster)
    found += _data_problems(entries, cluster)
    found += _access_problems(entries)
    return found


def _role_problems(entries: list[HostEntry]) -> list[str]:
    found = []
    primaries = []
    for entry in entries:
        roles = role_of(entry)
        if not roles:
            found.append(
                f"host {entry.name} has no role: add it to exactly one of the inventory groups "
                f"{', '.join(ROLES)}"
            )
        elif len(roles) > 1:
            found.append(
                f"host {entry.name} is in several role groups ({', '.join(roles)}): "
                "keep it in exactly one"
            )
        elif roles[0] not in ROLES:
            found.append(
                f"host {entry.name} has the unknown role {roles[0]!r}: use one of "
                f"{', '.join(ROLES)}"
            )
        elif roles[0] == "primary":
            primaries.append(entry.name)
    if not primaries:
        found.append(
            "no primary: put exactly one host in the inventory group `primary` "
            "(e.g. primary = [\"db1.example.net\"])"
        )
    elif len(primaries) > 1:
        found.append(
            f"more than one primary ({', '.join(primaries)}): keep exactly one host in the "
            "group `primary`; the others belong in `standby` or `readonly`"
        )
    return found


def _name_problems(cluster: Cluster) -> list[str]:
    found = []
    by_slot: dict[str, list[str]] = defaultdict(list)
    for node in cluster.nodes:
        if not is_valid_slot_name(node.slot):
            found.append(
                f"node name {node.name!r} (host {node.host}) gives the replication slot name "
                f"{node.slot!r}, which is not valid (1 to {SLOT_NAME_MAX} characters of a-z, "
                "0-9 and _ once lower-cased, with other characters turned into _): set a "
                "shorter `node_name` for this host"
            )
        by_slot[node.slot].append(node.name)
    for slot, names in by_slot.items():
        if len(names) > 1:
            found.append(
                f"nodes {' and '.join(names)} share the replication slot name {slot!r} once "
                "normalised: give them distinct `node_name`s"
            )
    return found


def _port_problems(cluster: Cluster) -> list[str]:
    found = []
    published: dict[int, list[str]] = defaultdict(list)
    endpoints: dict[tuple[str, int], list[str]] = defaultdict(list)
    for node in cluster.nodes:
        ports = (("postgresql_port", node.port), ("published_port", node.published_port))
        for label, port in ports:
            if port is not None and not 1 <= port <= 65535:
                found.append(f"{label} = {port} on {node.name} is not a TCP port (1-65535)")
        if node.published_port is not None:
            published[node.published_port].append(node.name)
        endpoints[(node.address, node.port)].append(node.name)
    for port, names in sorted(published.items()):
        if len(names) > 1:
            found.append(
                f"nodes {' and '.join(names)} both publish port {port}: give each node its "
                "own `published_port`"
            )
    for (address, port), names in sorted(endpoints.items()):
        if len(names) > 1:
            found.append(
                f"nodes {' and '.join(names)} share the address {address}:{port}: each node "
                "needs its own `node_address` (or port)"
            )
    return found


def _data_problems(entries: list[HostEntry], cluster: Cluster) -> list[str]:
    found = []
    versions = {entry.data.get("postgresql_version") for entry in entries}
    for version in sorted(versions, key=str):
        if version not in SUPPORTED_VERSIONS:
            found.append(
                f"postgresql_version = {version!r} is not supported: Debian 12 packages "
                f"PostgreSQL {', '.join(map(str, SUPPORTED_VERSIONS))}; set postgresql_version "
                "= 15 in group_data/all.py"
            )
    if len(versions) > 1:
        found.append("all nodes must run the same postgresql_version")

    replicas = len(cluster.nodes) - 1
    for entry in entries:
        data = entry.data
        wal_level = data.get("wal_level", "replica")
        if wal_level not in ("replica", "logical"):
            found.append(
                f"wal_level = {wal_level!r} on {entry.name} cannot feed streaming replicas: "
                "use 'replica' (or 'logical')"
            )
        for key in ("max_wal_senders", "max_replication_slots"):
            value = data.get(key)
            if value is not None and int(value) < replicas + 1:
                found.append(
                    f"{key} = {value} on {entry.name} is too low for {replicas} replicas plus "
                    f"a base backup: set it to at least {replicas + 1}"
                )
        archive_mode = data.get("archive_mode", "on")
        if archive_mode not in ("on", "off", "always"):
            found.append(f"archive_mode = {archive_mode!r} on {entry.name}: use on, off or always")
    for key in IDENTIFIERS:
        for value in sorted({str(e.data.get(key)) for e in entries}):
            if not is_plain_identifier(value):
                found.append(
                    f"{key} = {value!r} is not a plain SQL identifier: use lower-case "
                    "letters, digits and _ (starting with a letter or _), at most 63"
                )
    roles = [{e.data.get(key) for e in entries} for key in ROLE_KEYS]
    if any(roles[i] & roles[j] for i in range(len(roles)) for j in range(i + 1, len(roles))):
        found.append(f"{', '.join(ROLE_KEYS[:-1])} and {ROLE_KEYS[-1]} must be different "
                     "roles")
    if "postgres" in set().union(*roles):
        found.append("the postgres role is the local superuser (peer, never over the "
                     "network): choose other names for admin_user, replication_user, "
                     "rewind_user and app_user")
    names = {n.name for n in cluster.nodes}
    for entry in entries:
        unknown = [s for s in entry.data.get("synchronous_standbys") or [] if s not in names]
        if unknown:
            found.append(
                f"synchronous_standbys on {entry.name} names {', '.join(unknown)}, not nodes "
                f"of this cluster ({', '.join(sorted(names))})"
            )
    node_names = [n.name for n in cluster.nodes]
    duplicates = sorted({n for n in node_names if node_names.count(n) > 1})
    if duplicates:
        found.append(f"node names must be unique; repeated: {', '.join(duplicates)}")
    return found


def _access_problems(entries: list[HostEntry]) -> list[str]:
    found = []
    for entry in entries:
        networks = entry.data.get("client_networks") or []
        if isinstance(networks, str):
            found.append(f"client_networks on {entry.name} must be a list of networks, "
                         f"e.g. [{networks!r}]")
            continue
        for network in networks:
            try:
                ipaddress.ip_network(str(network), strict=False)
            except ValueError:
                found.append(f"client_networks on {entry.name}: {network!r} is not a "
                             "network in CIDR notation (e.g. 10.0.1.0/24 or 10.0.1.5/32)")
    return found
