"""Drills: a failover, a switchover or a restore done on purpose, measured and judged
(`pgcluster drill`, docs/drills.md).

A failover or switchover drill runs the continuous writer (control.writer) through the
application's endpoint, acts (stops the primary, or switches over), notes when a new
primary answers and when every replica streams from it, keeps writing for the rest of
--duration, reads back which rows the new primary holds, and judges the figures
(model.drill) against group data's goals. A restore drill makes a restore point while the
primary runs (control.compare), restores the newest backup to it on the lab's scratch node
and compares every table. Every drill writes its report (control.drill_report) and leaves
the cluster as healthy as it found it, or says exactly what is left to do.

How the drill acts. The changes are pgcluster's own commands, run as a user would type them
(`python -m pgcluster --inventory INV failover --yes`, `switchover --to NODE --yes`, `rejoin
NODE --yes`, `backup full`, `restore --scratch --name RP --yes`) in a process of their own:
so the drill does exactly what an operator would, every one of them is bounded (a
command that outlives its timeout is ended, with the deploy it runs), and the writer,
which shares this process with pyinfra's gevent loop, is never held up by a deploy's work.
The fault itself is the drill's: `docker stop` of the primary's container in the lab, or
the node's service stopped over its session on real hosts (`service_on_host`).

Where connections come from, from the control machine: a lab node at the port published
on the lab's bind_address, any other node at its own address and port; passwords from the
inventory's host data (group data reads them through control.secrets: the environment,
the inventory's secrets file, the lab's documented defaults); the CA is the inventory's.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from pgcluster import REPO_ROOT
from pgcluster.control import compare, drill_report
from pgcluster.control.scratch import ScratchTarget, no_target
from pgcluster.control.session import ALLOW_DOWN, Session
from pgcluster.control.status import Report
from pgcluster.control.writer import TABLE, Writer
from pgcluster.errors import ClusterStateError
from pgcluster.lab.definition import Lab, LabNode, load_lab
from pgcluster.model import drill as judge
from pgcluster.model.backups import REGISTRY_TABLE
from pgcluster.model.cluster import Cluster, Node
from pgcluster.model.conninfo import quote, tls_options
from pgcluster.model.drill import END, FAULT, PROMOTED, RECOVERED, Goals, Measurements, Verdict
from pgcluster.model.endpoints import Endpoint, multi_host
from pgcluster.model.layout import Layout
from pgcluster.model.wal import position

DRILLS = ("failover", "switchover", "restore")
ALL = ("switchover", "failover", "restore")  # `drill all`: the gentlest first
KINDS = (*DRILLS, "all")
WRITING = ("failover", "switchover")  # the drills that run the writer

DEFAULT_DURATION = 30.0  # seconds the writer runs (at least), fault included
MIN_DURATION = 10.0  # a lead-in of writes, the fault, and writes on the new primary
MAX_DURATION = 3600.0
DEFAULT_RATE = 50.0  # commits per second
MAX_RATE = 200.0  # one row per commit, one connection: more measures the client
LEAD_IN = 5.0  # seconds of writes before the fault, at most (a quarter of --duration)
TAIL = 2.0  # seconds the writer goes on after the last event, at least
POLL = 0.25  # seconds between two looks at the nodes
CONNECT_TIMEOUT = 2
# How long a new primary may take to appear after the fault: a failover command's own
# bound, Patroni's ttl and loop_wait several times over.
PROMOTION_WAIT = 180.0
READ_BACK_WAIT = 30.0  # seconds to read the rows back through the endpoint
REJOIN_WAIT = 180.0  # seconds for the old primary to stream again once brought back
# Bounds of the commands the drills run (each runs one or two deploys): a failover,
# switchover or rejoin waits replica_wait_timeout (180 s) for its replicas at most.
COMMAND_TIMEOUT = 900.0
BACKUP_TIMEOUT = 7200.0
RESTORE_MARGIN = 900.0  # on top of restore_timeout: the scratch node made, the backup unpacked
SERVICE_TIMEOUT = 120  # docker stop/start, systemctl stop/start
ROW_LIMIT = 20  # differing rows shown per table
# libpq options for the writer and the probes: a connection to a node that vanished gets
# no reset, and would otherwise hang until the kernel gives up (minutes). They change
# nothing while the node answers.
DEAD_PEER = ("keepalives=1 keepalives_idle=2 keepalives_interval=1 keepalives_count=3 "
             "tcp_user_timeout=5000")


# --------------------------------------------------------------------------- options


@dataclass(frozen=True)
class Options:
    duration: float = DEFAULT_DURATION
    rate: float = DEFAULT_RATE
    report_dir: Path = Path("drills")
    verbose: bool = False
    scratch: ScratchTarget | None = None  # where a restore drill restores (commands.drill)


def lead_in(duration: float) -> float:
    """Seconds of writes before the fault: a quarter of the run, at most LEAD_IN."""
    return min(LEAD_IN, duration / 4)


def check_options(kind: str, duration: float, rate: float, report_dir: Path) -> list[str]:
    """Every problem with the command line, each with what to do; empty when it is fine."""
    found = []
    if kind in (*WRITING, "all"):
        if duration < MIN_DURATION:
            found.append(f"--duration {duration:g} is too short for a {kind} drill: the writer "
                         "commits for a few seconds before the fault, then must see the new "
                         f"primary take writes; use at least {MIN_DURATION:g} seconds (e.g. "
                         f"--duration {DEFAULT_DURATION:g})")
        elif duration > MAX_DURATION:
            found.append(f"--duration {duration:g} is more than an hour: use at most "
                         f"{MAX_DURATION:g} seconds")
    if rate <= 0:
        found.append(f"--rate {rate:g} must be more than 0 commits per second (e.g. --rate "
                     f"{DEFAULT_RATE:g})")
    elif rate > MAX_RATE:
        found.append(f"--rate {rate:g} is more than {MAX_RATE:g} commits per second: the "
                     "writer commits one row at a time on one connection, so more would "
                     f"measure this machine, not the cluster; use at most {MAX_RATE:g}")
    problem = unwritable(report_dir)
    if problem:
        found.append(problem)
    return found


def unwritable(directory: Path) -> str | None:
    """Why the report directory can be neither used nor created, or None."""
    if directory.exists():
        if not directory.is_dir():
            return (f"--report {directory} is a file, not a directory: name a directory "
                    "(it is created if missing)")
        if not os.access(directory, os.W_OK | os.X_OK):
            return f"--report {directory} is not writable by you: name another directory"
        return None
    parent = directory.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        return (f"--report {directory} cannot be created: {parent} is not a directory you may "
                "write in; name another directory")
    return None


# ------------------------------------------------------ reaching the cluster from here


def reach(node: Node | LabNode, lab: Lab | None) -> tuple[str, int]:
    """Where this machine reaches a node's PostgreSQL: in the Docker lab, the port published
    on the lab's bind_address; elsewhere, the node's own address and port."""
    if node.published_port is not None and lab is not None:
        return lab.bind_address, node.published_port
    return node.address, int(getattr(node, "port", 5432))


def ca_file(data: Mapping[str, Any]) -> Path:
    """The CA that signs the nodes' certificates: the user's tls_ca_file, else pgcluster's
    own in tls_dir (secrets/<inventory>/tls/ca.crt)."""
    if data.get("tls_ca_file"):
        return Path(str(data["tls_ca_file"])).expanduser()
    return Path(str(data["tls_dir"])) / "ca.crt"


def conninfo(host: str, port: int, user: str, password: str, dbname: str,
             sslrootcert: Path | str) -> str:
    """A direct connection to one server, TLS verify-full with channel binding."""
    tls = " ".join(f"{k}={quote(v)}" for k, v in tls_options(sslrootcert).items())
    return (f"host={host} port={port} user={quote(user)} password={quote(password)} "
            f"dbname={quote(dbname)} {tls} connect_timeout={CONNECT_TIMEOUT} {DEAD_PEER}")


@dataclass(frozen=True)
class WriterEndpoint:
    """Where the drill's writer commits, as the application would."""

    description: str  # for people: which endpoint, where, as whom
    conninfo: str  # without the password
    password_key: str  # the host data key of the role's password


