"""Patroni and etcd as data: their configuration files, the checks on their settings, what
Patroni says about the cluster, and the patronictl commands that change it (pure: the
steps install, start and drive the services).

Written for the versions Debian 12 packages, Patroni 3.0.2 and etcd 3.4.23; every shape
below is taken from Patroni's own source at v3.0.2 (file and function named where used).

- patroni_config(): the whole /etc/patroni/config.yml, from the same group data as
  everything else. PostgreSQL keeps the configuration pgcluster renders
  (/etc/postgresql/15/main/postgresql.conf as Patroni's custom_conf, pg_hba.conf and
  pg_ident.conf through hba_file and ident_file); Patroni adds only what it manages.
- etcd_environment(): /etc/default/etcd, one etcd member per database node, or per host
  of the inventory's `etcd` group.
- problems(): Patroni's timing rule and minimums (3.0.2 does not check them), etcd's, and
  what Patroni would silently replace.
- parse_members() and parse_cluster(): `patronictl list -f json` and GET /cluster into one
  PatroniView, whose problems() say what is wrong.
- switchover_command(), failover_command(): patronictl command lines, shell-quoted.
"""

from __future__ import annotations

import ipaddress
import json
import re
import shlex
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pgcluster.errors import ClusterStateError
from pgcluster.model.cluster import (
    ETCD_GROUP,
    Cluster,
    HostEntry,
    Node,
    ServiceHost,
    database_entries,
)
from pgcluster.model.conninfo import ssl_params
from pgcluster.model.layout import (
    ETCD_TLS_DIR,
    PATRONI_CONFIG,
    PATRONI_PGPASS,
    SOCKET_DIR,
    Layout,
)
from pgcluster.model.settings import postgresql_settings

ENGINES = ("manual", "patroni")
WATCHDOG_DEVICE = "/dev/watchdog"
# Seconds between the watchdog's last keepalive and the leader lock's expiry (Patroni's
# default, patroni/watchdog/base.py WatchdogConfig): the node is reset before another may
# take the lock.
WATCHDOG_SAFETY_MARGIN = 5
PATRONI_MIN_TTL, PATRONI_MIN_LOOP_WAIT, PATRONI_MIN_RETRY_TIMEOUT = 20, 2, 3
ETCD_ELECTION_HEARTBEATS = 5  # etcd refuses an election timeout under 5 heartbeats
MB = 1024 * 1024


def effective_engine(setting: str | None, running: str | None) -> str:
    """The engine a run works with: ha_engine when set, else the one the cluster runs (as
    the nodes report it), else "manual" (a new cluster)."""
    return setting or running or "manual"


def running_engine(services: Mapping[str, Mapping[str, Any]],
                   live: Mapping[str, Mapping[str, Any]]) -> str | None:
    """The engine the nodes run (facts.patroni.HaServices, facts.postgres.PgNode by host):
    Patroni wherever one node is configured for it and has it enabled (a take-over may have
    stopped half-way: it goes on), manual where a node holds a data directory, None for a
    cluster not built yet."""
    if any(s.get("patroni_config") and (s.get("patroni") or {}).get("enabled")
           for s in services.values()):
        return "patroni"
    if any(state.get("data") for state in live.values()):
        return "manual"
    return None


def decide_engine(setting: str | None, running: str | None) -> str:
    """The engine of this run: the one asked for (and a manual cluster taken over by
    Patroni in place), or the one running. Patroni is never switched back behind the
    user's back, nor on request: the way back is a new cluster restored from a backup."""
    if setting == "manual" and running == "patroni":
        raise ClusterStateError(
            "this cluster runs on Patroni and ha_engine = \"manual\" asks to go back: "
            "pgcluster does not hand a cluster back from Patroni (Patroni's DCS holds the "
            "leader; stopping it would leave no guard against two primaries). Keep "
            "ha_engine = \"patroni\" (or unset: the running engine is kept), or build a new "
            "manual cluster and restore a backup onto it."
        )
    return effective_engine(setting, running)


# --------------------------------------------------------------------------- addresses


def _is_ipv6(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).version == 6
    except ValueError:
        return False


def _is_ip(address: str) -> bool:
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return False
    return True


def host_port(address: str, port: int) -> str:
    """address:port, an IPv6 address in brackets (Patroni's split_host_port strips them)."""
    return f"[{address}]:{port}" if _is_ipv6(address) else f"{address}:{port}"


def https_url(address: str, port: int) -> str:
    return f"https://{host_port(address, port)}"


# -------------------------------------------------------------------------------- etcd


@dataclass(frozen=True)
class EtcdMember:
    name: str  # the node's (or etcd host's) name, etcd's member name
    address: str
    peer_url: str  # https://ADDRESS:2380
    client_url: str  # https://ADDRESS:2379
    client: str  # ADDRESS:2379, as Patroni's etcd3.hosts lists it


def etcd_members(cluster: Cluster, data: Mapping[str, Any]) -> list[EtcdMember]:
    """The etcd cluster's members, in inventory order: the hosts of the `etcd` group when
    the inventory has one (etcd on hosts of its own, or on some of the nodes), else every
    database node."""
    peer, client = int(data["etcd_peer_port"]), int(data["etcd_client_port"])
    hosts: Sequence[Node | ServiceHost] = cluster.etcd_hosts or cluster.nodes
    return [EtcdMember(n.name, n.address, https_url(n.address, peer),
                       https_url(n.address, client), host_port(n.address, client))
            for n in hosts]


