"""The cluster's health as one report: nodes, roles, timelines, LSNs, replication lag,
slots, archiver and the last backup; rendered as a table or JSON.

Collected through a control.session.Session (pyinfra connectors), so it reads the Docker lab and
SSH hosts alike. `healthy` is False, with the reasons in `issues`, whenever anything needs
an operator: a node down, not exactly one primary, a replica not streaming, a lost slot,
a failing archiver, a lag beyond status_max_lag_bytes, an expired TLS certificate.
`warnings` name what needs attention soon without being broken yet: a certificate inside
the renewal margin (tls_renew_days), which the next deploy run renews.
"""

from __future__ import annotations

import shlex
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from pgcluster.control import tls
from pgcluster.control.session import Session
from pgcluster.errors import ClusterStateError
from pgcluster.facts.lock import OperationLock
from pgcluster.facts.patroni import PatroniMembers
from pgcluster.facts.postgres import Archiver
from pgcluster.lab.docker import container_status
from pgcluster.model import endpoints
from pgcluster.model.cluster import Node
from pgcluster.model.layout import Layout
from pgcluster.model.patroni import PatroniView
from pgcluster.model.settings import duration_seconds
from pgcluster.model.units import human_bytes
from pgcluster.model.wal import NODE_LSN_SQL

DEFAULT_MAX_LAG_BYTES = 64 * 1024 * 1024

REPLICATION_SQL = f"""
select application_name, coalesce(host(client_addr), ''), state, sync_state,
       coalesce(sent_lsn::text, ''), coalesce(write_lsn::text, ''),
       coalesce(flush_lsn::text, ''), coalesce(replay_lsn::text, ''),
       coalesce(pg_wal_lsn_diff({NODE_LSN_SQL}, replay_lsn)::bigint::text, ''),
       coalesce(extract(epoch from write_lag)::text, ''),
       coalesce(extract(epoch from flush_lag)::text, ''),
       coalesce(extract(epoch from replay_lag)::text, '')
from pg_stat_replication order by application_name
"""  # on the primary, or on a cascade's upstream (a standby)
SLOTS_SQL = """
select slot_name, active::text, coalesce(wal_status, ''),
       coalesce(pg_wal_lsn_diff(case when pg_is_in_recovery() then pg_last_wal_receive_lsn()
                                     else pg_current_wal_lsn() end, restart_lsn)::bigint::text, '')
from pg_replication_slots order by slot_name
"""
REPLAY_DELAY_SQL = (
    "select coalesce(extract(epoch from now() - pg_last_xact_replay_timestamp())::text, '')"
)


@dataclass
class NodeStatus:
    name: str
    inventory_role: str
    address: str
    port: int
    published_port: int | None
    reachable: bool
    container: str | None = None  # lab only: the Docker container's state
    running: bool = False
    role: str = "UNREACHABLE"  # PRIMARY / STANDBY / READONLY / DOWN / UNREACHABLE
    timeline: int | None = None
    current_lsn: str | None = None
    receive_lsn: str | None = None
    replay_lsn: str | None = None
    upstream: str | None = None
    receiver_status: str | None = None
    replay_delay_seconds: float | None = None
    slots: list[dict[str, Any]] = field(default_factory=list)
    certificate_expires: str | None = None  # the server certificate on the node (UTC)
    certificate_days_left: int | None = None


@dataclass
class Report:
    healthy: bool
    issues: list[str]
    primary: str | None
    nodes: list[NodeStatus]
    replication: list[dict[str, Any]]
    archiver: dict[str, Any] | None
    last_backup: dict[str, Any] | None
    collected_at: float
    warnings: list[str] = field(default_factory=list)
    # "patroni" when Patroni manages the cluster (its members as patronictl lists them in
    # `patroni`), else "manual".
    engine: str = "manual"
    patroni: list[dict[str, Any]] | None = None
    # Per proxy: each endpoint's servers as HAProxy sees them (None: no proxy group).
    proxies: list[dict[str, Any]] | None = None
    # The newest restore drill the registry holds (`pgcluster drill restore`, scheduled or
    # not): {"status", "age_seconds", "label", "detail"}; None: none yet.
    last_drill: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _float(text: str) -> float | None:
    return float(text) if text not in ("", None) else None


def _int(text: str) -> int | None:
    return int(text) if text not in ("", None) else None