def writer_endpoint(cluster: Cluster, data: Mapping[str, Any], lab: Lab | None,
                    sslrootcert: Path | str) -> WriterEndpoint:
    """The application's address: the proxy's read-write port (through PgBouncer, as the
    application's role, as `pgcluster info` prints it) when the inventory has a proxy;
    otherwise libpq's multi-host string over every node with target_session_attrs =
    read-write, as the admin role (no proxy: no pool that the application role is
    configured for, and the same as bench/failover.py)."""
    database, ca = str(data["database_name"]), str(sslrootcert)
    if cluster.proxy_hosts:
        proxy = cluster.proxy_hosts[0]
        port = int(data["proxy_rw_port"])
        published = lab.published(port) if lab is not None else None
        host, port = (lab.bind_address, published) if lab is not None and published \
            else (proxy.address, port)
        user = str(data["app_user"])
        endpoint = Endpoint("read-write (pooled)", host, port)
        # PgBouncer 1.18 offers SCRAM without channel binding (docs/endpoints.md).
        info = (f"{endpoint.conninfo(user, database, ca)} channel_binding=prefer "
                f"connect_timeout={CONNECT_TIMEOUT} {DEAD_PEER}")
        return WriterEndpoint(f"the read-write endpoint of the proxy {proxy.name} "
                              f"({host}:{port}) as {user}", info, "app_password")
    user = str(data["admin_user"])
    hosts = [reach(node, lab) for node in cluster.nodes]
    info = (f"{multi_host(hosts, user, database, ca, 'read-write')} channel_binding=require "
            f"connect_timeout={CONNECT_TIMEOUT} {DEAD_PEER}")
    where = ", ".join(f"{h}:{p}" for h, p in hosts)
    return WriterEndpoint(f"every node ({where}), libpq multi-host with "
                          f"target_session_attrs=read-write, as {user} (no proxy in the "
                          "inventory)", info, "admin_password")


@dataclass(frozen=True)
class Reach:
    """How this machine reaches one inventory's cluster: its nodes, their data (settings
    and passwords: the first node's, as for every cluster-wide setting), their lab
    containers, and the lab itself when the nodes are its containers."""

    inventory: str
    cluster: Cluster
    data: Mapping[str, Any]
    containers: Mapping[str, str] = field(default_factory=dict)  # node name -> container
    lab: Lab | None = None
    # Where restore drills restore: the drill host, else the lab's scratch node; None: none.
    scratch: ScratchTarget | None = None

    @property
    def ca_file(self) -> Path:
        return ca_file(self.data)

    @property
    def goals(self) -> Goals:
        return Goals(max_rto_seconds=float(self.data["drill_max_rto_seconds"]),
                     max_lost_commits=int(self.data["drill_max_lost_commits"]))

    def node(self, name: str) -> Node:
        return self.cluster.find(name)

    def admin(self, where: Node | LabNode | tuple[str, int], dbname: str = "postgres") -> str:
        host, port = where if isinstance(where, tuple) else reach(where, self.lab)
        return conninfo(host, port, str(self.data["admin_user"]),
                        str(self.data["admin_password"]), dbname, self.ca_file)

    def connect(self, where: Node | LabNode | tuple[str, int]) -> compare.Connect:
        """A connect(dbname) factory for control.compare: the admin role (a superuser)."""
        return lambda dbname: psycopg.connect(self.admin(where, dbname), autocommit=True)

    @property
    def endpoint(self) -> WriterEndpoint:
        return writer_endpoint(self.cluster, self.data, self.lab, self.ca_file)

    def writer_dsn(self) -> str:
        endpoint = self.endpoint
        return f"{endpoint.conninfo} password={quote(str(self.data[endpoint.password_key]))}"