def runs_etcd(cluster: Cluster, host: str) -> bool:
    """Whether an inventory host is a member of the etcd cluster."""
    if cluster.etcd_hosts:
        return cluster.etcd_host(host) is not None
    return cluster.is_node(host)


def initial_cluster(cluster: Cluster, data: Mapping[str, Any]) -> str:
    """ETCD_INITIAL_CLUSTER: name1=https://a:2380,name2=https://b:2380,..."""
    return ",".join(f"{m.name}={m.peer_url}" for m in etcd_members(cluster, data))


def etcd_tls_files() -> dict[str, str]:
    """etcd's copies of the node's certificate, key and CA (owner etcd)."""
    return {"cert": f"{ETCD_TLS_DIR}/server.crt", "key": f"{ETCD_TLS_DIR}/server.key",
            "ca": f"{ETCD_TLS_DIR}/ca.crt"}


def etcd_environment(data: Mapping[str, Any], node: Node | ServiceHost,
                     cluster: Cluster) -> dict[str, str]:
    """/etc/default/etcd for this member, as etcd 3.4's ETCD_* variables (in file order)."""
    mine = [m for m in etcd_members(cluster, data) if m.name == node.name]
    if not mine:
        raise KeyError(f"{node.name} is not a member of the etcd cluster")
    me = mine[0]
    client_port = int(data["etcd_client_port"])
    # etcdctl on the node may use the loopback; etcd refuses to bind one address twice.
    listen_client = list(dict.fromkeys([me.client_url, https_url("127.0.0.1", client_port)]))
    tls = etcd_tls_files()
    return {
        "ETCD_NAME": node.name,
        "ETCD_DATA_DIR": str(data["etcd_data_dir"]),
        "ETCD_LISTEN_PEER_URLS": me.peer_url,
        "ETCD_INITIAL_ADVERTISE_PEER_URLS": me.peer_url,
        "ETCD_LISTEN_CLIENT_URLS": ",".join(listen_client),
        "ETCD_ADVERTISE_CLIENT_URLS": me.client_url,
        "ETCD_INITIAL_CLUSTER": initial_cluster(cluster, data),
        # Members of another cluster with the same names and addresses are refused.
        "ETCD_INITIAL_CLUSTER_TOKEN": f"{data['patroni_scope']}-etcd",
        # Read only when the data directory is empty, at the cluster's first start.
        "ETCD_INITIAL_CLUSTER_STATE": "new",
        "ETCD_CERT_FILE": tls["cert"],
        "ETCD_KEY_FILE": tls["key"],
        "ETCD_TRUSTED_CA_FILE": tls["ca"],
        "ETCD_CLIENT_CERT_AUTH": "true",
        "ETCD_PEER_CERT_FILE": tls["cert"],
        "ETCD_PEER_KEY_FILE": tls["key"],
        "ETCD_PEER_TRUSTED_CA_FILE": tls["ca"],
        "ETCD_PEER_CLIENT_CERT_AUTH": "true",
        "ETCD_HEARTBEAT_INTERVAL": str(data["etcd_heartbeat_interval"]),
        "ETCD_ELECTION_TIMEOUT": str(data["etcd_election_timeout"]),
        # Patroni rewrites its keys every loop_wait: without compaction etcd keeps every
        # revision until its 2 GB quota is full, and then refuses all writes.
        "ETCD_AUTO_COMPACTION_MODE": "periodic",
        "ETCD_AUTO_COMPACTION_RETENTION": "1",  # hours
    }


# ----------------------------------------------------------------------------- Patroni

# PostgreSQL settings that Patroni 3.0.2 passes on pg_ctl's command line, above
# postgresql.conf and ALTER SYSTEM, and takes from the DCS only (ConfigHandler.CMDLINE_OPTIONS
# in patroni/postgresql/config.py; Config._process_postgresql_parameters in
# patroni/config.py drops them from the local file). Each with the group data key that
# holds it (None: postgresql_settings_extra, where set) and the least value Patroni
# accepts: below it Patroni silently uses its own default.
DCS_PARAMETERS: dict[str, tuple[str | None, int | None]] = {
    "max_connections": ("max_connections", 25),
    "max_wal_senders": ("max_wal_senders", 3),
    "max_replication_slots": ("max_replication_slots", 4),
    "wal_level": ("wal_level", None),
    "wal_keep_size": ("wal_keep_size", 16),  # MB (parse_int(v, 'MB') >= 16)
    "max_worker_processes": (None, 2),
    "max_prepared_transactions": (None, 0),
    "max_locks_per_transaction": (None, 32),
    "track_commit_timestamp": (None, None),
}
# Patroni always starts PostgreSQL with these on, whatever any file says (CMDLINE_OPTIONS
# whose check is `lambda _: False`): group data must agree.
FORCED_ON = ("hot_standby", "wal_log_hints")


def _pg_value(value: Any) -> Any:
    """A setting as Patroni passes it to pg_ctl: booleans as on/off, the rest as given."""
    if isinstance(value, bool):
        return "on" if value else "off"
    return value