def _node_status(session: Session, node: Node) -> NodeStatus:
    data = session.data(node)
    status = NodeStatus(
        name=node.name, inventory_role=node.role, address=node.address, port=node.port,
        published_port=node.published_port, reachable=session.reachable(node),
    )
    container = data.get("docker_identifier")
    if container:
        status.container = container_status(str(container)) or "missing"
    if not status.reachable:
        return status
    status.certificate_expires, status.certificate_days_left = _certificate(session, node)
    live = session.node_state(node)
    status.running = bool(live.get("running"))
    if not status.running:
        status.role = "DOWN"
        status.timeline = _int(live.get("timeline") or "")
        return status
    if not live.get("in_recovery"):
        status.role = "PRIMARY"
    else:
        status.role = "READONLY" if node.role == "readonly" else "STANDBY"
    status.timeline = _int(live.get("receiver_timeline") or live.get("timeline") or "")
    status.current_lsn = live.get("current_lsn")
    status.receive_lsn = live.get("receive_lsn")
    status.replay_lsn = live.get("replay_lsn")
    status.upstream = live.get("sender_host")
    status.receiver_status = live.get("receiver_status")
    if live.get("in_recovery"):
        delay = session.query(node, REPLAY_DELAY_SQL)
        status.replay_delay_seconds = _float(delay[0][0]) if delay else None
    for name, active, wal_status, retained in session.query(node, SLOTS_SQL) or []:
        status.slots.append({"slot": name, "active": active == "true",
                             "wal_status": wal_status or None,
                             "retained_bytes": _int(retained)})
    return status


def _certificate(session: Session, node: Node) -> tuple[str | None, int | None]:
    """When the node's server certificate expires, and in how many whole days; (None, None)
    when it cannot be read (no TLS files yet: the node was never deployed)."""
    path = Layout.from_data(session.data(node)).tls_cert_file
    ok, out, _ = session.run(node, f"cat {shlex.quote(path)}")
    if not ok or "BEGIN CERTIFICATE" not in out:
        return None, None
    not_after = tls.load_certs(out)[0].not_valid_after_utc
    return not_after.isoformat(), (not_after - datetime.now(UTC)).days


def certificate_findings(nodes: list[NodeStatus], renew_days: int) -> tuple[list[str],
                                                                             list[str]]:
    """(issues, warnings) about the nodes' certificates: expired is broken (clients using
    verify-full, replication included, refuse it); inside the margin is a warning."""
    issues, warnings = [], []
    for node in nodes:
        days = node.certificate_days_left
        if days is None:
            continue
        if days < 0:
            issues.append(f"{node.name}: its TLS certificate expired on "
                          f"{node.certificate_expires}: re-run the deploy to issue a new one")
        elif days <= renew_days:
            warnings.append(f"{node.name}: its TLS certificate expires in {days} day(s) "
                            f"(tls_renew_days = {renew_days}): the next deploy run renews it")
    return issues, warnings


