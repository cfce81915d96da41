"""Checks on the inventory and its data, run before any host is touched (pure: the
secrets and the TLS files are checked by pgcluster.control, which reads them).

Every value is first checked by its type (pgcluster.model.settings: group_data/all.py's
annotations and HOST_DATA); the checks across values and nodes then read only values that
passed, so that a wrong type is reported once, plainly, and never raises. Every problem is
reported at once, each with what is wrong, where, and a value that is right.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from pgcluster.model import endpoints, patroni
from pgcluster.model.cluster import (
    DRILL_GROUP,
    NODE_NAME_RULE,
    ROLES,
    Cluster,
    HostEntry,
    database_entries,
    is_service_host,
    is_valid_node_name,
    role_of,
)
from pgcluster.model.settings import MISSING, Schema, is_host, postgresql_settings

ROLE_KEYS = ("admin_user", "replication_user", "rewind_user", "app_user")
# A hot standby refuses to start when one of these is lower than on the primary it
# replays WAL from (PostgreSQL 15 docs, "Hot Standby", Administrator's Overview).
STANDBY_MINIMUMS = ("max_connections", "max_worker_processes", "max_wal_senders",
                    "max_prepared_transactions", "max_locks_per_transaction")
# Where a host's value of a key was set, for messages: "group_data/docker.py", "host data
# in inventory/example.py" (None: not known, as inside a deploy).
Origin = Callable[[str, str], str | None]


def problems(entries: Iterable[HostEntry], schema: Schema,
             origin: Origin | None = None) -> list[str]:
    entries = list(entries)
    if not entries:
        return ["the inventory has no hosts: declare them in the groups primary, standby, readonly"
                " (and etcd, for Patroni's DCS on hosts of its own)"]

    found = value_problems(entries, schema, origin)
    usable = usable_entries(entries, schema)
    cluster = Cluster.from_entries(usable)
    # The database nodes' checks read the database nodes only: an etcd-only host (the
    # `etcd` group's, in no role group) runs no PostgreSQL.
    nodes, usable_nodes = database_entries(entries), database_entries(usable)
    found += _role_problems(usable_nodes)
    found += _name_problems(nodes, cluster)
    found += _address_problems(nodes, cluster)
    found += _service_address_problems(entries, cluster)
    found += _drill_problems(entries, cluster)
    found += _port_problems(cluster)
    found += _data_problems(usable_nodes, cluster)
    found += _cascade_problems(usable_nodes, cluster)
    found += _standby_minimum_problems(usable_nodes, cluster, schema)
    # The high-availability engine's settings: Patroni's timing and what it would silently
    # change, etcd's and its `etcd` group's (pgcluster.model.patroni).
    found += patroni.problems(usable, cluster)
    # The endpoints' ports and pools (pgcluster.model.endpoints).
    found += endpoints.problems(usable, cluster)
    return found


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def value_problems(entries: list[HostEntry], schema: Schema,
                   origin: Origin | None = None) -> list[str]:
    """Every value that its type refuses. One message per wrong value, naming the hosts
    that have it (none when all do) and the file it was set in, when known."""
    hosts: dict[tuple[str, str, str, str, str | None], list[str]] = defaultdict(list)
    examples: dict[tuple[str, str, str, str, str | None], Any] = {}
    for entry in entries:
        for key, value in entry.data.items():
            kind = schema.type_of(key)
            if kind is None:
                continue
            for problem in kind.problems(value):
                part = value if problem.value is MISSING else problem.value
                shown = "(hidden)" if kind.hidden else _shown(part)
                where = origin(entry.name, key) if origin else None
                group = (key, problem.path, shown, problem.what, where)
                hosts[group].append(entry.name)
                examples[group] = schema.example(key, problem)
    everyone = [e.name for e in entries]
    found = []
    for group, names in hosts.items():
        key, path, shown, what, where = group
        on = "" if names == everyone else f" on {', '.join(names)}"
        message = f"{key}{path} = {shown}{on} {what}"
        if examples[group] is not MISSING:
            message += f", e.g. {key}{path} = {examples[group]!r}"
        if where:
            message += f" (set in {where})"
        found.append(message)
    return found


def usable_entries(entries: list[HostEntry], schema: Schema) -> list[HostEntry]:
    """The entries with each wrong value replaced by all.py's (or dropped): what the checks
    across values and nodes, and those of pgcluster.control, may safely read."""
    result = []
    for entry in entries:
        data = dict(entry.data)
        for key, value in entry.data.items():
            kind = schema.type_of(key)
            if kind is None:
                continue
            usable = kind.usable(value)
            if usable is MISSING:
                usable = schema.fallback(key)
            if usable is MISSING:
                del data[key]
            else:
                data[key] = usable
        result.append(HostEntry(entry.name, entry.groups, data))
    return result


def _role_problems(entries: list[HostEntry]) -> list[str]:
    found = []
    primaries = []
    for entry in entries:
        roles = role_of(entry)
        if not roles:
            found.append(
                f"host {entry.name} has no role: add it to exactly one of the inventory groups "
                f"{', '.join(ROLES)} (or only to etcd or proxy, for a host that runs etcd or "
                "HAProxy alone)"
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


def _name_problems(entries: list[HostEntry], cluster: Cluster) -> list[str]:
    """Names that no node_name gave (a host's inventory name), and slots shared."""
    found = []
    by_slot: dict[str, list[str]] = defaultdict(list)
    for entry, node in zip(entries, cluster.nodes, strict=True):
        given = entry.data.get("node_name")
        if given is None and not is_valid_node_name(node.name):
            found.append(
                f"host {node.host} has no node_name, and its inventory name gives the node "
                f"name {node.name!r}, which is not valid (the node name also gives the "
                f"replication slot name): set `node_name` for this host to {NODE_NAME_RULE}, "
                "e.g. node_name = 'db2'"
            )
        elif given in (None, node.name):  # a node_name its type refused is reported there
            by_slot[node.slot].append(node.name)
    for slot, names in by_slot.items():
        if len(names) > 1:
            found.append(
                f"nodes {' and '.join(names)} share the replication slot name {slot!r} once "
                "normalised: give them distinct `node_name`s"
            )
    return found


def _address_problems(entries: list[HostEntry], cluster: Cluster) -> list[str]:
    """An address no node_address or ssh_hostname gave (their types check those)."""
    return [
        f"host {node.host} has no node_address (nor ssh_hostname), and its inventory name "
        f"{node.address!r} is not one host: set `node_address` to the address the other "
        "nodes reach it on, e.g. node_address = '10.0.1.5'"
        for entry, node in zip(entries, cluster.nodes, strict=True)
        if "node_address" not in entry.data and "ssh_hostname" not in entry.data
        and not is_host(node.address)
    ]


def _service_address_problems(entries: list[HostEntry], cluster: Cluster) -> list[str]:
    """A service host's address (an etcd-only host's, a proxy's, a monitor's), as _address_problems
    checks a node's."""
    found = []
    for entry in entries:
        member = (cluster.etcd_host(entry.name) or cluster.proxy_host(entry.name)
                  or cluster.monitor_host(entry.name))
        if (not is_service_host(entry) or member is None or "node_address" in entry.data
                or "ssh_hostname" in entry.data or is_host(member.address)):
            continue
        what = ("etcd host" if cluster.etcd_host(entry.name)
                else "proxy" if cluster.proxy_host(entry.name) else "monitor")
        found.append(
            f"{what} {member.host} has no node_address (nor ssh_hostname), and its inventory "
            f"name {member.address!r} is not one host: set `node_address` to the address the "
            "nodes reach it on, e.g. node_address = '10.0.1.20'")
    return found


def _drill_problems(entries: list[HostEntry], cluster: Cluster) -> list[str]:
    """The `drill` group: one host, never a node of the cluster (a restore drill replaces
    its data directory), reachable by its address."""
    found = []
    drills = [e for e in entries if DRILL_GROUP in e.groups]
    if len(drills) > 1:
        found.append(f"the inventory group `drill` has {len(drills)} hosts "
                     f"({', '.join(e.name for e in drills)}): restore drills use one; keep one")
    for entry in drills:
        roles = role_of(entry)
        if roles:
            found.append(
                f"host {entry.name} is in the group `drill` and in `{roles[0]}`: a restore "
                "drill replaces the drill host's data directory, so it cannot be a node of the "
                "cluster; give the drills a host of their own")
    node = cluster.drill_host
    if node and len(drills) == 1 and not role_of(drills[0]):
        data = drills[0].data
        if "node_address" not in data and "ssh_hostname" not in data and not is_host(
                node.address):
            found.append(
                f"drill host {node.host} has no node_address (nor ssh_hostname), and its "
                f"inventory name {node.address!r} is not one host: set `node_address` to the "
                "address this machine reaches its PostgreSQL on, e.g. node_address = "
                "'10.0.1.30'")
        clash = next((n for n in cluster.nodes if n.name == node.name), None)
        if clash:
            found.append(f"drill host {node.host} has the node name {node.name!r} of the node "
                         f"{clash.host}: give it a node_name of its own")
    return found


def _port_problems(cluster: Cluster) -> list[str]:
    found = []
    published: dict[int, list[str]] = defaultdict(list)
    endpoints: dict[tuple[str, int], list[str]] = defaultdict(list)
    for node in cluster.nodes:
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
    if len(versions) > 1:
        found.append("all nodes must run the same postgresql_version")

    # Every node but one is a replica, and any node may have to feed them all: the primary
    # (and a standby a failover promotes) streams to each replica that has no upstream, and
    # a cascading upstream to its downstream nodes, which are among those replicas too. So
    # the bound is the same on every node, cascade or not.
    replicas = len(cluster.nodes) - 1
    for entry in entries:
        data = entry.data
        wal_level = data.get("wal_level", "replica")
        if wal_level not in ("replica", "logical"):
            found.append(
                f"wal_level = {wal_level!r} on {entry.name} cannot feed streaming replicas: "
                "use 'replica' (or 'logical')"
            )
        value = data.get("max_replication_slots")
        if value is not None and int(value) < replicas + 1:
            found.append(
                f"max_replication_slots = {value} on {entry.name} is too low for {replicas} "
                f"replicas plus a base backup: set it to at least {replicas + 1}"
            )
        # A new cluster clones its replicas at once, each pg_basebackup holding two
        # connections (the copy and its WAL stream): fewer senders and a clone is refused.
        value = data.get("max_wal_senders")
        if value is not None and int(value) < max(2 * replicas, replicas + 1):
            found.append(
                f"max_wal_senders = {value} on {entry.name} is too low for {replicas} replicas "
                f"cloned at once (two connections each): set it to at least "
                f"{max(2 * replicas, replicas + 1)}"
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


def _cascade_problems(entries: list[HostEntry], cluster: Cluster) -> list[str]:
    """The `upstream`s (cascading replicas, docs/replicas.md): each names another database
    node, none is on the primary, none makes a cycle; a standby cascades only from a node a
    failover may promote; a synchronous standby streams from the primary."""
    found = []
    nodes = list(zip(entries, cluster.nodes, strict=True))
    by_name = {node.name: node for _, node in nodes}
    names = ", ".join(sorted(by_name))
    services = {s.name for s in (*cluster.etcd_hosts, *cluster.proxy_hosts,
                                 *cluster.monitor_hosts, *cluster.objectstore_hosts)}
    synchronous = {name for entry, _ in nodes
                   for name in entry.data.get("synchronous_standbys") or []}
    # Links a chain may follow: to a known node other than itself, never out of the
    # primary (whose upstream is refused on its own).
    links: dict[str, str] = {}
    for _, node in nodes:
        up = node.upstream
        if up is None:
            continue
        if up not in by_name:
            service = (f"; {up} is a service host, which runs no PostgreSQL" if up in services
                       else "")
            found.append(
                f"upstream on {node.host} names {up}, not a database node of this cluster "
                f"({names}{service}): set it to the node_name of the node {node.name} should "
                "stream from, or remove it to stream from the primary")
        elif up == node.name:
            found.append(
                f"upstream on {node.host} names {node.name} itself: a replica streams from "
                "another node; name that node, or remove upstream to stream from the primary")
        elif node.role == "primary":
            found.append(
                f"upstream on {node.host} names {up}, but {node.name} is the primary, which "
                "streams from no one: remove upstream from its data (set upstream in the host "
                "data of the replicas that cascade, not in group data they share with it)")
        else:
            links[node.name] = up
            source = by_name[up]
            if node.role == "standby" and source.role == "readonly":
                found.append(
                    f"upstream on {node.host} names the readonly replica {up}, but "
                    f"{node.name} is a standby, which a failover may promote: a standby "
                    "cascades only from the primary or another standby, so that the chain a "
                    "failover may promote stays among promotable nodes; name a standby, "
                    f"remove upstream, or make {node.name} readonly")
            if node.name in synchronous:
                found.append(
                    f"{node.name} is in synchronous_standbys and has the upstream {up}: a "
                    "synchronous standby must stream from the primary (whichever node that "
                    "is), which waits for it to confirm each commit; remove upstream on "
                    f"{node.host}, or take {node.name} out of synchronous_standbys")
    found += _cycle_problems(links, [node.name for _, node in nodes])
    return found


def _cycle_problems(links: dict[str, str], order: list[str]) -> list[str]:
    """Each cycle of upstreams once, from its node that comes first in the inventory."""
    found = []
    reported: set[frozenset[str]] = set()
    for start in order:
        path: list[str] = []
        current = start
        while current in links and current not in path:
            path.append(current)
            current = links[current]
        if current not in path:
            continue  # the chain ends at the primary (or at a node without upstream)
        cycle = path[path.index(current):]
        if frozenset(cycle) in reported:
            continue
        reported.add(frozenset(cycle))
        first = min(range(len(cycle)), key=lambda i: order.index(cycle[i]))
        cycle = cycle[first:] + cycle[:first]
        found.append(
            f"upstream makes a cycle, {' -> '.join([*cycle, cycle[0]])}: every chain of "
            "upstreams must end at the primary; remove upstream from one of these nodes")
    return found


def _standby_setting(data: Any, name: str, schema: Schema) -> float | None:
    """A node's value of a PostgreSQL setting as its postgresql.conf will have it: from its
    group data key when there is one, else postgresql_settings_extra, else PostgreSQL's
    default."""
    setting = postgresql_settings()[name]
    if name in schema.types:
        value = data.get(name, int(setting.boot))
    else:
        value = (data.get("postgresql_settings_extra") or {}).get(name, int(setting.boot))
    return setting.amount(value)


def _standby_minimum_problems(entries: list[HostEntry], cluster: Cluster,
                              schema: Schema) -> list[str]:
    """Every node needs at least the STANDBY_MINIMUMS of every node it may replicate from:
    the primary, and any standby a failover may promote (the old primary then rejoins as
    its standby, so promotable nodes need each other's values too)."""
    found = []
    nodes = list(zip(cluster.nodes, entries, strict=True))
    for name in STANDBY_MINIMUMS:
        values = {node.name: _standby_setting(entry.data, name, schema)
                  for node, entry in nodes}
        for node, _ in nodes:
            mine = values[node.name]
            sources = [(values[p.name], p.role == "primary", p) for p, _ in nodes
                       if p.promotable and p.name != node.name and values[p.name] is not None]
            if mine is None or not sources:
                continue
            highest, _, source = max(sources, key=lambda s: (s[0], s[1]))
            if mine >= highest:
                continue
            if source.role == "primary":
                why = (f"on the primary {source.name}: a hot standby refuses to start with less "
                       "than its primary has")
            else:
                why = (f"on {source.name}, which a failover may promote: {node.name} could not "
                       "follow it then (a hot standby refuses to start with less than its "
                       "primary has)")
            where = "host data" if name in schema.types else "postgresql_settings_extra"
            found.append(
                f"{name} = {int(mine)} on {node.name} is lower than {int(highest)} {why}; set "
                f"{name} to at least {int(highest)} on {node.name} (in its {where}; the same on "
                "every node is simplest)"
            )
    return found