def dcs_parameters(data: Mapping[str, Any]) -> dict[str, Any]:
    """bootstrap.dcs.postgresql.parameters: the DCS_PARAMETERS this node's data sets."""
    extra = {name.lower(): value
             for name, value in (data.get("postgresql_settings_extra") or {}).items()}
    found = {}
    for name, (key, _) in DCS_PARAMETERS.items():
        value = data.get(key) if key is not None else extra.get(name)
        if value is not None:  # not set (or, in validation, a wrong value dropped)
            found[name] = _pg_value(value)
    return found


def dcs_config(data: Mapping[str, Any], cluster: Cluster) -> dict[str, Any]:
    """The dynamic configuration (bootstrap.dcs): Patroni writes it into the DCS when it
    initialises a cluster or takes over a running one, and never reads bootstrap.dcs again;
    later changes go through PATCH /config (dcs_patch)."""
    return {
        "ttl": data["patroni_ttl"],
        "loop_wait": data["patroni_loop_wait"],
        "retry_timeout": data["patroni_retry_timeout"],
        "maximum_lag_on_failover": data["patroni_maximum_lag_on_failover"],
        # 3.0.2's own name (patroni/config.py __DEFAULT_CONFIG); master_start_timeout is
        # only its deprecated alias, used when this one is absent.
        "primary_start_timeout": data["patroni_primary_start_timeout"],
        "failsafe_mode": data["patroni_failsafe_mode"],
        # Patroni picks the synchronous standby itself among the members without nosync
        # (tags below): the nodes of synchronous_standbys.
        "synchronous_mode": bool(data["synchronous_standbys"]),
        "postgresql": {
            "use_pg_rewind": True,
            "use_slots": True,
            "parameters": dcs_parameters(data),
        },
        # Every node's slot, permanent: Patroni 3.0.2 drops the slot of a member whose key
        # has expired (down longer than ttl) unless it is listed here, and the node would
        # then need the archive to catch up. As pgcluster keeps them (max_slot_wal_keep_size
        # caps the WAL they hold); Patroni skips the one named after the leader itself.
        "slots": {n.slot: {"type": "physical"} for n in cluster.nodes},
    }


def dcs_patch(current: Mapping[str, Any], wanted: Mapping[str, Any]) -> dict[str, Any]:
    """The PATCH /config body that turns the DCS's configuration (GET /config) into the
    wanted one: every wanted value that differs, nested as the configuration is (empty:
    nothing to change). Keys only the DCS has are left alone."""
    patch: dict[str, Any] = {}
    for key, value in wanted.items():
        have = current.get(key)
        if isinstance(value, Mapping) and isinstance(have, Mapping):
            inner = dcs_patch(have, value)
            if inner:
                patch[key] = inner
        elif have != value and str(have) != str(value):  # the DCS may hold "100" for 100
            patch[key] = value
    return patch


def patroni_tags(data: Mapping[str, Any], node: Node) -> dict[str, bool | str]:
    """The read-only replica is never promoted (nofailover) nor made synchronous (nosync);
    with synchronous_standbys, only the nodes it names may be synchronous. A cascading
    replica streams from its `upstream` (replicatefrom: Patroni falls back to the leader
    while that member is not running, and its slot is made on the upstream)."""
    sync = list(data["synchronous_standbys"] or [])
    tags: dict[str, bool | str] = {
        "nofailover": not node.promotable,
        "noloadbalance": False,
        "clonefrom": False,
        "nosync": not node.promotable or bool(sync and node.name not in sync)
        or node.upstream is not None,
    }
    if node.upstream is not None:
        tags["replicatefrom"] = node.upstream
    return tags


def patroni_config(data: Mapping[str, Any], node: Node, cluster: Cluster) -> dict[str, Any]:
    """The whole /etc/patroni/config.yml of this node, as data."""
    layout = Layout.from_data(data)
    tls = {"certfile": layout.tls_cert_file, "keyfile": layout.tls_key_file}
    rest = host_port(node.address, int(data["patroni_rest_port"]))
    # Node-to-node connections as every other pgcluster client makes them: TLS,
    # verify-full against the cluster CA, SCRAM bound to the channel (conninfo.ssl_params).
    remote = ssl_params(data)
    initdb: list[Any] = [{"encoding": data["initdb_encoding"]},
                         {"locale": data["initdb_locale"]}]
    if data["data_checksums"]:
        initdb.append("data-checksums")
    initdb += [{"auth-local": "peer"}, {"auth-host": "scram-sha-256"}]
    return {
        "scope": data["patroni_scope"],
        "namespace": data["patroni_namespace"],
        "name": node.name,
        # journald collects Patroni's stderr.
        "log": {"level": "INFO"},
        "restapi": {
            "listen": rest,
            "connect_address": rest,
            **tls,
            "cafile": layout.tls_ca_file,
            # Client certificates of the cluster CA for the unsafe endpoints (POST, PUT,
            # PATCH, DELETE), with the user and password; reads need neither.
            "verify_client": "optional",
            "authentication": {"username": data["patroni_rest_user"],
                               "password": data["patroni_rest_password"]},
        },
        # patronictl on the node (as root or postgres) presents the node's certificate.
        "ctl": {**tls, "cacert": layout.tls_ca_file},
        "etcd3": {
            "hosts": [m.client for m in etcd_members(cluster, data)],
            "protocol": "https",
            "cacert": layout.tls_ca_file,
            "cert": layout.tls_cert_file,
            "key": layout.tls_key_file,
        },
        "bootstrap": {
            "dcs": dcs_config(data, cluster),
            "initdb": initdb,
        },
        "postgresql": {
            "listen": f"{data['listen_addresses']}:{node.port}",
            "connect_address": host_port(node.address, node.port),
            "data_dir": layout.data_dir,
            "bin_dir": layout.bin_dir,
            # Patroni writes its postgresql.conf here, including pgcluster's own file
            # (custom_conf) and then only the settings it manages.
            "config_dir": layout.data_dir,
            "custom_conf": f"{layout.conf_dir}/postgresql.conf",
            "pgpass": PATRONI_PGPASS,
            # The superuser connects over the socket, by peer authentication.
            "use_unix_socket": True,
            "pg_ctl_timeout": data["patroni_pg_ctl_timeout"],
            "parameters": {
                # pgcluster's pg_hba.conf and pg_ident.conf: Patroni writes none of its own.
                "hba_file": f"{layout.conf_dir}/pg_hba.conf",
                "ident_file": f"{layout.conf_dir}/pg_ident.conf",
                "unix_socket_directories": SOCKET_DIR,
            },
            "authentication": {
                "superuser": {"username": "postgres"},
                "replication": {"username": data["replication_user"],
                                "password": data["replication_password"], **remote},
                "rewind": {"username": data["rewind_user"],
                           "password": data["rewind_password"], **remote},
            },
            "create_replica_methods": ["basebackup"],
            # Patroni always adds -X stream itself, and refuses wal-method among these
            # (Bootstrap.basebackup in patroni/postgresql/bootstrap.py).
            "basebackup": [{"checkpoint": "fast"}],
        },
        "watchdog": {"mode": data["patroni_watchdog"], "device": WATCHDOG_DEVICE,
                     "safety_margin": WATCHDOG_SAFETY_MARGIN},
        "tags": patroni_tags(data, node),
    }


