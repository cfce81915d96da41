"""The cluster as the inventory describes it: nodes, their roles, names and addresses.

Built from plain mappings so that validation and template rendering work the same with or
without pyinfra (unit tests, the CLI, inventory preflight, deploys).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pgcluster.errors import ConfigError

ROLES = ("primary", "standby", "readonly")
# The inventory group whose hosts run etcd, Patroni's DCS, instead of the database nodes.
# A host may be in it and in a role group (etcd beside PostgreSQL), or in it alone (an
# etcd-only host, which runs nothing else).
ETCD_GROUP = "etcd"
# The inventory group whose hosts run HAProxy, the cluster's endpoints (a database node may
# be in it too).
PROXY_GROUP = "proxy"
# The inventory group whose hosts run Prometheus and Alertmanager, which watch the cluster
# (docs/monitoring.md). With it, every database node runs the exporters they scrape.
MONITOR_GROUP = "monitor"
# The inventory group whose host runs an S3-compatible object store (SeaweedFS) for
# pgBackRest's repo2: the lab's postgresql-objectstore (docs/backups.md).
OBJECTSTORE_GROUP = "objectstore"
# The inventory group whose one host takes the restore drills (and `pgcluster restore
# --scratch`): PostgreSQL outside the cluster, with the nodes' backup_root mounted too, so
# that a backup is proven on a machine of its own, as the lab's scratch node does it.
DRILL_GROUP = "drill"
# Groups of hosts that serve the cluster without being database nodes themselves.
SERVICE_GROUPS = (ETCD_GROUP, PROXY_GROUP, MONITOR_GROUP, OBJECTSTORE_GROUP, DRILL_GROUP)
# Roles a failover may promote. The read-only replica never is, as in the seed report.
PROMOTABLE_ROLES = ("primary", "standby")

SLOT_NAME_MAX = 63  # NAMEDATALEN - 1
# A node's name is its cluster_name, its application_name (quoted in
# synchronous_standby_names) and, with - turned into _, its replication slot's name: one
# strict pattern keeps it valid and unquoted everywhere, and keeps two nodes from sharing a
# slot after some other normalisation (db.2 and db_2 would).
NODE_NAME = re.compile(rf"[a-z][a-z0-9_-]{{0,{SLOT_NAME_MAX - 1}}}")
NODE_NAME_RULE = (f"a node name: a lower-case letter, then lower-case letters, digits, _ or -, "
                  f"at most {SLOT_NAME_MAX} characters (the replication slot name is the same "
                  "with - turned into _)")


def is_valid_node_name(name: str) -> bool:
    return bool(NODE_NAME.fullmatch(name))


def slot_name(node_name: str) -> str:
    """The physical replication slot name of a node.

    PostgreSQL accepts only lower-case letters, digits and underscores in slot names; a
    valid node name (is_valid_node_name) only needs its dashes turned into underscores.
    Anything else is normalised here too, but validation refuses such names.
    """
    return re.sub(r"[^a-z0-9_]", "_", node_name.strip().lower())


def is_valid_slot_name(name: str) -> bool:
    return bool(re.fullmatch(rf"[a-z0-9_]{{1,{SLOT_NAME_MAX}}}", name))


class UnknownNode(ConfigError, KeyError):
    """A node named on the command line or in data that the inventory does not have."""

    def __str__(self) -> str:  # KeyError would quote the message
        return ConfigError.__str__(self)


@dataclass(frozen=True)
class Node:
    host: str  # the pyinfra inventory name (e.g. "@lab/postgresql-primary")
    name: str  # the node's own name: cluster_name, application_name, slot (normalised)
    role: str  # the role the inventory gives; the live role may differ after a failover
    address: str  # the address the other nodes reach it on
    port: int  # the PostgreSQL port on that address
    published_port: int | None = None  # Docker lab only: port on the control machine
    # The node NAME this replica streams from instead of the primary (host data `upstream`):
    # a cascading replica. None: it streams from the primary, whichever node that is.
    upstream: str | None = None

    @property
    def slot(self) -> str:
        return slot_name(self.name)

    @property
    def promotable(self) -> bool:
        return self.role in PROMOTABLE_ROLES


@dataclass(frozen=True)
class HostEntry:
    """One inventory host as data: its name, its groups and its merged data."""

    name: str
    groups: tuple[str, ...]
    data: Mapping[str, Any]


def role_of(entry: HostEntry) -> list[str]:
    """The role(s) a host claims: `node_role` data wins over group membership."""
    explicit = entry.data.get("node_role")
    if explicit:
        return [str(explicit)]
    return [group for group in ROLES if group in entry.groups]


def is_service_host(entry: HostEntry) -> bool:
    """A host of a service group (`etcd`, `proxy`, `monitor`, `objectstore`) and of no role
    group: it runs etcd, HAProxy, Prometheus or the object store, and no PostgreSQL."""
    return any(g in entry.groups for g in SERVICE_GROUPS) and not role_of(entry)


def is_etcd_only(entry: HostEntry) -> bool:
    """A host of the `etcd` group and of no role group: it runs no PostgreSQL."""
    return ETCD_GROUP in entry.groups and not role_of(entry)


def database_entries(entries: Iterable[HostEntry]) -> list[HostEntry]:
    """The entries of the database nodes (every host but the service hosts)."""
    return [e for e in entries if not is_service_host(e)]


@dataclass(frozen=True)
class ServiceHost:
    """A host of a service group: one member of the etcd cluster, a proxy or a monitor."""

    host: str  # the pyinfra inventory name
    name: str  # etcd's member name (node_name, else the inventory name's last part)
    address: str  # the address etcd listens on and the others reach it on


def _name_and_address(entry: HostEntry) -> tuple[str, str]:
    data = entry.data
    return (str(data.get("node_name") or entry.name.split("/")[-1]),
            str(data.get("node_address") or data.get("ssh_hostname") or entry.name))


def node_from_entry(entry: HostEntry) -> Node:
    roles = role_of(entry)
    data = entry.data
    published = data.get("published_port")
    name, address = _name_and_address(entry)
    upstream = data.get("upstream")
    return Node(
        host=entry.name,
        name=name,
        role=roles[0] if len(roles) == 1 else "",
        address=address,
        port=int(data.get("postgresql_port", 5432)),
        published_port=int(published) if published is not None else None,
        upstream=str(upstream) if upstream else None,
    )


@dataclass(frozen=True)
class Cluster:
    nodes: tuple[Node, ...]  # the database nodes
    # The hosts of the `etcd` group, in inventory order; empty: etcd runs on every node.
    etcd_hosts: tuple[ServiceHost, ...] = ()
    # The hosts of the `proxy` group (HAProxy), in inventory order; empty: no endpoints.
    proxy_hosts: tuple[ServiceHost, ...] = ()
    # The hosts of the `monitor` group (Prometheus, Alertmanager); empty: no exporters.
    monitor_hosts: tuple[ServiceHost, ...] = ()
    # The hosts of the `objectstore` group (SeaweedFS's S3); empty: none of pgcluster's.
    objectstore_hosts: tuple[ServiceHost, ...] = ()
    # The host of the `drill` group (at most one: validation), as a node of its own
    # (role "drill"); empty: restore drills need the lab's scratch node.
    drill_hosts: tuple[Node, ...] = ()

    @classmethod
    def from_entries(cls, entries: Iterable[HostEntry]) -> Cluster:
        entries = list(entries)
        def group(name: str) -> tuple[ServiceHost, ...]:
            return tuple(ServiceHost(e.name, *_name_and_address(e)) for e in entries
                         if name in e.groups)

        return cls(tuple(node_from_entry(e) for e in database_entries(entries)),
                   group(ETCD_GROUP), group(PROXY_GROUP), group(MONITOR_GROUP),
                   group(OBJECTSTORE_GROUP),
                   tuple(dataclasses.replace(node_from_entry(e), role="drill") for e in entries
                         if DRILL_GROUP in e.groups and not role_of(e)))

    @classmethod
    def from_inventory(cls, inventory: Iterable[Any]) -> Cluster:
        """From a pyinfra Inventory (or anything iterating hosts with name, groups, data)."""
        return cls.from_entries(HostEntry(h.name, tuple(h.groups), h.data.dict())
                                for h in inventory)

    def node(self, host: str) -> Node:
        for node in self.nodes:
            if node.host == host or node.name == host:
                return node
        raise KeyError(host)

    def is_node(self, host: str) -> bool:
        """Whether an inventory host is a database node (not an etcd-only host)."""
        return any(node.host == host for node in self.nodes)

    def etcd_host(self, host: str) -> ServiceHost | None:
        """The etcd member an inventory host is, when the `etcd` group names it."""
        return next((e for e in self.etcd_hosts if e.host == host), None)

    def proxy_host(self, host: str) -> ServiceHost | None:
        """The proxy an inventory host is, when the `proxy` group names it."""
        return next((p for p in self.proxy_hosts if p.host == host), None)

    def monitor_host(self, host: str) -> ServiceHost | None:
        """The monitor an inventory host is, when the `monitor` group names it."""
        return next((m for m in self.monitor_hosts if m.host == host), None)

    def objectstore_host(self, host: str) -> ServiceHost | None:
        """The object store an inventory host is, when the `objectstore` group names it."""
        return next((o for o in self.objectstore_hosts if o.host == host), None)

    @property
    def drill_host(self) -> Node | None:
        """Where restore drills restore, when the inventory has a `drill` host."""
        return self.drill_hosts[0] if self.drill_hosts else None

    def without(self, name: str) -> Cluster:
        """The cluster as it is once the node `name` is retired (`pgcluster remove`): its
        configuration is rendered from this before the node leaves the inventory, so that
        the deploy after the user deletes it changes nothing."""
        gone = self.find(name)
        return dataclasses.replace(self, nodes=tuple(n for n in self.nodes if n != gone))

    def with_role(self, role: str) -> list[Node]:
        return [n for n in self.nodes if n.role == role]

    @property
    def inventory_primary(self) -> Node:
        return self.with_role("primary")[0]

    def find(self, name_or_role: str) -> Node:
        """A node by host name, node name or role (first match), for CLI arguments."""
        for node in self.nodes:
            if name_or_role in (node.host, node.name):
                return node
        matches = self.with_role(name_or_role)
        if matches:
            return matches[0]
        known = ", ".join(n.name for n in self.nodes)
        raise UnknownNode(f"no node named {name_or_role!r}; known nodes: {known} (or a "
                          "role: primary, standby, readonly)")


    # ------------------------------------------------------------ cascading replication

    def upstream_of(self, node: Node) -> Node | None:
        """The node the inventory says `node` streams from (its `upstream`), None when it
        streams from the primary. An upstream that names no node raises UnknownNode:
        validation refuses it before any deploy, and streaming from the primary instead
        would silently ignore what the user asked for."""
        if node.upstream is None:
            return None
        for other in self.nodes:
            if other.name == node.upstream:
                return other
        known = ", ".join(n.name for n in self.nodes)
        raise UnknownNode(f"the upstream of {node.name}, {node.upstream!r}, is not a node of "
                          f"this inventory; known nodes: {known}")

    def downstream_of(self, node: Node) -> list[Node]:
        """The nodes whose `upstream` is `node`, in inventory order (the inventory's
        cascade, not where they stream while a node is lost: see source)."""
        return [n for n in self.nodes if n.upstream == node.name]

    def source(self, node: Node, primary: Node, lost: Collection[str] = ()) -> Node:
        """The node `node` should stream from now, with `primary` the live primary and
        `lost` the names (or inventory hosts) of the nodes that cannot serve WAL (down,
        unreachable, stopped).

        Its upstream, unless that is lost: then the upstream's own source, and so on up
        the chain; the primary when the chain ends (no upstream) or reaches the primary.
        An upstream that was promoted is the primary, so its cascade keeps streaming from
        it (following the new timeline) without being re-pointed. Never `node` itself: a
        cycle, which validation refuses, ends at the primary too.
        """
        if node.name == primary.name:
            raise ValueError(f"{node.name} is the primary, which streams from no one")
        lost = set(lost)
        seen = {node.name}
        current = node
        while True:
            upstream = self.upstream_of(current)
            if upstream is None or upstream.name == primary.name or upstream.name in seen:
                return primary
            if upstream.name not in lost and upstream.host not in lost:
                return upstream
            seen.add(upstream.name)
            current = upstream

    def streaming_from(self, node: Node, primary: Node,
                       lost: Collection[str] = ()) -> list[Node]:
        """The replicas whose source is `node` (Cluster.source, with `primary` the primary:
        on it, every replica that streams from it), in inventory order."""
        return [other for other in self.nodes
                if other.name not in (node.name, primary.name)
                and self.source(other, primary, lost).name == node.name]

    def expected_slots(self, node: Node, primary: Node, lost: Collection[str] = ()) -> list[str]:
        """The physical slots that should exist on `node`: that of every replica that
        streams from it. A lost replica keeps its slot on its source: it needs that WAL when
        it comes back (max_slot_wal_keep_size bounds what the slot holds meanwhile)."""
        return [other.slot for other in self.streaming_from(node, primary, lost)]


def orphaned_slots(existing: Iterable[str], expected: Iterable[str],
                   known: Iterable[str]) -> list[str]:
    """The physical replication slots on a node that no node needs there, sorted.

    `existing` are the node's (non-temporary, physical) slots, `expected` its
    Cluster.expected_slots, `known` the slot names of every node of the inventory. A slot
    not expected is an orphan either way: named after no known node, it is a removed node's
    (or one made by hand), and nothing of the inventory will ever stream from it; named
    after a known node, that node now streams from another node, whose slot serves it.
    Either way it retains WAL for no one (up to max_slot_wal_keep_size), which is why a
    deploy warns or drops it (group data `orphan_slots`). A lost replica's slot is expected
    on its source (expected_slots), so it is never an orphan there.

    So `known` tells the two kinds apart (a caller's message may say which each one is)
    but does not decide whether a slot is an orphan: not being expected does.
    """
    wanted = set(expected)
    return sorted({slot for slot in existing if slot not in wanted})