def collect(session: Session, max_lag_bytes: int | None = None) -> Report:
    issues: list[str] = []
    by_name = session.gather(lambda n: _node_status(session, n))
    nodes = [by_name.get(n.name) or _node_status(session, n) for n in session.cluster.nodes]
    for node in nodes:
        if node.container and node.container != "running" and not node.reachable:
            node.role = "UNREACHABLE"
        if not node.reachable:
            issues.append(f"{node.name} is unreachable"
                          + (f" (container {node.container})" if node.container else ""))
        elif not node.running:
            issues.append(f"{node.name}: PostgreSQL is not running")

    primaries = [n for n in nodes if n.role == "PRIMARY"]
    if len(primaries) > 1:
        issues.append("split brain: " + " and ".join(n.name for n in primaries)
                      + " both accept writes")
    elif not primaries:
        issues.append("no primary is running")
    primary = primaries[0] if len(primaries) == 1 else None

    replication: list[dict[str, Any]] = []
    archiver = last_backup = last_drill = None
    if primary is not None:
        pnode = session.cluster.find(primary.name)
        limit = max_lag_bytes or int(session.data(pnode).get("status_max_lag_bytes")
                                     or DEFAULT_MAX_LAG_BYTES)
        # Each replica is checked on the node it should stream from: the primary, or for
        # a cascading replica its upstream (past one that is down: Cluster.source).
        lost = {n.name for n in nodes if not n.reachable or not n.running}
        sources = {n.name: session.cluster.source(session.cluster.find(n.name), pnode, lost)
                   for n in nodes if n is not primary}
        streams: dict[str, dict[str, Any]] = {}
        for source in [pnode, *{s.name: s for s in sources.values() if s != pnode}.values()]:
            for row in session.query(source, REPLICATION_SQL) or []:
                stream = {
                    "application_name": row[0], "client_addr": row[1], "state": row[2],
                    "sync_state": row[3], "sent_lsn": row[4] or None,
                    "write_lsn": row[5] or None, "flush_lsn": row[6] or None,
                    "replay_lsn": row[7] or None, "lag_bytes": _int(row[8]),
                    "write_lag_seconds": _float(row[9]), "flush_lag_seconds": _float(row[10]),
                    "replay_lag_seconds": _float(row[11]), "source": source.name,
                }
                replication.append(stream)
                if sources.get(row[0]) == source:
                    streams[row[0]] = stream
        for node in nodes:
            if node is primary:
                continue
            stream, source = streams.get(node.name), sources[node.name]
            whence = primary.name if source == pnode else f"its upstream {source.name}"
            if stream is None or stream["state"] != "streaming":
                issues.append(f"{node.name} is not streaming from {whence}"
                              + (f" (state {stream['state']})" if stream else ""))
            elif stream["lag_bytes"] is not None and stream["lag_bytes"] > limit:
                issues.append(f"{node.name} lags {stream['lag_bytes']} bytes behind "
                              f"{whence} (limit {limit})")
        for slot in primary.slots:
            if slot["wal_status"] == "lost":
                issues.append(f"slot {slot['slot']} on {primary.name} is lost: its replica "
                              "must be rebuilt (rejoin --reclone)")
            elif not slot["active"]:
                issues.append(f"slot {slot['slot']} on {primary.name} is inactive and "
                              f"retains {slot['retained_bytes'] or 0} bytes of WAL")
        archiver = session.fact(pnode, Archiver, port=pnode.port)
        if archiver and archiver["failing"]:
            issues.append(f"WAL archiving fails on {primary.name} (last failed "
                          f"{archiver['last_failed_wal']} at {archiver['last_failed_time']})")
        last_backup = _last_backup(session, pnode)
        last_drill = _last_drill(session, pnode)
        issues += drill_findings(last_drill, session.data(pnode).get("drill_max_age"))
        max_age = int(session.data(pnode).get("status_max_backup_age_hours") or 0)
        if last_backup and max_age and last_backup["age_seconds"] > max_age * 3600:
            issues.append(f"the last full backup ({last_backup['name']}) is "
                          f"{last_backup['age_seconds'] // 3600} h old (limit "
                          f"status_max_backup_age_hours = {max_age})")
    renew_days = int(session.data(session.cluster.nodes[0]).get("tls_renew_days") or 30)
    tls_issues, warnings = certificate_findings(nodes, renew_days)
    warnings += lock_findings(session)
    issues += tls_issues
    view = patroni_view(session)
    if view is not None:
        max_lag = session.data(session.cluster.nodes[0]).get("patroni_maximum_lag_on_failover")
        issues += patroni_findings(view, primary.name if primary else None,
                                   int(max_lag) if max_lag is not None else None)
        warnings += view.notes()
    proxies = proxy_views(session)
    for proxy in proxies or []:
        if proxy["endpoints"] is None:
            issues.append(f"the proxy {proxy['name']} does not answer (HAProxy's statistics)")
        else:
            issues += endpoints.proxy_findings(proxy["name"], proxy["endpoints"])
    return Report(healthy=not issues, issues=issues,
                  primary=primary.name if primary else None, nodes=nodes,
                  replication=replication, archiver=archiver, last_backup=last_backup,
                  last_drill=last_drill,
                  collected_at=time.time(), warnings=warnings,
                  engine="manual" if view is None else "patroni",
                  patroni=None if view is None else [asdict(m) for m in view.members],
                  proxies=proxies)


def proxy_views(session: Session) -> list[dict[str, Any]] | None:
    """Each proxy's endpoints as HAProxy routes them now, read from its statistics."""
    if not session.cluster.proxy_hosts:
        return None
    views = []
    for proxy in session.cluster.proxy_hosts:
        view = None
        if session.reachable(proxy):
            data = session.data(proxy)
            ok, out, _ = session.run(proxy, endpoints.stats_command(
                str(data["proxy_stats_address"]), int(data["proxy_stats_port"])), timeout=10)
            view = endpoints.parse_stats(out) if ok else None
        views.append({"name": proxy.name, "endpoints": view or None})
    return views