def load_reach(inventory: str, scratch: ScratchTarget | None = None) -> Reach:
    """Read the inventory (the nodes answering or not) for a drill; `scratch`: where its
    restore drills restore (control.scratch.scratch_target), None without any."""
    with Session(inventory, env=ALLOW_DOWN) as session:
        cluster = session.cluster
        data = session.data(cluster.nodes[0])
        containers = {n.name: str(session.data(n)["docker_identifier"]) for n in cluster.nodes
                      if session.data(n).get("docker_identifier")}
    lab = load_lab() if any(n.published_port is not None for n in cluster.nodes) else None
    return Reach(inventory, cluster, data, containers, lab, scratch)


# ------------------------------------------------------------------ planning the drills


@dataclass(frozen=True)
class Plan:
    """One drill as planned from the status, before anything is touched."""

    kind: str  # failover, switchover, restore
    primary: str  # the primary when planned
    target: str | None = None  # switchover: the node switched to (and back from)
    scratch: str | None = None  # restore: the drill host or the lab's scratch node
    engine: str = "manual"  # who promotes: pgcluster's commands, or Patroni by itself

    def question(self, inventory: str) -> str:
        """What the user is asked before the drill (names the inventory and the nodes)."""
        if self.kind == "failover":
            return f"Stop the primary {self.primary} of {inventory} to drill a failover?"
        if self.kind == "switchover":
            return (f"Switch the primary of {inventory} over from {self.primary} to "
                    f"{self.target} and back to drill a switchover?")
        return (f"Make a restore point on {self.primary} of {inventory} and restore the newest "
                f"backup to it onto {self.scratch} (outside the cluster) to drill a restore?")


def not_ready(status: Report) -> list[str]:
    """Why a failover or switchover drill cannot start: it needs exactly one primary, every
    other node streaming from it, and a standby to promote."""
    primaries = [n.name for n in status.nodes if n.role == "PRIMARY"]
    if len(primaries) != 1:
        return [f"{len(primaries)} primaries ({', '.join(primaries) or 'none'}): a drill needs "
                "exactly one"]
    primary = primaries[0]
    streaming = {r["application_name"] for r in status.replication if r["state"] == "streaming"}
    found = [f"{n.name} does not stream from {primary} ({n.role.lower()})"
             for n in status.nodes if n.name != primary and n.name not in streaming]
    if not any(n.role == "STANDBY" for n in status.nodes):
        found.append("no standby to promote (a node of role standby, running in recovery)")
    return found


def switchover_target(status: Report) -> str:
    """The standby to switch over to: the promotable one with the most WAL replayed."""
    standbys = [n for n in status.nodes if n.role == "STANDBY"]
    if not standbys:
        raise ClusterStateError("no standby to switch over to")
    return max(standbys, key=lambda n: (position(n.replay_lsn or n.receive_lsn), n.name)).name


def plan(kinds: Sequence[str], status: Report, scratch: str | None) -> list[Plan]:
    """The drills to run, in order, from the status before any of them; a cluster that is
    not ready for the first is refused (ClusterStateError, saying what is wrong)."""
    plans = []
    if not status.primary:
        raise ClusterStateError(f"refusing to drill: {_issues(status, 'no primary is running')}")
    for kind in kinds:
        if kind in WRITING:
            problems = not_ready(status)
            if problems:
                raise ClusterStateError(
                    f"refusing the {kind} drill: {'; '.join(problems)}. Bring the cluster "
                    "back to health first (`pgcluster status` shows it)")
        target = switchover_target(status) if kind == "switchover" else None
        plans.append(Plan(kind, status.primary, target, scratch if kind == "restore" else None,
                          status.engine))
    return plans


def _issues(status: Report, default: str) -> str:
    return "; ".join(status.issues) or default


# -------------------------------------------------------------------------- outcomes


@dataclass(frozen=True)
class Outcome:
    """What one drill (or one leg of it) gave: its verdict, its lines for the screen, the
    files of its report."""

    drill: str
    passed: bool
    summary: str
    paths: tuple[Path, ...] = ()


def exit_code(outcomes: Iterable[Outcome]) -> int:
    """0 when every drill passed; 1 when one missed its goals or could not finish."""
    outcomes = list(outcomes)
    return 0 if outcomes and all(o.passed for o in outcomes) else 1


def with_reasons(verdict: Verdict, reasons: Sequence[str]) -> Verdict:
    """A verdict with the drill's own findings added (a command that failed, a timeout)."""
    if not reasons:
        return verdict
    return Verdict(passed=False, reasons=[*verdict.reasons, *reasons])


def restore_point_name(now: datetime) -> str:
    """drill_20261207T140000Z: UTC, sortable, a valid restore point name."""
    return "drill_" + now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def recovered_when(nodes: Iterable[str], new: str, old: str | None) -> set[str]:
    """The nodes that must stream from the new primary for the cluster to count as
    recovered: every other node, the old primary too after a switchover (old None), not
    after a failover (it is down until brought back)."""
    return {n for n in nodes if n not in (new, old)}


def registry_rows_explained(diff: compare.RowDiff, restore_ids: set[str]) -> bool:
    """Whether a difference in the backup registry is only the row the restore wrote
    itself: restore-backup records every restore it makes, as kind 'restore', in the
    restored copy's pgcluster.backups."""
    return (not diff.missing and not diff.changed and not diff.truncated
            and diff.extra == len(diff.rows) > 0
            and all(row.kind == "extra" and row.key in restore_ids for row in diff.rows))


def difference_record(difference: compare.TableDifference,
                      rows: compare.RowDiff | None) -> dict[str, Any]:
    """A differing table for the report: both fingerprints and which rows differ."""
    def fingerprint(value: compare.TableFingerprint | None) -> dict[str, Any] | None:
        return None if value is None else {"rows": value.rows, "checksum": value.checksum}

    record: dict[str, Any] = {
        "database": difference.database, "table": difference.table, "kind": difference.kind,
        "expected": fingerprint(difference.expected), "actual": fingerprint(difference.actual),
        "description": difference.describe(),
    }
    if rows is not None:
        record["rows"] = {
            "primary_key": list(rows.primary_key), "missing": rows.missing,
            "extra": rows.extra, "changed": rows.changed, "truncated": rows.truncated,
            "shown": [{"kind": r.kind, "key": r.key, "expected": r.expected,
                       "actual": r.actual, "copies": r.copies} for r in rows.rows],
        }
    return record


