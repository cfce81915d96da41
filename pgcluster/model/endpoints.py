"""The cluster's endpoints as data: what HAProxy routes to, what PgBouncer pools, and the
connection strings an application is given (docs/endpoints.md).

HAProxy runs on the hosts of the inventory's `proxy` group. Its read-write endpoint goes
to the one node whose role check answers /primary, its read-only endpoint to the replicas
whose /replica?lag= check passes (the primary only when none does, if group_data says so).
The checks are HTTPS on patroni_rest_port of each node: Patroni's REST API, or pgcluster's
health check (pgcluster/node/health-check.py) under the manual engine, with the same paths
and meaning, so one haproxy.cfg serves both engines. The pooled endpoints go to PgBouncer
on each node, the direct ones to PostgreSQL itself.
"""

from __future__ import annotations

import hashlib
import shlex
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pgcluster.model.cluster import Cluster, HostEntry, ServiceHost, database_entries
from pgcluster.model.layout import Layout
from pgcluster.model.sql import literal

# Where HAProxy finds the cluster CA, to check each node's certificate on its role checks.
HAPROXY_CA = "/etc/haproxy/pgcluster-ca.crt"
PGBOUNCER_DIR = "/etc/pgbouncer"
PGBOUNCER_INI = f"{PGBOUNCER_DIR}/pgbouncer.ini"
USERLIST = f"{PGBOUNCER_DIR}/userlist.txt"
# The lookup PgBouncer's auth_query calls in each database: the SCRAM verifier of a role
# that may log in through the pool; never a superuser's, a replication role's, or the
# roles that must not (pg_rewind's, the lookup's own).
AUTH_SCHEMA = "pgbouncer"
AUTH_FUNCTION = f"{AUTH_SCHEMA}.get_auth(text)"
AUTH_QUERY = f"SELECT usename, passwd FROM {AUTH_SCHEMA}.get_auth($1)"
PORT_KEYS = ("proxy_rw_port", "proxy_ro_port", "proxy_rw_direct_port", "proxy_ro_direct_port",
             "proxy_stats_port")


@dataclass(frozen=True)
class Backend:
    """One database node as HAProxy sees it."""

    name: str
    address: str
    pgbouncer_port: int
    postgresql_port: int
    check_port: int


def backends(cluster: Cluster, data: Mapping[str, Any]) -> list[Backend]:
    return [Backend(n.name, n.address, int(data["pgbouncer_port"]), n.port,
                    int(data["patroni_rest_port"])) for n in cluster.nodes]


def lookup_body(excluded: Sequence[str]) -> str:
    """The body of pgbouncer.get_auth: one SQL statement, compared as text with the
    function's prosrc to tell whether it must be created again."""
    names = ", ".join(literal(name) for name in excluded)
    return ("\n  SELECT s.usename, s.passwd FROM pg_catalog.pg_shadow s\n"
            "  WHERE s.usename = p_usename AND NOT s.usesuper AND NOT s.userepl\n"
            f"    AND s.usename NOT IN ({names})\n")


def lookup_excluded(data: Mapping[str, Any]) -> list[str]:
    return [str(data["rewind_user"]), str(data["pgbouncer_auth_user"])]


def lookup_digest(data: Mapping[str, Any]) -> str:
    return hashlib.md5(lookup_body(lookup_excluded(data)).encode()).hexdigest()


def lookup_context(data: Mapping[str, Any]) -> dict[str, Any]:
    """templates/sql/pgbouncer.sql.j2's values."""
    return {"schema": AUTH_SCHEMA, "role": str(data["pgbouncer_auth_user"]),
            "body": lookup_body(lookup_excluded(data))}


def pgbouncer_context(data: Mapping[str, Any]) -> dict[str, Any]:
    """templates/pgbouncer/*.j2's own values. PgBouncer runs as postgres, so it reads the
    node's certificate and key where PostgreSQL does: one copy, renewed with the server's."""
    layout = Layout.from_data(data)
    return {"userlist": USERLIST, "auth_query": AUTH_QUERY,
            "tls": {"cert": layout.tls_cert_file, "key": layout.tls_key_file,
                    "ca": layout.tls_ca_file}}


def proxy_names(cluster: Cluster) -> list[str]:
    """Names and addresses the nodes' certificates must carry besides their own: clients
    reach PgBouncer and PostgreSQL through a proxy and check the name they connected to
    (sslmode=verify-full against the proxy)."""
    names: list[str] = []
    for proxy in cluster.proxy_hosts:
        for name in (proxy.name, proxy.address):
            if name not in names:
                names.append(name)
    return names


def haproxy_context(data: Mapping[str, Any], cluster: Cluster, proxy: ServiceHost
                    ) -> dict[str, Any]:
    """templates/haproxy/haproxy.cfg.j2's values, for one proxy."""
    return {
        "pg": dict(data),
        "proxy": proxy,
        "backends": backends(cluster, data),
        "ca_file": HAPROXY_CA,
        "lag": int(data["proxy_max_replica_lag"]),
        "fallback": data["proxy_ro_fallback"] == "primary",
        "ports": {key: int(data[key]) for key in PORT_KEYS},
        "stats_address": str(data["proxy_stats_address"]),
        "check": {"inter": int(data["proxy_check_interval"]),
                  "fastinter": int(data["proxy_check_fast_interval"]),
                  "fall": int(data["proxy_check_fall"]), "rise": int(data["proxy_check_rise"])},
    }


@dataclass(frozen=True)
class Endpoint:
    name: str
    host: str
    port: int

    def conninfo(self, user: str, database: str, sslrootcert: str) -> str:
        return (f"host={self.host} port={self.port} dbname={database} user={user} "
                f"sslmode=verify-full sslrootcert={sslrootcert}")