def patroni_view(session: Session) -> PatroniView | None:
    """The cluster as Patroni lists it, from the first reachable node where it answers;
    None where no node runs Patroni (the manual engine)."""
    for node in session.cluster.nodes:
        if session.reachable(node):
            view = session.fact(node, PatroniMembers)
            if view is not None:
                return view
    return None


def patroni_findings(view: PatroniView, primary: str | None,
                     max_lag_bytes: int | None) -> list[str]:
    """What Patroni's view adds to the report: its own problems, and a leader that is not
    the server that accepts writes (Patroni and PostgreSQL disagree: never healthy)."""
    found = view.problems(max_lag_bytes)
    if view.leader and primary and view.leader != primary:
        found.append(f"Patroni's leader is {view.leader} but {primary} accepts writes")
    return found


def lock_findings(session: Session) -> list[str]:
    """Who holds the cluster's operation lock, if anyone: a change in progress, or a stale
    lock left by a run that died (pgcluster.model.lock)."""
    held = {}
    for node in session.cluster.nodes:
        if session.reachable(node):
            record = session.fact(node, OperationLock)
            if record is not None:
                held.setdefault(record.token, (record, []))[1].append(node.name)
    return [f"operation lock held on {', '.join(names)}: {record.describe()} (a change in "
            "progress; if that run is gone, --break-lock)" for record, names in held.values()]


def _last_backup(session: Session, node: Node) -> dict[str, Any] | None:
    root = session.data(node).get("backup_root", "/backups")
    ok, out, _ = session.run(
        node, f"find {root}/full -mindepth 1 -maxdepth 1 -type d ! -name '.*' "
              "-printf '%T@ %f\\n' 2>/dev/null | sort -n | tail -1")
    if not ok or not out.strip():
        return None
    stamp, _, name = out.strip().partition(" ")
    return {"name": name, "age_seconds": round(time.time() - float(stamp))}


# The newest restore drill's row (pgcluster.control.drill records it on the primary).
LAST_DRILL_SQL = """
select status, extract(epoch from now() - coalesce(finished_at, started_at))::bigint::text,
       label, coalesce(replace(detail, E'\n', ' '), '')
from pgcluster.backups where kind = 'drill' order by started_at desc, id desc limit 1
"""


def _last_drill(session: Session, node: Node) -> dict[str, Any] | None:
    database = str(session.data(node).get("backup_registry_database") or "postgres")
    rows = session.query(node, LAST_DRILL_SQL, database=database)
    if not rows or len(rows[0]) < 4:
        return None  # none yet, or a registry from before drills recorded themselves
    status, age, label, detail = rows[0][:4]
    return {"status": status, "age_seconds": int(age), "label": label, "detail": detail}


def drill_findings(drill: dict[str, Any] | None, max_age: Any) -> list[str]:
    """A failed newest restore drill is unhealthy, and so is one older than drill_max_age
    (group data; None: any age): the backups are no longer proven. A cluster that never
    ran one is not (status says so: `last proven restore: never`)."""
    if drill is None:
        return []
    if drill["status"] == "failed":
        return [f"the last restore drill ({drill['label']}, {_age(drill['age_seconds'])} ago) "
                f"failed: {drill['detail'] or 'see its report'}; fix the backups, then "
                "`pgcluster drill restore`"]
    limit = duration_seconds(max_age) if max_age not in (None, "") else None
    if limit is not None and drill["age_seconds"] > limit:
        return [f"the last proven restore ({drill['label']}) is {_age(drill['age_seconds'])} "
                f"old (limit drill_max_age = {max_age}): run `pgcluster drill restore`, or "
                "schedule it (`pgcluster drill schedule`)"]
    return []


def _age(seconds: int) -> str:
    if seconds >= 2 * 86400:
        return f"{seconds / 86400:.1f} d"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{max(seconds, 0) // 60} min"


# ------------------------------------------------------------------------------ output


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}s"