# --------------------------------------------------------------------------- validation

# Settings the DCS holds once for the whole cluster, or that every node must agree on to
# find the others: a node's own value would be silently ignored, or split the cluster.
CLUSTER_WIDE = ("ha_engine", "patroni_ttl", "patroni_loop_wait", "patroni_retry_timeout",
                "patroni_maximum_lag_on_failover", "patroni_primary_start_timeout",
                "patroni_failsafe_mode", "patroni_scope", "patroni_namespace",
                "etcd_client_port", "etcd_peer_port", "etcd_heartbeat_interval",
                "etcd_election_timeout")
PORT_KEYS = ("postgresql_port", "patroni_rest_port", "etcd_client_port", "etcd_peer_port")
DEBIAN_ETCD_DATA_DIR = "/var/lib/etcd/default"


def _on(names: list[str], everyone: list[str]) -> str:
    return "" if names == everyone else f" on {', '.join(names)}"


def _grouped(entries: Sequence[HostEntry], value: Any) -> dict[Any, list[str]]:
    groups: dict[Any, list[str]] = defaultdict(list)
    for entry in entries:
        groups[value(entry.data)].append(entry.name)
    return groups


def timing_problems(entries: Sequence[HostEntry]) -> list[str]:
    """Patroni's rule, loop_wait + 2 x retry_timeout <= ttl, and the watchdog's room."""
    everyone = [e.name for e in entries]
    found = []
    keys = ("patroni_ttl", "patroni_loop_wait", "patroni_retry_timeout", "patroni_watchdog")
    combos = _grouped(entries, lambda d: tuple(d.get(k) for k in keys))
    for (ttl, loop, retry, watchdog), names in combos.items():
        if not all(isinstance(v, int) for v in (ttl, loop, retry)):
            continue  # a wrong type is reported by its type
        need = loop + 2 * retry
        if need > ttl:
            fixes = [f"patroni_ttl = {max(need, PATRONI_MIN_TTL)}"]
            if (ttl - loop) // 2 >= PATRONI_MIN_RETRY_TIMEOUT:
                fixes.append(f"patroni_retry_timeout = {(ttl - loop) // 2}")
            found.append(
                f"patroni_loop_wait + 2 x patroni_retry_timeout = {loop} + 2 x {retry} = {need} "
                f"is more than patroni_ttl = {ttl}{_on(names, everyone)}: the leader could "
                "lose its lock while Patroni still retries the DCS, and a second primary be "
                "elected (Patroni's rule: loop_wait + 2 x retry_timeout <= ttl); e.g. "
                + ", or ".join(fixes))
        elif watchdog != "off" and loop + retry + WATCHDOG_SAFETY_MARGIN > ttl:
            found.append(
                f"patroni_loop_wait + patroni_retry_timeout + {WATCHDOG_SAFETY_MARGIN} "
                f"(the watchdog's safety margin) = {loop + retry + WATCHDOG_SAFETY_MARGIN} is "
                f"more than patroni_ttl = {ttl}{_on(names, everyone)}: with the DCS "
                "unreachable, the watchdog would reset the primary before Patroni had "
                f"stopped it cleanly; e.g. patroni_ttl = {loop + retry + WATCHDOG_SAFETY_MARGIN}"
                ", or patroni_watchdog = 'off'")
    return found