def endpoints(proxy_host: str, ports: Mapping[str, int]) -> list[Endpoint]:
    """The application's addresses on one proxy (host: as clients reach it)."""
    return [Endpoint("read-write (pooled)", proxy_host, ports["proxy_rw_port"]),
            Endpoint("read-only (pooled)", proxy_host, ports["proxy_ro_port"]),
            Endpoint("read-write (direct, session state)", proxy_host,
                     ports["proxy_rw_direct_port"]),
            Endpoint("read-only (direct, session state)", proxy_host,
                     ports["proxy_ro_direct_port"])]


def multi_host(hosts: Sequence[tuple[str, int]], user: str, database: str, sslrootcert: str,
               attrs: str) -> str:
    """libpq's own failover, for clients that want no proxy: every node, the first that
    is (or prefers to be) what `attrs` asks for."""
    return (f"host={','.join(h for h, _ in hosts)} port={','.join(str(p) for _, p in hosts)} "
            f"dbname={database} user={user} target_session_attrs={attrs} "
            f"sslmode=verify-full sslrootcert={sslrootcert}")


# ---------------------------------------------------------------------- validation


def problems(entries: Sequence[HostEntry], cluster: Cluster) -> list[str]:
    """Ports that would collide, pools that cannot fit in max_connections."""
    found: list[str] = []
    for entry in entries:
        if entry.name not in {p.host for p in cluster.proxy_hosts}:
            continue
        ports: dict[int, list[str]] = defaultdict(list)
        for key in PORT_KEYS:
            if key in entry.data:
                ports[int(entry.data[key])].append(key)
        for port, keys in sorted(ports.items()):
            if len(keys) > 1:
                found.append(f"ports collide on the proxy {entry.name}: {' and '.join(keys)} "
                             f"are all {port}; give each endpoint a port of its own")
    # PgBouncer runs only where there are proxies to send it clients.
    for entry in database_entries(entries) if cluster.proxy_hosts else []:
        data = entry.data
        if "pgbouncer_port" not in data:
            continue
        taken = {int(data[k]): k for k in ("postgresql_port", "patroni_rest_port",
                                           "etcd_client_port", "etcd_peer_port") if k in data}
        port = int(data["pgbouncer_port"])
        if port in taken:
            found.append(f"ports collide on {entry.name}: pgbouncer_port and {taken[port]} are "
                         f"both {port}; e.g. pgbouncer_port = 6432")
        pooled = int(data.get("pgbouncer_max_db_connections", 0))
        limit = int(data.get("max_connections", 100)) - int(
            data.get("superuser_reserved_connections", 3))
        if pooled and pooled >= limit:
            found.append(
                f"pgbouncer_max_db_connections = {pooled} on {entry.name} leaves no room under "
                f"max_connections = {data.get('max_connections', 100)} (less the superuser's "
                "reserved connections) for replication, backups and the direct ports: lower "
                "it, or raise max_connections")
    return found


# ------------------------------------------------------------------ the proxy's view

# HAProxy's backends by endpoint, as status shows them.
BACKENDS = {"primary": "read-write", "replicas": "read-only",
            "primary-direct": "read-write direct", "replicas-direct": "read-only direct"}
FALLBACK = "-as-primary"


def stats_command(address: str, port: int) -> str:
    """HAProxy's statistics as CSV, from its own page on the proxy host (bash only: the
    proxy needs no client tool)."""
    script = (f"exec 3<>/dev/tcp/{address}/{int(port)} && "
              "printf 'GET /;csv HTTP/1.0\\r\\n\\r\\n' >&3 && timeout 5 cat <&3")
    return f"bash -c {shlex.quote(script)}"


def parse_stats(text: str) -> dict[str, list[dict[str, Any]]]:
    """Per endpoint, each server HAProxy has for it: its node, up or not, and whether it is
    the read-only endpoint's fallback to the primary."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("# pxname,")), None)
    if start is None:
        return {}
    header = lines[start][2:].split(",")
    view: dict[str, list[dict[str, Any]]] = {name: [] for name in BACKENDS.values()}
    for line in lines[start + 1:]:
        row = dict(zip(header, line.split(","), strict=False))
        endpoint = BACKENDS.get(row.get("pxname", ""))
        server = row.get("svname", "")
        if endpoint is None or server in ("FRONTEND", "BACKEND", ""):
            continue
        view[endpoint].append({"node": server.removesuffix(FALLBACK),
                               "up": row.get("status", "").startswith("UP"),
                               "fallback": server.endswith(FALLBACK)})
    return view


def serving(servers: list[dict[str, Any]]) -> list[str]:
    """The nodes an endpoint sends clients to now: its up servers, the fallback ones only
    while no other is up (HAProxy's backup servers)."""
    main = [s["node"] for s in servers if s["up"] and not s["fallback"]]
    return main or [s["node"] for s in servers if s["up"] and s["fallback"]]


def proxy_findings(proxy: str, view: dict[str, list[dict[str, Any]]]) -> list[str]:
    """What makes the endpoints unhealthy: no write target, or two (HAProxy then refuses
    every write connection), or no reader at all."""
    found = []
    writers = serving(view.get("read-write", []))
    if len(writers) != 1:
        found.append(f"the read-write endpoint of {proxy} has "
                     + (f"{len(writers)} write targets ({', '.join(writers)}): it refuses "
                        "connections" if writers else "no write target"))
    if not serving(view.get("read-only", [])):
        found.append(f"the read-only endpoint of {proxy} has no server to send reads to")
    return found