def restore_reasons(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """One sentence per differing table: what differs and the first keys."""
    reasons = []
    for record in records:
        text = record["description"]
        rows = record.get("rows")
        if rows:
            keys = [str(r["key"]) for r in rows["shown"] if r["key"] is not None][:5]
            text += (f" ({rows['missing']} missing, {rows['extra']} extra, {rows['changed']} "
                     "changed rows" + (f"; keys {', '.join(keys)}" if keys else "") + ")")
        reasons.append(text)
    return reasons


# ------------------------------------------------------------- acting on the nodes


@dataclass(frozen=True)
class CommandRun:
    command: str  # as the user would type it
    code: int | None  # None: it did not finish within its timeout (ended)
    seconds: float

    @property
    def ok(self) -> bool:
        return self.code == 0

    def problem(self) -> str | None:
        if self.code is None:
            return (f"`{self.command}` did not finish within its time limit and was ended; "
                    "if it held the operation lock, the next command needs --break-lock")
        if self.code:
            return f"`{self.command}` failed (exit {self.code}): its output is above"
        return None


def pgcluster(inventory: str, *argv: str, timeout: float, verbose: bool = False) -> CommandRun:
    """`python -m pgcluster --inventory INVENTORY ARGV` as a user would type it, its output
    on this terminal; in a process group of its own, so that a timeout ends it together
    with the deploy it runs."""
    args = [*argv, *(["-v"] if verbose else [])]
    shown = " ".join(["pgcluster", "--inventory", inventory, *args])
    started = time.monotonic()
    process = subprocess.Popen([sys.executable, "-m", "pgcluster", "--inventory", inventory,
                                *args], cwd=REPO_ROOT, stdin=subprocess.DEVNULL,
                               start_new_session=True)
    try:
        code: int | None = process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        _end(process)
        code = None
    return CommandRun(shown, code, time.monotonic() - started)


def _end(process: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 15)):
        try:
            os.killpg(process.pid, sig)
            process.wait(timeout=wait)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


def container(action: str, name: str) -> str | None:
    """The lab: `docker stop` (a clean shutdown, as systemd does it) or `docker start` of a
    node's container; None when done, else why not."""
    argv = ["docker", action, *(["-t", "30"] if action == "stop" else []), name]
    try:
        result = subprocess.run(argv, capture_output=True, text=True, check=False,
                                timeout=SERVICE_TIMEOUT)
    except subprocess.TimeoutExpired:
        return f"`{' '.join(argv)}` did not finish within {SERVICE_TIMEOUT} s"
    if result.returncode:
        return f"`{' '.join(argv)}` failed: {result.stderr.strip()[-300:]}"
    return None


def service_unit(data: Mapping[str, Any], engine: str) -> str:
    """The unit that runs the node's server: patroni under Patroni (it starts and stops
    PostgreSQL itself), Debian's postgresql@15-main under the manual engine."""
    return "patroni" if engine == "patroni" else Layout.from_data(data).service


def service_on_host(inventory: str, node: str, action: str, engine: str) -> str | None:
    """Real hosts (no lab container): `systemctl stop|start` of the node's server unit over
    its session (SSH, with sudo where the inventory says so). None when done, else why."""
    with Session(inventory, env=ALLOW_DOWN) as session:
        target = session.cluster.find(node)
        if not session.reachable(target):
            return f"{target.name} is unreachable: its service cannot be {action}ped over SSH"
        unit = service_unit(session.data(target), engine)
        ok, _, err = session.run(target, f"systemctl {action} {unit}", timeout=SERVICE_TIMEOUT)
    return None if ok else f"`systemctl {action} {unit}` on {node} failed: {err.strip()[-300:]}"


def ask(dsn: str, sql: str) -> list[tuple[Any, ...]] | None:
    """A query's rows, or None when the server cannot be asked (down, refusing)."""
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            return conn.execute(sql).fetchall()
    except psycopg.Error:
        return None


class Probe:
    """The drill's questions to each node, asked directly, as the admin role."""

    def __init__(self, reach: Reach):
        self.reach = reach

    def is_primary(self, name: str) -> bool | None:
        rows = ask(self.reach.admin(self.reach.node(name)), "select not pg_is_in_recovery()")
        return bool(rows[0][0]) if rows else None

    def streaming(self, name: str) -> set[str] | None:
        """Who streams from this node now (pg_stat_replication, state streaming)."""
        rows = ask(self.reach.admin(self.reach.node(name)),
                   "select application_name from pg_stat_replication "
                   "where state = 'streaming'")
        return None if rows is None else {row[0] for row in rows}


class Background:
    """The fault, run beside the drill's clock: a `docker stop` or a switchover returns
    after the new primary already took writes, and that moment is what is timed."""

    def __init__(self, action: Callable[[], str | None]):
        self.problem: str | None = None
        self.done = False
        self._thread = threading.Thread(target=self._run, args=(action,), daemon=True)
        self._thread.start()

    def _run(self, action: Callable[[], str | None]) -> None:
        try:
            self.problem = action()
        except Exception as exc:  # reported as the drill's finding, never a traceback
            self.problem = f"the fault failed: {type(exc).__name__}: {exc}"
        finally:
            self.done = True

    def join(self, timeout: float) -> bool:
        self._thread.join(timeout)
        return self.done


@dataclass
class Leg:
    """One failover or switchover under the writer."""

    drill: str  # failover or switchover (the report's name)
    old: str  # the primary before the fault
    # The node that must become primary; None: any other (failover); `old` itself: a fault
    # it recovers from in place (its promotion counts once it was seen not to be primary).
    target: str | None
    action: Callable[[], str | None]  # the fault; a problem, or None
    directory: Path  # where its report goes
    title: str