def etcd_problems(entries: Sequence[HostEntry]) -> list[str]:
    everyone = [e.name for e in entries]
    found = []
    keys = ("etcd_heartbeat_interval", "etcd_election_timeout", "patroni_retry_timeout")
    for (beat, election, retry), names in _grouped(
            entries, lambda d: tuple(d.get(k) for k in keys)).items():
        if not all(isinstance(v, int) for v in (beat, election, retry)):
            continue
        if election < ETCD_ELECTION_HEARTBEATS * beat:
            least = ETCD_ELECTION_HEARTBEATS * beat
            good = 2 * least if 2 * least < retry * 1000 else least  # and the rule below
            found.append(
                f"etcd_election_timeout = {election}{_on(names, everyone)} is less than "
                f"{ETCD_ELECTION_HEARTBEATS} x etcd_heartbeat_interval = "
                f"{ETCD_ELECTION_HEARTBEATS * beat} (milliseconds): etcd refuses to start; "
                f"e.g. etcd_election_timeout = {good}")
        elif election >= retry * 1000:
            found.append(
                f"etcd_election_timeout = {election}{_on(names, everyone)} is not shorter than "
                f"patroni_retry_timeout = {retry} s: an etcd election could outlast Patroni's "
                "retries and demote a healthy primary; e.g. etcd_election_timeout = "
                f"{max(ETCD_ELECTION_HEARTBEATS * beat, retry * 1000 // 5)}")
    for directory, names in _grouped(entries, lambda d: d.get("etcd_data_dir")).items():
        if isinstance(directory, str) and directory.rstrip("/") == DEBIAN_ETCD_DATA_DIR:
            found.append(
                f"etcd_data_dir = {directory!r}{_on(names, everyone)} is the etcd-server "
                "package's own directory, which its first start fills with a cluster of one "
                "member that never joins the others; e.g. etcd_data_dir = "
                "'/var/lib/etcd/pgcluster'")
    return found


def port_problems(entries: Sequence[HostEntry]) -> list[str]:
    found = []
    for entry in entries:
        by_port: dict[Any, list[str]] = defaultdict(list)
        for key in PORT_KEYS:
            if isinstance(entry.data.get(key), int):
                by_port[entry.data[key]].append(key)
        for port, keys in by_port.items():
            if len(keys) > 1:
                are = "are both" if len(keys) == 2 else "are all"
                found.append(f"ports collide on {entry.name}: {' and '.join(keys)} {are} "
                             f"{port}; give each service its own port")
    return found


def cluster_wide_problems(entries: Sequence[HostEntry], keys: Iterable[str]) -> list[str]:
    found = []
    for key in keys:
        groups = _grouped(entries, lambda d, key=key: repr(d.get(key)))
        if len(groups) > 1:
            shown = "; ".join(f"{value} on {', '.join(names)}" for value, names in groups.items())
            found.append(f"{key} differs between nodes ({shown}): the whole cluster shares one "
                         "value; set it once, in group data")
    return found


def member_count_problem(count: int, group: bool = False) -> str | None:
    """Patroni needs a majority of etcd's members: 3 (or more) survive the loss of one;
    2 survive none; 1 is a lab without failover, allowed on the nodes only (a group of one
    host is a single point of failure outside the cluster)."""
    if count == 2 and not group:
        return ("ha_engine 'patroni' with 2 nodes: etcd (a member on each node) works only while "
                "a majority of its members is up, 2 of 2 (its quorum), so losing either node "
                "stops all failover, the one thing Patroni is for; use 3 nodes (an odd number "
                "is best), or 1 for a lab without failover; or an `etcd` inventory group of 3 "
                "hosts (the 2 nodes and a third, small host)")
    if group and count in (1, 2):
        return (f"the inventory's `etcd` group has {count} host{'s' if count > 1 else ''}: "
                "etcd works only while a majority of its members is up, so losing "
                f"{'it' if count == 1 else 'either'} stops all failover; put 3 hosts (or 5) "
                "in the group")
    if group and count % 2 == 0:
        return (f"the inventory's `etcd` group has {count} hosts: an even number survives no "
                f"more losses than {count - 1} and needs a larger majority; put {count - 1} or "
                f"{count + 1} hosts in the group")
    return None


def etcd_group_problems(entries: Sequence[HostEntry], cluster: Cluster) -> list[str]:
    """The `etcd` group: for Patroni only, its members' names unique and addresses usable."""
    members = [e for e in entries if ETCD_GROUP in e.groups]
    if not members:
        return []
    found = []
    manual = [e.name for e in database_entries(entries) if e.data.get("ha_engine") != "patroni"]
    if manual:
        found.append(
            f"the inventory has an `etcd` group ({', '.join(e.name for e in members)}), which "
            "only Patroni uses, but ha_engine is not 'patroni' on "
            f"{', '.join(manual)}: set ha_engine = 'patroni' (group data, or the lab's [data]), "
            "or remove the group")
        return found
    count = member_count_problem(len(members), group=True)
    if count:
        found.append(count)
    names: dict[str, list[str]] = defaultdict(list)
    for member in cluster.etcd_hosts:
        names[member.name].append(member.host)
        if not _is_ip(member.address):
            found.append(
                f"etcd host {member.host} needs an IP address as node_address "
                f"({member.address!r} is a name): etcd binds its listeners to IP addresses "
                "only; e.g. node_address = '10.0.1.20'")
    for name, hosts in names.items():
        if len(hosts) > 1:
            found.append(f"hosts {' and '.join(hosts)} of the `etcd` group share the member name "
                         f"{name!r}: give them distinct `node_name`s")
    addresses = {n.address: n.host for n in cluster.nodes}
    for member in cluster.etcd_hosts:
        other = addresses.get(member.address)
        if other and other != member.host and not cluster.is_node(member.host):
            found.append(
                f"etcd host {member.host} has the address {member.address} of the node {other}: "
                f"to run etcd on that node, put {other} itself in the `etcd` group")
    return found