def format_report(report: Report) -> str:
    lines = []
    lines.append(f"{'NODE':<22}{'ROLE':<12}{'TL':>3}  {'CONTAINER':<10}{'ENDPOINT':<22}"
                 f"{'LSN (current/received/replayed)':<34}UPSTREAM")
    for n in report.nodes:
        endpoint = f"{n.address}:{n.port}"
        if n.published_port:
            endpoint = f"127.0.0.1:{n.published_port}"
        positions = n.current_lsn or ", ".join(x or "-" for x in (n.receive_lsn, n.replay_lsn))
        if not n.running:
            positions = "-"
        lines.append(f"{n.name:<22}{n.role:<12}{n.timeline or '-'!s:>3}  "
                     f"{n.container or '-':<10}{endpoint:<22}{positions:<34}"
                     f"{n.upstream or '-'}")
    if report.replication:
        lines.append("")
        lines.append(f"{'REPLICA':<22}{'STATE':<12}{'SYNC':<7}{'LAG':>10}  "
                     f"{'WRITE':>9}{'FLUSH':>9}{'REPLAY':>9}  FROM")
        for r in report.replication:
            lines.append(f"{r['application_name']:<22}{r['state']:<12}{r['sync_state']:<7}"
                         f"{human_bytes(r['lag_bytes']):>10}  {_seconds(r['write_lag_seconds']):>9}"
                         f"{_seconds(r['flush_lag_seconds']):>9}"
                         f"{_seconds(r['replay_lag_seconds']):>9}  {r.get('source') or '-'}")
    slots = [(n.name, s) for n in report.nodes for s in n.slots]
    if slots:
        lines.append("")
        lines.append(f"{'SLOT':<24}{'ON':<22}{'ACTIVE':<8}{'WAL':<11}RETAINED")
        for owner, s in slots:
            lines.append(f"{s['slot']:<24}{owner:<22}{'yes' if s['active'] else 'no':<8}"
                         f"{s['wal_status'] or '-':<11}{human_bytes(s['retained_bytes'])}")
    if report.patroni is not None:
        lines.append("")
        lines.append(f"{'PATRONI MEMBER':<22}{'ROLE':<15}{'STATE':<12}{'TL':>3}  {'LAG':>10}  TAGS")
        for m in report.patroni:
            tags = ",".join(sorted(k for k, v in (m.get("tags") or {}).items() if v)) or "-"
            lag = "-" if m["lag_bytes"] is None else human_bytes(m["lag_bytes"])
            lines.append(f"{m['name']:<22}{m['role']:<15}{m['state']:<12}"
                         f"{m['timeline'] or '-'!s:>3}  {lag:>10}  {tags}")
    for proxy in report.proxies or []:
        lines.append("")
        lines.append(f"{'ENDPOINT (' + proxy['name'] + ')':<36}SENDS CLIENTS TO")
        for endpoint, servers in (proxy["endpoints"] or {}).items():
            now = endpoints.serving(servers)
            fallback = bool(now) and not any(s["up"] and not s["fallback"] for s in servers)
            lines.append(f"{endpoint:<36}{', '.join(now) or 'nothing'}"
                         + (" (the primary: no replica qualifies)" if fallback else ""))
        if proxy["endpoints"] is None:
            lines.append("(the proxy does not answer)")
    if report.archiver:
        a = report.archiver
        lines.append("")
        lines.append(f"archiver: {a['archived_count']} archived, last {a['last_archived_wal']} "
                     f"at {a['last_archived_time']}; {a['failed_count']} failed"
                     + (" (FAILING)" if a["failing"] else ""))
    if report.last_backup:
        hours = report.last_backup["age_seconds"] / 3600
        lines.append(f"last full backup: {report.last_backup['name']} ({hours:.1f} h ago)")
    elif report.primary:
        lines.append("last full backup: none found")
    if report.last_drill:
        d = report.last_drill
        verdict = "passed" if d["status"] == "ok" else d["status"].upper()
        lines.append(f"last proven restore: {_age(d['age_seconds'])} ago, {verdict} "
                     f"({d['label']})")
    elif report.primary:
        lines.append("last proven restore: never (`pgcluster drill restore`)")
    certificates = [f"{n.name} {n.certificate_days_left} d" for n in report.nodes
                    if n.certificate_days_left is not None]
    if certificates:
        lines.append("TLS certificates expire in: " + ", ".join(certificates))
    lines.append("")
    if report.healthy:
        lines.append("HEALTHY")
    else:
        lines.append("UNHEALTHY:")
        lines.extend(f"  - {issue}" for issue in report.issues)
    if report.warnings:
        lines.append("warnings:")
        lines.extend(f"  - {warning}" for warning in report.warnings)
    return "\n".join(lines)


def require_single_primary(report: Report) -> None:
    primaries = [n.name for n in report.nodes if n.role == "PRIMARY"]
    if len(primaries) > 1:
        raise ClusterStateError(
            f"split brain: {' and '.join(primaries)} both accept writes. Stop the one that "
            "must not take writes (pgcluster stop NODE), then `pgcluster rejoin NODE`."
        )
