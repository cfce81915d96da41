#!/usr/bin/env python3
"""Failover benchmark: a continuous writer while the primary is lost, on both HA engines.

    .venv/bin/python bench/failover.py [--engine {manual,patroni,both}] [--keep]

On its own lab (lab/bench.toml), destroyed and rebuilt from scratch for each engine measured
(default: both, manual first) and destroyed at the end unless --keep, it measures with a
writer committing a numbered row every 10 ms through a multi-host connection string over
every node's published port (target_session_attrs=read-write, so it finds the primary by
itself):

The manual engine (pgcluster's own commands; its figures at the top level of the JSON, with
the same keys as before both engines were measured):

- failover (asynchronous replication, primary container killed): time from the failover
  command to the first write accepted on the new primary (goal <= 5 s), to the read-only
  replica streaming from it (goal <= 15 s), committed rows lost, and the writer's gap
  between the last row committed on the old timeline and the first on the new;
- rejoin of the old primary (pg_rewind): duration;
- switchover under the writer: duration, write gap, committed rows lost (goal 0);
- failover with synchronous replication on (synchronous_standbys = the standby and the
  primary): committed rows lost (goal 0).

The Patroni engine (deployed with --data ha_engine=patroni, group_data's patroni_ttl 20 s,
loop_wait 5, retry_timeout 5; figures under "patroni", one entry per fault, each on the
leader of the moment, in this order):

- stop: `docker stop -t 60` of the leader (Patroni gives the leader key up);
- kill: `docker kill` of the leader (the key must expire: ttl);
- postgres_kill: SIGKILL to the leader's postmaster (Patroni restarts it in place: no
  failover expected);
- partition: the leader disconnected from the lab network (reconnected afterwards);
- switchover: `pgcluster switchover --to` the other promotable node;
- sync_kill: `docker kill` of the leader with synchronous_mode on (redeployed with
  synchronous_standbys = both promotable nodes, and back to group_data's afterwards).

For each: time from the fault (not from a command, as for the manual engine) to the first
write acknowledged by the new primary (for postgres_kill: the first after a failed one;
goals: 5 s for stop and switchover, ttl + 5 = 25 s for kill and partition), the longest
write gap, committed rows and rows lost (goal 0 for the switchover and sync_kill), time
until the read-only replica streams from the new primary, whether the read-only replica was
ever promoted (it must never be), and, from when the old leader is brought back (docker
start, network connect; for the switchover: from the command), the time until it streams
from the new primary. The cluster must be healthy again (3 members running, one timeline, a
leader) before the next fault; every wait is bounded (180 s) and records None when it runs
out, and a fault whose cluster never got healthy is skipped.

Prints the figures and a table, and saves them to bench/results/failover.json (only the
engines this run measured).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Collection, Mapping
from contextlib import suppress
from dataclasses import dataclass
from functools import partial
from itertools import pairwise
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import psycopg  # noqa: E402

from bench.common import Bench, save  # noqa: E402
from pgcluster.control import secrets  # noqa: E402
from pgcluster.control.writer import Writer, conninfo  # noqa: E402
from pgcluster.lab.definition import Lab, LabNode, load_lab  # noqa: E402
from pgcluster.model.conninfo import tls_options  # noqa: E402
from pgcluster.model.patroni import PatroniOutputError, PatroniView, parse_members  # noqa: E402

BENCH = Bench("bench")
run, pgcluster = BENCH.run, BENCH.pgcluster
RESULTS = REPO / "bench" / "results" / "failover.json"
ADMIN = ("admin", "admin123")
LAB_CA = secrets.inventory_dir("tls", inventory="docker") / "ca.crt"  # made by the deploy

MANUAL_GOALS = {"to_first_write_on_new_primary_s": 5,
                "to_readonly_streaming_from_new_primary_s": 15}
TTL = 20  # group_data's patroni_ttl: how long a dead leader's key outlives it
PATRONI_GOALS = {"graceful_stop_and_switchover_first_write_s": 5,
                 "kill_and_partition_first_write_s": TTL + 5,
                 "switchover_lost": 0,
                 "sync_kill_lost": 0}
WAIT = 180  # seconds any Patroni wait may take; past it the figure is None, not a hang
PATRONICTL = ("patronictl", "-c", "/etc/patroni/config.yml")
POSTMASTER_KILL = "kill -KILL $(head -1 /var/lib/postgresql/15/main/postmaster.pid)"
PATRONI_FAULTS = ("stop", "kill", "postgres_kill", "partition", "switchover", "sync_kill")
# How long each fault's command may run: docker stop waits up to its -t 60 for the node to
# shut down; a switchover is a pyinfra deploy.
FAULT_TIMEOUT = {"stop": 90, "kill": 60, "postgres_kill": 60, "partition": 60,
                 "switchover": 300, "sync_kill": 60}
# libpq options for the Patroni writer only: if Docker forwards the published ports without
# its userland proxy, a connection to a node cut off the network gets no reset and would
# hang the writer until the kernel gives up (minutes); these make it fail in seconds. They
# change nothing while the node answers.
DEAD_PEER = "keepalives=1 keepalives_idle=2 keepalives_interval=1 keepalives_count=3 " \
            "tcp_user_timeout=5000"


def pyinfra(*args: str) -> subprocess.CompletedProcess:
    return BENCH.pyinfra(*args)[1]


def rebuild(*deploy_args: str) -> None:
    """A lab built from nothing, so one engine's run inherits nothing from the other's."""
    pgcluster("destroy", "--yes", check=False)
    pyinfra("@local", "deploys/lab.py")
    pyinfra("inventory/docker.py", "deploys/cluster.py", *deploy_args)


# ------------------------------------------------------------------- what the nodes say


def rows(node: LabNode, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]] | None:
    """The rows of a query on a node (through its published port); None when it cannot be
    asked (down, cut off, restarting): not the same as no rows."""
    try:
        with psycopg.connect(host="127.0.0.1", port=node.published_port,
                             user=ADMIN[0], password=ADMIN[1], dbname="postgres",
                             connect_timeout=2, autocommit=True,
                             **tls_options(LAB_CA)) as conn:
            return conn.execute(sql, params or None).fetchall()
    except psycopg.Error:
        return None


def receiver_pid(node: LabNode) -> int | None:
    found = rows(node, "select pid from pg_stat_wal_receiver")
    return found[0][0] if found else None


def follows(replica: LabNode, primary: LabNode, *, not_pid: int | None = None,
            or_as_primary_sees_it: bool = False) -> bool:
    """Whether `replica` streams WAL from `primary`, as its WAL receiver says. not_pid: a
    receiver that was already running before a fault does not count (after a restart in
    place the sender's address is the same; only a new receiver shows it reconnected).
    or_as_primary_sees_it: when the replica cannot be asked, the primary's
    pg_stat_replication answers instead (a node put back on the network may not get its
    published port back)."""
    found = rows(replica, "select pid, status, sender_host from pg_stat_wal_receiver")
    if found is None and or_as_primary_sees_it:
        return bool(rows(primary, "select 1 from pg_stat_replication "
                                  "where client_addr = %s::inet and state = 'streaming'",
                         (replica.address,)))
    if not found:
        return False
    pid, status, sender = found[0]
    return status == "streaming" and sender == primary.address and pid != not_pid


def is_primary(node: LabNode) -> bool | None:
    found = rows(node, "select not pg_is_in_recovery()")
    return found[0][0] if found else None


def docker(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str] | None:
    """docker ARGS, bounded: None when it did not end in time (a docker exec into a node
    whose etcd is unreachable may wait long)."""
    try:
        return subprocess.run(["docker", *args], cwd=REPO, env=BENCH.env, capture_output=True,
                              text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return None


def patroni_view(lab: Lab, avoid: Collection[LabNode] = ()) -> PatroniView | None:
    """The cluster as `patronictl list -f json` shows it on the first node that answers;
    never asked on `avoid` (a stopped node answers nothing, a cut-off one an outdated view).
    None when no node answers."""
    for node in lab.nodes:
        if node in avoid:
            continue
        result = docker("exec", node.name, *PATRONICTL, "list", "-f", "json", timeout=30)
        if result is None or result.returncode:
            continue
        try:
            return parse_members(result.stdout)
        except PatroniOutputError:
            continue
    return None


def healthy(lab: Lab, view: PatroniView | None) -> bool:
    """Every node a running member, one leader, every replica on its timeline."""
    return (view is not None and view.leader is not None
            and len(view.members) == len(lab.nodes) and not view.problems())


@dataclass(frozen=True)
class Roles:
    leader: LabNode
    other: LabNode  # the promotable replica: the only possible next leader
    readonly: LabNode  # nofailover: never to be promoted


def settle(lab: Lab, timeout: float = WAIT) -> Roles | None:
    """Wait until the cluster is healthy and the read-only replica streams from its leader
    (so a fault starts from the same state every time); the roles then, or None."""
    deadline = time.monotonic() + timeout
    readonly = lab.node("readonly")
    while time.monotonic() < deadline:
        view = patroni_view(lab)
        if view is not None and healthy(lab, view):
            leader = lab.node(str(view.leader))
            if follows(readonly, leader):
                other = next(n for n in lab.nodes if n not in (leader, readonly))
                return Roles(leader, other, readonly)
        time.sleep(1)
    return None


# ----------------------------------------------------------------------------- timing


def wait_until(check: Callable[[], bool], timeout: float = 120) -> float | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return time.time()
        time.sleep(0.1)
    return None


def first_times(checks: Mapping[str, Callable[[], float | None]],
                timeout: float = WAIT) -> dict[str, float | None]:
    """Poll every check until each has returned the moment (epoch seconds) what it watches
    happened, or until timeout. They are polled side by side, so an event that happens while
    another is still awaited is timed when it happens, not after."""
    found: dict[str, float | None] = dict.fromkeys(checks)
    deadline = time.monotonic() + timeout
    while None in found.values() and time.monotonic() < deadline:
        for name, check in checks.items():
            if found[name] is None:
                found[name] = check()
        time.sleep(0.1)
    return found


def now_if(condition: Callable[[], bool]) -> Callable[[], float | None]:
    return lambda: time.time() if condition() else None


def since(moment: float | None, start: float) -> float | None:
    return round(moment - start, 2) if moment is not None else None


def gap(writer: Writer, after: float) -> float | None:
    """The longest time without an acknowledged commit, from just before `after` on: how
    long writes were unavailable (the writer tries every 10 ms)."""
    times = [at for _, at, _ in writer.acknowledged if at >= after - 1]
    return round(max(b - a for a, b in pairwise(times)), 3) if len(times) > 1 else None


def first_ack_after_break(writer: Writer, moment: float) -> float | None:
    """The first commit acknowledged after `moment` that follows a failed attempt (the
    writer numbers every attempt, so a skipped id is a failed write). For a fault that keeps
    the primary where it was: commits acknowledged between the fault and the moment its
    effect reaches the writer's session would otherwise count as the first write."""
    previous: int | None = None
    for row_id, at, _ in list(writer.acknowledged):
        if at >= moment and previous is not None and row_id != previous + 1:
            return at
        previous = row_id
    return None


def lost(writer: Writer) -> int | None:
    """Acknowledged rows missing on the primary; None when no primary answers."""
    try:
        return len(writer.missing())
    except psycopg.Error:
        return None


class Background:
    """A command run in a thread, so that what it causes can be timed while it runs (a
    `docker stop` or a switchover returns after the new primary already took writes)."""

    def __init__(self, args: list[str], timeout: float):
        self.result: subprocess.CompletedProcess[str] | None = None
        self.finished: float | None = None
        self._thread = threading.Thread(target=self._run, args=(args, timeout), daemon=True)
        self._thread.start()

    def _run(self, args: list[str], timeout: float) -> None:
        # On a timeout the result stays None: the figures say the command did not finish.
        with suppress(subprocess.TimeoutExpired):
            self.result = subprocess.run(args, cwd=REPO, env=BENCH.env, capture_output=True,
                                         text=True, timeout=timeout, check=False)
        self.finished = time.time()

    def join(self) -> None:
        self._thread.join()  # bounded: subprocess.run's timeout ends the command

    @property
    def returncode(self) -> int | None:
        return self.result.returncode if self.result else None


# ---------------------------------------------------------------------- manual engine


def failover_run(lab: Lab, label: str) -> dict:
    old, new = lab.node("primary"), lab.node("standby")
    writer = Writer(conninfo([n.published_port for n in lab.nodes], *ADMIN,
                             sslrootcert=LAB_CA)).start()
    time.sleep(3)
    killed = time.time()
    run("docker", "kill", old.name)
    started = time.time()
    result = pgcluster("failover", "--yes")
    finished = time.time()
    readonly_at = wait_until(lambda: follows(lab.node("readonly"), new))
    time.sleep(2)
    writer.stop()
    first_write = writer.first_ack_after(started, str(new.published_port))
    figures = {
        "replication": label,
        "failover_command_s": round(finished - started, 2),
        "to_first_write_on_new_primary_s": round(first_write - started, 2) if first_write else None,
        "to_readonly_streaming_from_new_primary_s":
            round(readonly_at - started, 2) if readonly_at else None,
        "committed_rows": len(writer.acknowledged),
        "committed_rows_lost": len(writer.missing()),
        "write_gap_s": gap(writer, killed),
        "writer_errors": writer.failures,
        "command_exit": result.returncode,
    }
    run("docker", "start", old.name)
    started = time.time()
    pgcluster("rejoin", old.name, "--yes")
    figures["rejoin_s"] = round(time.time() - started, 2)
    return figures


def switchover_run(lab: Lab, to_role: str) -> dict:
    target = lab.node(to_role)
    writer = Writer(conninfo([n.published_port for n in lab.nodes], *ADMIN,
                             sslrootcert=LAB_CA)).start()
    time.sleep(3)
    started = time.time()
    pgcluster("switchover", "--to", target.name, "--yes")
    finished = time.time()
    time.sleep(2)
    writer.stop()
    return {"to": target.name, "switchover_command_s": round(finished - started, 2),
            "write_gap_s": gap(writer, started), "committed_rows": len(writer.acknowledged),
            "committed_rows_lost": len(writer.missing())}


def manual_runs(lab: Lab) -> dict[str, Any]:
    """The manual engine's figures, under the top-level keys they always had."""
    results: dict[str, Any] = {}
    results["failover_async"] = failover_run(lab, "asynchronous")
    # Back to the inventory's layout, then a planned switchover away and back.
    results["switchover"] = [switchover_run(lab, "primary"), switchover_run(lab, "standby")]
    switchover_run(lab, "primary")
    sync = json.dumps([lab.node("standby").name, lab.node("primary").name])
    pyinfra("inventory/docker.py", "deploys/cluster.py", "--data", f"synchronous_standbys={sync}")
    results["failover_sync"] = failover_run(lab, "synchronous (FIRST 1 standby)")
    return results


# --------------------------------------------------------------------- Patroni engine


def fault_command(lab: Lab, kind: str, roles: Roles) -> list[str]:
    leader = roles.leader.name
    return {
        "stop": ["docker", "stop", "-t", "60", leader],
        "kill": ["docker", "kill", leader],
        "sync_kill": ["docker", "kill", leader],
        "postgres_kill": ["docker", "exec", leader, "sh", "-c", POSTMASTER_KILL],
        "partition": ["docker", "network", "disconnect", lab.network, leader],
        "switchover": [sys.executable, "-m", "pgcluster", "switchover", "--to",
                       roles.other.name, "--yes"],
    }[kind]


def return_command(lab: Lab, kind: str, old: LabNode) -> list[str] | None:
    """How the faulted node is brought back; None when it comes back by itself."""
    if kind in ("stop", "kill", "sync_kill"):
        return ["start", old.name]
    if kind == "partition":
        # Its own address again: the other members and the certificates know it by it.
        return ["network", "connect", "--ip", old.address, lab.network, old.name]
    return None


def patroni_fault(lab: Lab, kind: str, roles: Roles) -> dict[str, Any]:
    old, readonly = roles.leader, roles.readonly
    # The postmaster killed in place keeps the leader; every other fault hands over to the
    # only promotable replica.
    new = old if kind == "postgres_kill" else roles.other
    writer = Writer(conninfo([n.published_port for n in lab.nodes], *ADMIN,
                             sslrootcert=LAB_CA) + " " + DEAD_PEER).start()
    time.sleep(3)
    readonly_pid = receiver_pid(readonly)
    fault = time.time()
    command = Background(fault_command(lab, kind, roles), timeout=FAULT_TIMEOUT[kind])
    # In place, the new primary is the old one: any port, but only after the writes failed.
    first_write: Callable[[], float | None] = (
        partial(first_ack_after_break, writer, fault) if kind == "postgres_kill"
        else partial(writer.first_ack_after, fault, str(new.published_port)))
    checks: dict[str, Callable[[], float | None]] = {
        "first_write": first_write,
        "readonly": now_if(lambda: follows(readonly, new, not_pid=readonly_pid)),
    }
    if kind == "switchover":
        # Demoted by Patroni itself, the old leader follows without being brought back.
        checks["returned"] = now_if(lambda: follows(old, new, or_as_primary_sees_it=True))
    times = first_times(checks)
    time.sleep(2)  # writes on the new primary after the event, as in the manual runs
    writer.stop()
    command.join()  # a docker stop must be over before the node is started again
    view = patroni_view(lab, avoid=[old])
    readonly_promoted = (any(via == str(readonly.published_port)
                             for _, _, via in writer.acknowledged)
                         or is_primary(readonly) is True
                         or (view is not None and view.leader == readonly.name))
    figures: dict[str, Any] = {
        "fault": " ".join(fault_command(lab, kind, roles)).replace(f"{sys.executable} -m ", ""),
        "leader_before": old.name,
        "leader_after": view.leader if view else None,
        "fault_command_s": since(command.finished, fault) if command.result else None,
        "fault_command_exit": command.returncode,
        "to_first_write_on_new_primary_s": since(times["first_write"], fault),
        "write_gap_s": gap(writer, fault),
        "committed_rows": len(writer.acknowledged),
        "committed_rows_lost": lost(writer),
        "writer_errors": writer.failures,
        "to_readonly_streaming_from_new_primary_s": since(times["readonly"], fault),
        "readonly_promoted": readonly_promoted,
        "returned_node_streaming_s": since(times.get("returned"), fault),
    }
    back = return_command(lab, kind, old)
    returned = time.time()
    if back is not None:
        result = docker(*back, timeout=90)
        figures["return_command_exit"] = result.returncode if result else None
        if kind == "partition" and (result is None or result.returncode != 0):
            # Docker 20.10 may leave the old interface in the container's namespace ("conflicts
            # with existing route"): the node is half back, without its published port. A
            # restart rebuilds its network; the figure then includes a crash recovery.
            figures["return_error"] = (result.stderr.strip() if result else "timed out")[-300:]
            restarted = docker("restart", "-t", "10", old.name, timeout=90)
            figures["return_restart_exit"] = restarted.returncode if restarted else None
        streaming = wait_until(lambda: follows(old, new, or_as_primary_sees_it=True),
                               timeout=WAIT)
        figures["returned_node_streaming_s"] = since(streaming, returned)
    # Timed from the node's return, or from the fault when nothing had to be brought back.
    start = returned if back is not None else fault
    figures["healthy_again_s"] = since(time.time(), start) if settle(lab) else None
    return figures


def synchronous(lab: Lab, on: bool) -> bool:
    """Redeploy with synchronous_mode on (both promotable nodes may be the synchronous
    standby) or back to group_data's; True once Patroni shows it so."""
    promotable = [n.name for n in lab.nodes if n.role != "readonly"]
    extra = ["--data", f"synchronous_standbys={json.dumps(promotable)}"] if on else []
    if pyinfra("inventory/docker.py", "deploys/cluster.py", *extra).returncode != 0:
        return False

    def shown() -> bool:
        view = patroni_view(lab)
        return view is not None and any(m.role == "sync_standby" for m in view.members) == on

    return wait_until(shown, timeout=60) is not None


def patroni_runs(lab: Lab) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    for kind in PATRONI_FAULTS:
        if kind == "sync_kill" and not synchronous(lab, on=True):
            results[kind] = {"skipped": "synchronous_mode did not come on"}
            continue
        roles = settle(lab)
        if roles is None:
            # A fault on a cluster still recovering from the last one measures nothing.
            results[kind] = {"skipped": f"the cluster was not healthy within {WAIT} s"}
            continue
        results[kind] = patroni_fault(lab, kind, roles)
        print(f"patroni {kind}: {json.dumps(results[kind])}", flush=True)
    synchronous(lab, on=False)
    return results


def patroni_goals_met(figures: Mapping[str, Mapping[str, Any]]) -> dict[str, bool | None]:
    """Each goal met, not met, or None when a figure it needs is missing."""
    def first_writes(*kinds: str) -> list[float | None]:
        return [figures.get(k, {}).get("to_first_write_on_new_primary_s") for k in kinds]

    def within(values: list[float | None], limit: float) -> bool | None:
        return None if None in values else all(v <= limit for v in values if v is not None)

    def none_lost(kind: str) -> bool | None:
        value = figures.get(kind, {}).get("committed_rows_lost")
        return None if value is None else value <= PATRONI_GOALS[f"{kind}_lost"]

    return {
        "graceful_stop_and_switchover_first_write_s": within(
            first_writes("stop", "switchover"),
            PATRONI_GOALS["graceful_stop_and_switchover_first_write_s"]),
        "kill_and_partition_first_write_s": within(
            first_writes("kill", "partition"),
            PATRONI_GOALS["kill_and_partition_first_write_s"]),
        "switchover_lost": none_lost("switchover"),
        "sync_kill_lost": none_lost("sync_kill"),
    }


# ---------------------------------------------------------------------------- report


def table(results: Mapping[str, Any]) -> str:
    """One row per engine and fault: the figures the two engines share."""
    def cell(value: Any) -> str:
        return "-" if value is None else str(value)

    lines = [f"{'engine':<8} {'fault':<26} {'1st write s':>11} {'gap s':>7} {'lost':>5} "
             f"{'readonly s':>10} {'returned s':>10}"]

    def row(engine: str, fault: str, first: Any, gap_s: Any, lost_rows: Any, readonly: Any,
            returned: Any) -> None:
        lines.append(f"{engine:<8} {fault:<26} {cell(first):>11} {cell(gap_s):>7} "
                     f"{cell(lost_rows):>5} {cell(readonly):>10} {cell(returned):>10}")

    for key, label in (("failover_async", "failover (async)"),
                       ("failover_sync", "failover (sync)")):
        if key in results:
            f = results[key]
            row("manual", label, f["to_first_write_on_new_primary_s"], f["write_gap_s"],
                f["committed_rows_lost"], f["to_readonly_streaming_from_new_primary_s"],
                f["rejoin_s"])
    for f in results.get("switchover", []):
        row("manual", f"switchover to {f['to'].rsplit('-', 1)[-1]}", None, f["write_gap_s"],
            f["committed_rows_lost"], None, None)
    for kind, f in results.get("patroni", {}).items():
        if "skipped" in f:
            row("patroni", f"{kind} (skipped)", None, None, None, None, None)
            continue
        row("patroni", kind + (" RO PROMOTED" if f["readonly_promoted"] else ""),
            f["to_first_write_on_new_primary_s"], f["write_gap_s"], f["committed_rows_lost"],
            f["to_readonly_streaming_from_new_primary_s"], f["returned_node_streaming_s"])
    lines += ["manual: from the `pgcluster failover` command (the kill just before it); "
              "returned = `pgcluster rejoin`'s duration",
              "patroni: from the fault; returned = from the node brought back (switchover: "
              "from the command) to it streaming",
              "-: not measured, or not reached within the wait"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=("manual", "patroni", "both"), default="both",
                        help="the HA engine(s) to measure, each on a lab rebuilt for it")
    parser.add_argument("--keep", action="store_true", help="leave the last bench lab running")
    args = parser.parse_args()
    engines = ("manual", "patroni") if args.engine == "both" else (args.engine,)
    lab = load_lab("bench")

    results: dict[str, Any] = {"engines": list(engines)}
    if "manual" in engines:
        rebuild()
        results.update(manual_runs(lab))
        results["goals"] = MANUAL_GOALS
    if "patroni" in engines:
        rebuild("--data", "ha_engine=patroni")
        results["patroni"] = patroni_runs(lab)
        results["patroni_goals"] = PATRONI_GOALS
        results["patroni_goals_met"] = patroni_goals_met(results["patroni"])
    if not args.keep:
        pgcluster("destroy", "--yes", check=False)

    save(RESULTS, "failover", results)
    print("\n" + table(results))
    print(f"\nsaved to {RESULTS.relative_to(REPO)}")


if __name__ == "__main__":
    main()