def _amount(name: str, value: Any) -> float | None:
    """A setting's value in its base unit (wal_keep_size in MB); None: not a number."""
    if isinstance(value, str) and value in ("on", "off"):
        return None
    return postgresql_settings()[name].amount(value)


def patroni_only_problems(entries: Sequence[HostEntry], cluster: Cluster) -> list[str]:
    """What Patroni 3.0.2 would silently change or refuse, for nodes with ha_engine
    'patroni'."""
    everyone = [e.name for e in entries]
    found = []
    count = None if cluster.etcd_hosts else member_count_problem(len(entries))
    if count:
        found.append(count)
    for entry, node in zip(entries, cluster.nodes, strict=True):
        if not _is_ip(node.address):
            found.append(
                f"ha_engine 'patroni' needs an IP address as node_address on {entry.name} "
                f"({node.address!r} is a name): etcd binds its listeners to IP addresses "
                "only; e.g. node_address = '10.0.1.5'")
    for key in FORCED_ON:
        names = [e.name for e in entries if e.data.get(key) is False]
        if names:
            found.append(
                f"ha_engine 'patroni' always starts PostgreSQL with {key} on: set {key} = "
                f"True{_on(names, everyone)}")
    for name, (key, minimum) in DCS_PARAMETERS.items():
        if minimum is None:
            continue
        low = [e for e in entries if (amount := _amount(name, dcs_parameters(e.data).get(name)))
               is not None and amount < minimum]
        for value, names in _grouped(low, lambda d, n=name: dcs_parameters(d)[n]).items():
            where = key or f"postgresql_settings_extra['{name}']"
            least = f"'{minimum}MB'" if name == "wal_keep_size" else minimum
            found.append(
                f"ha_engine 'patroni' needs {where} of at least {least} (it is {value!r}"
                f"{_on(names, everyone) or ' on every node'}): Patroni 3.0.2 ignores less and "
                "starts PostgreSQL with its own default")
    # The DCS holds one value of each for every node (and pg_ctl gets it on its command
    # line): per-node values would be silently replaced.
    for name in DCS_PARAMETERS:
        groups = _grouped(entries, lambda d, n=name: repr(dcs_parameters(d).get(n)))
        if len(groups) > 1:
            shown = "; ".join(f"{value} on {', '.join(names)}" for value, names in groups.items())
            found.append(f"ha_engine 'patroni' keeps {name} in the DCS, one value for every "
                         f"node, but the nodes differ ({shown}): set the same everywhere")
    return found


def problems(entries: Sequence[HostEntry], cluster: Cluster) -> list[str]:
    """Every check on the high-availability settings (the values passed their types)."""
    entries = list(entries)
    found = cluster_wide_problems(entries, CLUSTER_WIDE)
    found += timing_problems(entries) + etcd_problems(entries) + port_problems(entries)
    found += etcd_group_problems(entries, cluster)
    nodes = database_entries(entries)
    if nodes and all(e.data.get("ha_engine") == "patroni" for e in nodes):
        found += patroni_only_problems(nodes, cluster)
    return found


# ---------------------------------------------------------------- what Patroni reports


class PatroniOutputError(ValueError):
    """Output that is not what Patroni 3.0.2 prints (a wrong command, an error message)."""


HEALTHY_STATES = ("running", "streaming")  # 3.0.2 reports a streaming replica as running
LEADER_ROLES = ("leader", "standby_leader")


@dataclass(frozen=True)
class PatroniMember:
    name: str
    host: str
    port: int | None  # None: not shown (patronictl shows it only when not 5432)
    role: str  # leader, standby_leader, sync_standby, replica
    state: str  # running, starting, stopped, crashed, creating replica, ...
    timeline: int | None
    # Bytes behind the cluster's last known WAL position; None for the leader or unknown.
    lag_bytes: int | None
    lag_exact: bool  # False: patronictl's whole MB, rounded
    pending_restart: bool = False
    scheduled_restart: str | None = None
    tags: Mapping[str, Any] = field(default_factory=dict)
    cluster: str | None = None  # patronictl's Cluster column (the scope)

    @property
    def is_leader(self) -> bool:
        return self.role in LEADER_ROLES

    @property
    def healthy(self) -> bool:
        return self.state in HEALTHY_STATES

    @property
    def nofailover(self) -> bool:
        return bool(self.tags.get("nofailover"))