@dataclass
class LegResult:
    measurements: Measurements
    verdict: Verdict
    events: dict[str, float]
    new_primary: str | None
    series: list[tuple[float, int]]
    # What the writer recorded (Writer.acknowledged: id, time, port) and its failed attempts.
    acknowledged: list[judge.Ack] = field(default_factory=list)
    failures: int = 0
    read_back: bool = True  # False: the rows were not read back, so the loss is unknown
    # When each node was first seen streaming from the new primary (epoch seconds), until
    # the recovery: the nodes the leg waited for, and any other that streamed by then.
    streaming: dict[str, float] = field(default_factory=dict)


# -------------------------------------------------------------------------- the drills


class Drills:
    """Runs planned drills against one inventory; `status` reads the cluster's status
    (pgcluster.commands.common.report), `say` prints."""

    def __init__(self, reach: Reach, options: Options, status: Callable[[], Report],
                 say: Callable[[str], None] = print, probe: Probe | None = None,
                 command: Callable[..., CommandRun] = pgcluster):
        self.reach = reach
        self.options = options
        self.status = status
        self.say = say
        self.probe = probe or Probe(reach)
        self._command = command

    @property
    def inventory(self) -> str:
        return self.reach.inventory

    def run(self, plans: Sequence[Plan]) -> list[Outcome]:
        """Each drill in turn; the second and later ones from the cluster as the previous
        left it (not ready: that drill fails without running, the others still run)."""
        outcomes: list[Outcome] = []
        for number, planned in enumerate(plans):
            if number:
                planned, problems = self.replan(planned)
                if problems:
                    outcomes.append(self.not_run(planned.kind, problems))
                    self.say("\n" + outcomes[-1].summary)
                    continue
            self.say(f"\n=== {planned.kind.capitalize()} drill on {self.inventory} ===")
            try:
                found = {"failover": self.failover, "switchover": self.switchover,
                         "restore": self.restore}[planned.kind](planned)
            except ClusterStateError as exc:
                if not outcomes:
                    raise  # nothing ran yet: a refusal, exit 2
                found = [self.not_run(planned.kind, [str(exc)])]
            for outcome in found:
                outcomes.append(outcome)
                self.say("\n" + outcome.summary)
                for path in outcome.paths:
                    self.say(f"  report: {path}")
        return outcomes

    def replan(self, planned: Plan) -> tuple[Plan, list[str]]:
        """A drill planned again from the status now (who is primary may have changed)."""
        status = self.status()
        if planned.kind in WRITING:
            problems = not_ready(status)
        else:
            problems = [] if status.primary else [_issues(status, "no primary is running")]
        if problems:
            return planned, problems
        target = switchover_target(status) if planned.kind == "switchover" else None
        return Plan(planned.kind, str(status.primary), target, planned.scratch,
                    status.engine), []

    def not_run(self, kind: str, problems: Sequence[str]) -> Outcome:
        return Outcome(kind, False, f"{kind.capitalize()} drill: NOT RUN: {'; '.join(problems)}")

    def pgcluster(self, *argv: str, timeout: float = COMMAND_TIMEOUT) -> CommandRun:
        run = self._command(self.inventory, *argv, timeout=timeout,
                            verbose=self.options.verbose)
        return run

    # ------------------------------------------------------------------ failover

    def failover(self, planned: Plan) -> list[Outcome]:
        return [self.written(*self.failover_leg(planned))]

    def failover_leg(self, planned: Plan, lose: Callable[[], str | None] | None = None,
                     lost_how: str = "stop it") -> tuple[Leg, LegResult, Verdict]:
        """The failover drill without its report: the leg under the writer, then the old
        primary brought back (what could not be done is in the verdict). `lose` takes the
        primary away (default: its container or its service stopped; bench/failover.py
        kills the container), `lost_how` says how in the leg's title."""
        engine, old = planned.engine, planned.primary

        def fault() -> str | None:
            problem = lose() if lose else self.stop(old, engine)
            if problem or engine == "patroni":  # Patroni promotes by itself
                return problem
            return self.pgcluster("failover", "--yes").problem()

        how = (f"{lost_how}, Patroni promotes" if engine == "patroni"
               else f"{lost_how}, then `pgcluster failover --yes`")
        leg = Leg("failover", old, None, fault, self.options.report_dir,
                  f"failover of {old} ({how})")
        try:
            result = self.leg(leg)
        except KeyboardInterrupt:
            self.say(f"\nInterrupted. {old} may still be stopped: `pgcluster --inventory "
                     f"{self.inventory} status`, then `rejoin {old} --yes` (or `start {old}`).")
            raise
        reasons = self.bring_back(old, result.new_primary, engine, result.events)
        return leg, result, with_reasons(result.verdict, reasons)

    def stop(self, name: str, engine: str) -> str | None:
        """The fault: the node's server stops (the lab: its container; else its unit)."""
        if name in self.reach.containers:
            return container("stop", self.reach.containers[name])
        return service_on_host(self.inventory, name, "stop", engine)

    def start(self, name: str, engine: str) -> str | None:
        if name in self.reach.containers:
            return container("start", self.reach.containers[name])
        return service_on_host(self.inventory, name, "start", engine)

    def bring_back(self, old: str, new: str | None, engine: str,
                   events: dict[str, float]) -> list[str]:
        """Leave the cluster healthy after a failover: the old primary back as a standby of
        the new one (or as the primary again if none was promoted). Bounded; what could
        not be done is returned as reasons, each with the command that is left to run."""
        inv = self.inventory
        self.say(f"\nBringing {old} back" + (f" as a standby of {new}" if new else "") + " ...")
        if engine == "patroni":
            problem = self.start(old, engine)
            if problem:
                return [f"{old} was not started again ({problem}): start it (`pgcluster "
                        f"--inventory {inv} start {old}`); Patroni rejoins it by itself"]
        elif new is not None:
            run = self.pgcluster("rejoin", old, "--yes")
            if not run.ok:
                return [f"{old} was not rejoined ({run.problem()}): run `pgcluster --inventory "
                        f"{inv} rejoin {old} --yes` (with --reclone if pg_rewind cannot)"]
        else:
            run = self.pgcluster("start", old)
            if not run.ok:
                return [f"{old} was not started again ({run.problem()}): run `pgcluster "
                        f"--inventory {inv} start {old}`"]
        if new is None:
            back = self.wait(lambda: self.probe.is_primary(old) is True, REJOIN_WAIT)
            if back is None:
                return [f"{old} is not the primary again within {REJOIN_WAIT:g} s: see "
                        f"`pgcluster --inventory {inv} status`"]
            return []
        streams = self.wait(lambda: old in (self.probe.streaming(new) or set()), REJOIN_WAIT)
        if streams is None:
            return [f"{old} does not stream from {new} within {REJOIN_WAIT:g} s of being "
                    f"brought back: run `pgcluster --inventory {inv} rejoin {old} --yes`"]
        events["rejoined"] = streams
        self.say(f"{old} streams from {new} again; {new} stays the primary (`pgcluster "
                 f"--inventory {inv} switchover --to {old} --yes` puts the roles back)")
        return []

    def wait(self, check: Callable[[], bool], timeout: float) -> float | None:
        """The moment `check` first held, or None when it did not within `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            if check():
                return time.time()
            if time.monotonic() >= deadline:
                return None
            time.sleep(POLL)

    # ---------------------------------------------------------------- switchover

    def switchover_leg(self, old: str, target: str, directory: Path, title: str) -> Leg:
        """One switchover under the writer: `pgcluster switchover --to TARGET --yes`."""
        return Leg("switchover", old, target,
                   lambda: self.pgcluster("switchover", "--to", target, "--yes").problem(),
                   directory, title)

    def switchover(self, planned: Plan) -> list[Outcome]:
        old, target = planned.primary, str(planned.target)
        there = self.switchover_leg(old, target, self.options.report_dir,
                                    f"switchover {old} -> {target}")
        result = self.leg(there)
        outcomes = [self.written(there, result, result.verdict)]
        # Back to the roles the drill found, measured the same way (a second leg).
        status = self.status()
        if status.primary == old:
            self.say(f"\n{old} is still the primary: nothing to switch back.")
            return outcomes
        problems = not_ready(status) if status.primary == target else [
            f"{status.primary or 'no node'} is the primary, not {target}"]
        if problems:
            outcomes.append(Outcome("switchover", False,
                                    f"Switchover back to {old}: NOT RUN: {'; '.join(problems)}"
                                    f". Fix that, then `pgcluster --inventory {self.inventory} "
                                    f"switchover --to {old} --yes`"))
            return outcomes
        back = self.switchover_leg(target, old, self.options.report_dir / "switchover-back",
                                   f"switchover back {target} -> {old}")
        try:
            result = self.leg(back)
        except ClusterStateError as exc:
            outcomes.append(Outcome("switchover", False, f"Switchover back to {old}: NOT RUN: "
                                    f"{exc}. Then `pgcluster --inventory {self.inventory} "
                                    f"switchover --to {old} --yes`"))
            return outcomes
        verdict = result.verdict
        if result.new_primary != old:
            verdict = with_reasons(verdict, [
                f"{old} is not the primary again: run `pgcluster --inventory {self.inventory} "
                f"switchover --to {old} --yes`"])
        outcomes.append(self.written(back, result, verdict, heading=f"Back to {old}:"))
        return outcomes

    # ------------------------------------------------------------------ one leg

    def writer(self, primary: str) -> Writer:
        """The table made (and emptied) by the admin on the primary itself, then a writer
        through the application's endpoint that only inserts."""
        table_owner = self.reach.admin(self.reach.node(primary),
                                       str(self.reach.data["database_name"]))
        endpoint = self.reach.endpoint.description
        try:
            Writer(table_owner, table=TABLE).prepare()
        except psycopg.Error as exc:
            raise ClusterStateError(f"refusing: the drill's table {TABLE} could not be made on "
                                    f"{primary} as the admin role: {_first_line(exc)}") from exc
        try:
            with psycopg.connect(self.reach.writer_dsn(), autocommit=True) as conn:
                conn.execute(f"select count(*) from {TABLE}")
        except psycopg.Error as exc:
            raise ClusterStateError(f"refusing: the writer cannot use {endpoint}: "
                                    f"{_first_line(exc)}") from exc
        return Writer(self.reach.writer_dsn(), interval=1 / self.options.rate, table=TABLE)

    def leg(self, leg: Leg) -> LegResult:
        duration = self.options.duration
        nodes = [n.name for n in self.reach.cluster.nodes]
        self.say(f"Writer: {self.options.rate:g} commits/s into {TABLE} through "
                 f"{self.reach.endpoint.description}, for {duration:g} s; the fault "
                 f"({leg.title}) after {lead_in(duration):.1f} s.")
        writer = self.writer(leg.old)
        events: dict[str, float] = {}
        streaming: dict[str, float] = {}
        reasons: list[str] = []
        new: str | None = None
        started = time.time()
        writer.start(prepare=False)
        try:
            time.sleep(lead_in(duration))
            if not writer.acknowledged:  # nothing stopped yet: refuse rather than measure
                raise ClusterStateError(
                    f"refusing: the writer committed nothing through "
                    f"{self.reach.endpoint.description} in {lead_in(duration):.1f} s "
                    f"({writer.failures} failed attempts), so nothing was stopped; check "
                    "`pgcluster status` and the endpoint")
            events[FAULT] = time.time()
            fault = Background(leg.action)
            new, found = self.await_recovery(leg, nodes, fault, events, streaming)
            reasons += found
            if not fault.join(COMMAND_TIMEOUT + SERVICE_TIMEOUT):
                reasons.append(f"the fault ({leg.title}) did not end")
            elif fault.problem:
                reasons.append(fault.problem)
            last = max(events.values())
            time.sleep(max(0.0, max(started + duration, last + TAIL) - time.time()))
        finally:
            writer.stop()
            events[END] = time.time()
        present = self.present(writer.dsn)
        read_back = present is not None
        if present is None:
            reasons.append(f"the rows could not be read back through "
                           f"{self.reach.endpoint.description} within {READ_BACK_WAIT:g} s: "
                           "how many commits were lost is unknown")
            present = {i for i, _, _ in writer.acknowledged}
        if new is not None and self.reach.node(new).role == "readonly":
            reasons.append(f"the read-only replica {new} was promoted: it never should be")
        measured = judge.measure(writer.acknowledged, present, events)
        verdict = with_reasons(judge.verdict(measured, self.reach.goals), reasons)
        return LegResult(measured, verdict, events, new,
                         judge.commit_series(writer.acknowledged), list(writer.acknowledged),
                         writer.failures, read_back, streaming)

    def await_recovery(self, leg: Leg, nodes: Sequence[str], fault: Background,
                       events: dict[str, float], streaming: dict[str, float] | None = None
                       ) -> tuple[str | None, list[str]]:
        """Watch the nodes while the fault runs: "promoted" when a node other than the old
        primary (the switchover's target) answers pg_is_in_recovery() = false, "recovered"
        when every node it needs streams from it. Bounded: PROMOTION_WAIT after the fault,
        then replica_wait_timeout after the promotion. A leg whose target is the old primary
        (a fault it recovers from in place) counts its promotion only once it was seen not
        to be the primary. `streaming` gets when each node was first seen streaming from
        the new primary."""
        candidates = [leg.target] if leg.target else [n for n in nodes if n != leg.old]
        recovery_wait = float(self.reach.data.get("replica_wait_timeout") or 180)
        deadline = events[FAULT] + PROMOTION_WAIT
        new: str | None = None
        down = leg.target != leg.old  # in place: not until the old primary went down
        streaming = {} if streaming is None else streaming
        while True:
            if not down:
                down = self.probe.is_primary(leg.old) is not True
            elif new is None:
                new = next((c for c in candidates if self.probe.is_primary(c)), None)
                if new is not None:
                    events[PROMOTED] = time.time()
                    deadline = events[PROMOTED] + recovery_wait
                    self.say(f"  {new} is the primary, "
                             f"{events[PROMOTED] - events[FAULT]:.1f} s after the fault")
            if new is not None:
                wanted = recovered_when(nodes, new, leg.old if leg.target is None else None)
                streams = self.probe.streaming(new)
                for name in streams or ():
                    streaming.setdefault(name, time.time())
                if streams is not None and wanted <= streams:
                    events[RECOVERED] = time.time()
                    self.say(f"  every replica streams from {new}, "
                             f"{events[RECOVERED] - events[FAULT]:.1f} s after the fault")
                    return new, []
            if new is None and fault.done and fault.problem:
                return None, []  # nothing will be promoted: the fault's problem says why
            if time.time() >= deadline:
                if not down:
                    return None, [f"{leg.old} did not stop being the primary within "
                                  f"{PROMOTION_WAIT:g} s of the fault"]
                if new is None and leg.target == leg.old:
                    return None, [f"{leg.old} was not the primary again within "
                                  f"{PROMOTION_WAIT:g} s of the fault"]
                if new is None:
                    return None, [f"no node other than {leg.old} became the primary within "
                                  f"{PROMOTION_WAIT:g} s of the fault"]
                missing = sorted(wanted - (streams or set()))
                return new, [f"{', '.join(missing)} did not stream from {new} within "
                             f"{recovery_wait:g} s of its promotion"]
            time.sleep(POLL)

    def present(self, dsn: str) -> set[int] | None:
        """The ids the primary holds now, read through the writer's own endpoint."""
        deadline = time.monotonic() + READ_BACK_WAIT
        while True:
            rows = ask(dsn, f"select id from {TABLE}")
            if rows is not None:
                return {row[0] for row in rows}
            if time.monotonic() >= deadline:
                return None
            time.sleep(1)

    def written(self, leg: Leg, result: LegResult, verdict: Verdict,
                heading: str | None = None) -> Outcome:
        goals = self.reach.goals
        paths = drill_report.write_report(leg.directory, leg.drill, result.measurements,
                                          verdict, result.events, result.series, goals)
        text = drill_report.summary(leg.drill, result.measurements, verdict, goals)
        if heading:
            text = f"{heading}\n{text}"
        return Outcome(leg.drill, verdict.passed, text, tuple(paths))

    # ------------------------------------------------------------------- restore

    def restore(self, planned: Plan) -> list[Outcome]:
        target = self.reach.scratch
        if target is None or planned.scratch != target.name:
            raise ClusterStateError(no_target(self.inventory))
        status = self.status()
        if not status.primary:
            raise ClusterStateError("refusing the restore drill: "
                                    + _issues(status, "no primary is running"))
        result: dict[str, Any] = {"passed": False, "scratch_node": target.name,
                                  "drill_host": target.drill_host,
                                  "fresh_backup": status.last_backup is None}
        events: dict[str, float] = {}
        started = time.time()
        primary = self.reach.node(status.primary)
        try:
            reasons = self.restore_and_compare(primary, target, status.last_backup is None,
                                               result, events)
        except (ClusterStateError, psycopg.Error, LookupError, RuntimeError) as exc:
            reasons = [f"the restore drill stopped: {exc}"]
        result["passed"] = not reasons
        if reasons:
            result["reasons"] = reasons
        # Its verdict in the registry: `status` and the alerts read the newest one.
        problem = record_drill(self.reach.connect(primary),
                               str(self.reach.data.get("backup_registry_database") or "postgres"),
                               result, target.name, started)
        result["recorded"] = problem is None
        if problem:
            self.say(f"The drill's verdict was not recorded in the registry: {problem}")
        paths = drill_report.write_report(self.options.report_dir, "restore", result, None,
                                          events)
        return [Outcome("restore", not reasons, drill_report.summary("restore", result),
                        tuple(paths))]

    def restore_and_compare(self, primary: Node, target: ScratchTarget, needs_backup: bool,
                            result: dict[str, Any], events: dict[str, float]) -> list[str]:
        """The restore drill's steps, filling in its result; the reasons it fails, if any."""
        data = self.reach.data
        if needs_backup:
            self.say("No full backup yet: taking one first (`pgcluster backup full`).")
            run = self.pgcluster("backup", "full", timeout=BACKUP_TIMEOUT)
            if not run.ok:
                return [f"no backup to restore: {run.problem()}"]
        name = restore_point_name(datetime.now(UTC))
        connect_primary = self.reach.connect(primary)
        self.say(f"Restore point {name} on {primary.name}, with the fingerprint of every "
                 "table as of it ...")
        lsn, expected = compare.fingerprint_at_restore_point(connect_primary, name)
        events["restore_point"] = time.time()
        result.update(restore_point=name, restore_point_lsn=lsn)
        problem = archive_current_segment(connect_primary,
                                          float(data.get("backup_archive_wait") or 120))
        if problem:
            return [problem]
        started = time.monotonic()
        # Named explicitly: the scratch node (or drill host) is the drills' own, and may
        # still run the copy an earlier drill or restore made (moved aside, never deleted,
        # as restore does).
        limit = float(data.get("restore_timeout") or 3600) + RESTORE_MARGIN
        run = self.pgcluster("restore", "--scratch", "--name", name, "--force-node",
                             target.name, "--yes", timeout=limit)
        result["restore_seconds"] = round(time.monotonic() - started, 3)
        events["restored"] = time.time()
        if not run.ok:
            return [f"the restore failed: {run.problem()}"]
        started = time.monotonic()
        scratch = reach(target.where, self.reach.lab)
        connect_scratch = self.reach.connect(scratch)
        actual = compare.fingerprint(connect_scratch)
        registry = (str(data.get("backup_registry_database") or "postgres"), REGISTRY_TABLE)
        records, explained = [], []
        for difference in compare.differences(expected, actual):
            # The expected side is the primary now: the same as at the restore point
            # unless something wrote it since (nothing does during the drill).
            rows = compare.differing_rows(connect_primary, connect_scratch, difference.database,
                                          difference.table, ROW_LIMIT)
            if (difference.database, difference.table) == registry and registry_rows_explained(
                    rows, restore_ids(self.reach.admin(scratch, registry[0]))):
                explained.append(f"{difference.describe()}: the restore's own record of itself "
                                 "(kind 'restore')")
                continue
            records.append(difference_record(difference, rows))
        result["compare_seconds"] = round(time.monotonic() - started, 3)
        events["compared"] = time.time()
        databases = sorted(expected.keys() | actual.keys())
        result.update(
            databases_compared=len(databases),
            tables_compared=len({(d, t) for side in (expected, actual)
                                 for d, tables in side.items() for t in tables}),
            differing_tables=records, expected_differences=explained)
        self.say(f"Compared {result['tables_compared']} tables in {len(databases)} databases "
                 f"({', '.join(databases)}) with {primary.name} as of {name}.")
        return restore_reasons(records)