@dataclass(frozen=True)
class PatroniView:
    """The cluster as Patroni sees it, from patronictl or the REST API."""

    members: tuple[PatroniMember, ...]
    source: str  # "patronictl" or "rest"
    paused: bool | None = None  # maintenance mode; None: not in patronictl's JSON
    scheduled_switchover: Mapping[str, Any] | None = None

    @property
    def leaders(self) -> list[PatroniMember]:
        return [m for m in self.members if m.is_leader]

    @property
    def leader(self) -> str | None:
        """The leader's name; None when there is none, or more than one."""
        leaders = self.leaders
        return leaders[0].name if len(leaders) == 1 else None

    def member(self, name: str) -> PatroniMember:
        for member in self.members:
            if member.name == name:
                return member
        raise KeyError(name)

    def problems(self, max_lag_bytes: int | None = None) -> list[str]:
        """What is wrong: no leader, more than one, a member not running, no member that
        could replace the leader, a replica on another timeline than the leader's, or (given
        max_lag_bytes, such as patroni_maximum_lag_on_failover) a promotable replica too far
        behind to be elected."""
        if not self.members:
            return ["Patroni reports no members: is Patroni running, and does it reach etcd?"]
        found = []
        leaders = self.leaders
        if not leaders:
            found.append("no leader: no member holds the leader lock, so nothing accepts "
                         "writes (Patroni elects one within patroni_ttl"
                         + (", but not in maintenance mode" if self.paused else "") + ")")
        elif len(leaders) > 1:
            found.append(f"more than one leader: {', '.join(m.name for m in leaders)} (a split "
                         "brain, or two clusters in one output)")
        for member in self.members:
            if not member.healthy:
                found.append(f"{member.name} is {member.state or 'in no state'}, not running")
        leader = leaders[0] if len(leaders) == 1 else None
        candidates = [m for m in self.members if not m.is_leader and m.healthy
                      and not m.nofailover]
        if leader and len(self.members) > 1 and not candidates:
            found.append(f"no failover candidate: no member but the leader {leader.name} is "
                         "running without nofailover, so nothing could replace it")
        for member in self.members:
            if member is leader or member.is_leader:
                continue
            if member.healthy and member.timeline is None:
                found.append(f"{member.name} runs on no known timeline: its Patroni cannot "
                             "read it (a replication connection to localhost, which "
                             "pg_hba.conf and the certificate must let in), nor decide a "
                             "pg_rewind")
            if leader and leader.timeline is not None and member.timeline is not None \
                    and member.timeline != leader.timeline:
                found.append(f"{member.name} is on timeline {member.timeline}, the leader "
                             f"{leader.name} on {leader.timeline}: it does not follow it yet")
            if max_lag_bytes is not None and not member.nofailover \
                    and member.lag_bytes is not None and member.lag_bytes > max_lag_bytes:
                about = "" if member.lag_exact else "about "
                found.append(f"{member.name} is {about}{member.lag_bytes} bytes behind, more "
                             f"than {max_lag_bytes}: Patroni would not promote it")
        return found

    def notes(self) -> list[str]:
        """Worth saying, not wrong: pending restarts, maintenance mode, what is scheduled."""
        found = []
        if self.paused:
            found.append("maintenance mode (patronictl pause): Patroni fails over nothing "
                         "until `patronictl resume`")
        for member in self.members:
            if member.pending_restart:
                found.append(f"{member.name} has a pending restart: a changed setting takes "
                             "effect only after `patronictl restart`")
            if member.scheduled_restart:
                found.append(f"{member.name} has a restart scheduled: "
                             f"{member.scheduled_restart}")
        if self.scheduled_switchover:
            found.append(f"a switchover is scheduled: {dict(self.scheduled_switchover)}")
        return found


def restart_candidate(view: PatroniView) -> PatroniMember | None:
    """Whom a leader that waits for a restart hands over to first, so that the cluster's
    writes pause for one switchover, not for a restart: a running replica that may be
    promoted, the synchronous standby first (under synchronous_mode Patroni promotes no
    other), then the one least behind. None: nobody could take over."""
    able = [m for m in view.members if not m.is_leader and m.healthy and not m.nofailover
            and m.timeline is not None]
    if any(m.role == "sync_standby" for m in view.members):
        able = [m for m in able if m.role == "sync_standby"]
    able.sort(key=lambda m: (m.lag_bytes is None, m.lag_bytes or 0, m.name))
    return able[0] if able else None


def _load(text: str | bytes | Any) -> Any:
    if not isinstance(text, str | bytes):
        return text
    try:
        return json.loads(text)
    except ValueError as error:
        shown = (text.decode(errors="replace") if isinstance(text, bytes) else text)[:200]
        raise PatroniOutputError(f"not JSON: {shown!r}") from error


def _documents(text: str | bytes) -> list[Any]:
    """Every JSON document in the text: patronictl prints one array per cluster it lists."""
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    decoder, found, at = json.JSONDecoder(), [], 0
    text = text.strip()
    while at < len(text):
        try:
            document, at = decoder.raw_decode(text, at)
        except ValueError as error:
            raise PatroniOutputError(f"not JSON: {text[at:at + 200]!r}") from error
        found.append(document)
        while at < len(text) and text[at].isspace():
            at += 1
    return found


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _split_host(text: str) -> tuple[str, int | None]:
    """patronictl's Host: "address", or "address:port" when a port is not 5432 (an IPv6
    address with a port cannot be told apart from one without: parse_cluster can)."""
    if not text or _is_ip(text):
        return text, None
    host, sep, port = text.rpartition(":")
    if sep and port.isdigit():
        return host.strip("[]"), int(port)
    return text, None