def drill_detail(result: Mapping[str, Any]) -> str:
    """One line for the registry: what was compared, or why it failed."""
    if result.get("passed"):
        return (f"{result.get('tables_compared', 0)} tables in "
                f"{result.get('databases_compared', 0)} databases as of "
                f"{result.get('restore_point', '?')}: identical")
    return "; ".join(str(r) for r in result.get("reasons") or ["failed"]).replace("\n", " ")[:2000]


def record_drill(connect: compare.Connect, database: str, result: Mapping[str, Any],
                 node: str, started: float) -> str | None:
    """A `drill` row in pgcluster.backups on the primary (label: the restore point, node:
    where it was restored, status ok or failed); None when written, else why not (a
    registry from before drills recorded themselves: the next deploy widens it)."""
    label = str(result.get("restore_point") or
                f"drill-{datetime.fromtimestamp(started, UTC):%Y%m%dT%H%M%SZ}")
    try:
        with connect(database) as conn:
            conn.execute(
                f"insert into {REGISTRY_TABLE} (kind, label, node, status, started_at, "
                "finished_at, detail) values ('drill', %s, %s, %s, to_timestamp(%s), now(), %s)",
                (label, node, "ok" if result.get("passed") else "failed", started,
                 drill_detail(result)))
    except psycopg.Error as exc:
        return _first_line(exc)
    return None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def restore_ids(dsn: str) -> set[str]:
    """The registry's restore rows on the restored copy (their ids as text)."""
    rows = ask(dsn, f"select id::text from {REGISTRY_TABLE} where kind = 'restore'")
    return {row[0] for row in rows or []}


def archive_current_segment(connect: compare.Connect, timeout: float) -> str | None:
    """Close the WAL segment holding the restore point (pg_switch_wal) and wait until the
    archive has it, so that a restore can reach the point; None when archived."""
    with connect("postgres") as conn:
        row = conn.execute("select pg_walfile_name(pg_switch_wal())").fetchone()
    segment = str(row[0]) if row else ""
    deadline = time.monotonic() + timeout
    while True:
        with connect("postgres") as conn:
            row = conn.execute("select coalesce(last_archived_wal, '') from pg_stat_archiver"
                               ).fetchone()
        last = str(row[0]) if row else ""
        if len(last) >= 24 and not last.endswith(".history") and last[:24] >= segment:
            return None
        if time.monotonic() >= deadline:
            return (f"the WAL segment {segment} holding the restore point was not archived "
                    f"within {timeout:g} s (backup_archive_wait): see `pgcluster status` "
                    "(archiver)")
        time.sleep(1)