def parse_members(text: str | bytes) -> PatroniView:
    """`patronictl -c /etc/patroni/config.yml list -f json` of Patroni 3.0.2: a JSON array
    with one object per member, keyed by the table's column names (output_members and
    print_output in patroni/ctl.py). Cluster, Member, Host, Role ("Leader", "Standby Leader",
    "Sync Standby", "Replica"), State, TL, "Lag in MB" (whole MB or "unknown"); "Pending
    restart" ("*"), "Scheduled restart" and Tags only when some member has them. A key
    whose value would be empty is left out (the leader's lag, a stopped member's TL).
    Several clusters listed at once print one array each: their members are all read."""
    documents = _documents(text)
    rows = [row for document in documents if isinstance(document, list) for row in document]
    if not documents or not all(isinstance(d, list) for d in documents) \
            or not all(isinstance(r, dict) and "Member" in r for r in rows):
        raise PatroniOutputError("not patronictl's member list (a JSON array of objects "
                                 "with a Member)")
    members = []
    for row in rows:
        host, port = _split_host(str(row.get("Host", "")))
        lag = row.get("Lag in MB")
        lag_mb = _int_or_none(lag)
        scheduled = row.get("Scheduled restart")
        members.append(PatroniMember(
            name=str(row["Member"]), host=host, port=port,
            role=str(row.get("Role", "")).strip().lower().replace(" ", "_"),
            state=str(row.get("State", "")), timeline=_int_or_none(row.get("TL")),
            lag_bytes=None if lag_mb is None else lag_mb * MB, lag_exact=False,
            pending_restart=bool(row.get("Pending restart")),
            scheduled_restart=str(scheduled) if scheduled else None,
            tags=dict(row.get("Tags") or {}), cluster=row.get("Cluster")))
    return PatroniView(tuple(members), source="patronictl")


def parse_cluster(text: str | bytes | Mapping[str, Any]) -> PatroniView:
    """GET /cluster of Patroni 3.0.2's REST API (do_GET_cluster in patroni/api.py, built by
    cluster_as_json in patroni/utils.py): {"members": [{"name", "role" (leader,
    standby_leader, sync_standby, replica), "state", "api_url", "host", "port", "timeline",
    "lag" (bytes, or "unknown"; absent for the leader), "pending_restart", "scheduled_restart",
    "tags"}, ...], "pause": true when paused, "scheduled_switchover": {"at", "from", "to"}}."""
    data = _load(text)
    if not isinstance(data, Mapping) or not isinstance(data.get("members"), list):
        raise PatroniOutputError("not Patroni's GET /cluster (an object with members)")
    members = []
    for item in data["members"]:
        if not isinstance(item, Mapping) or "name" not in item:
            raise PatroniOutputError(f"a member without a name: {item!r}")
        scheduled = item.get("scheduled_restart")
        if isinstance(scheduled, Mapping):
            scheduled = scheduled.get("schedule")
        members.append(PatroniMember(
            name=str(item["name"]), host=str(item.get("host", "")),
            port=_int_or_none(item.get("port")), role=str(item.get("role", "")),
            state=str(item.get("state", "")), timeline=_int_or_none(item.get("timeline")),
            lag_bytes=_int_or_none(item.get("lag")), lag_exact=True,
            pending_restart=bool(item.get("pending_restart")),
            scheduled_restart=str(scheduled) if scheduled else None,
            tags=dict(item.get("tags") or {})))
    switchover = data.get("scheduled_switchover")
    return PatroniView(tuple(members), source="rest", paused=bool(data.get("pause")),
                       scheduled_switchover=switchover if isinstance(switchover, Mapping)
                       else None)


# ------------------------------------------------------------------------- patronictl


def patronictl(*args: str, config: str = PATRONI_CONFIG) -> str:
    """A patronictl command line, shell-quoted. The configuration names the DCS, the
    scope and the REST API's credentials, so patronictl runs as root or postgres."""
    return shlex.join(["patronictl", "-c", config, *args])


def list_command() -> str:
    return patronictl("list", "-f", "json")


def switchover_command(leader: str, candidate: str | None = None,
                       scheduled: str | None = None) -> str:
    """A switchover from the current leader (3.0.2 refuses a wrong one) to candidate
    (None: Patroni picks the healthiest replica), now or at `scheduled` (ISO 8601)."""
    args = ["switchover", "--leader", leader]
    if candidate:
        args += ["--candidate", candidate]
    if scheduled:
        args += ["--scheduled", scheduled]
    return patronictl(*args, "--force")


def failover_command(candidate: str) -> str:
    """A failover to candidate: 3.0.2 requires one ("Failover could be performed only to a
    specific candidate"); a healthy leader is demoted first."""
    return patronictl("failover", "--candidate", candidate, "--force")


@dataclass(frozen=True)
class CommandResult:
    ok: bool
    leader: str | None  # the leader it reports afterwards, when it says
    message: str


_DONE = re.compile(r'Successfully (?:switched|failed) over to "(?P<leader>[^"]+)"')
_OTHER = re.compile(r'(?:Switched|Failed) over to "(?P<leader>[^"]+)" instead of "[^"]+"')


def command_result(output: str) -> CommandResult:
    """What a switchover or failover did, from patronictl's output: 3.0.2 exits 0 even when
    the REST API refused ("Switchover failed, details: 503, ..."), so its exit status says
    nothing (_do_failover_or_switchover in patroni/ctl.py, the messages of
    poll_failover_result in patroni/api.py)."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for line in lines:
        if match := _DONE.search(line):
            return CommandResult(True, match["leader"], line)
        if match := _OTHER.search(line):
            return CommandResult(True, match["leader"], line)
        if re.search(r"(?:Switchover|Failover) scheduled", line):
            return CommandResult(True, None, line)
    for line in lines:
        if "failed, details:" in line or "falling back to DCS" in line \
                or "status unknown" in line:
            return CommandResult(False, None, line)
    return CommandResult(False, None, lines[-1] if lines else "no output")
