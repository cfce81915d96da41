#!/usr/bin/env python3
"""Failover benchmark: the drill's writer and figures while the primary is lost, both engines.

    .venv/bin/python bench/failover.py [--engine {manual,patroni,both}] [--keep] [--report DIR]

On its own lab (lab/bench.toml, PGCLUSTER_LAB=bench), destroyed and rebuilt from scratch for
each engine measured (default: both, manual first) and destroyed at the end unless --keep.

Every fault is one leg of the drill (pgcluster.control.drill, docs/drills.md), run by its
Drills object on the bench lab's inventory (inventory/docker.py): the drill's writer
commits a numbered row every 10 ms (rate 100/s) through the drill's endpoint (the bench
lab has no proxy: libpq's multi-host string over every node's published port with
target_session_attrs=read-write, as the admin role), the fault runs after a lead-in of 3 s,
the drill notes when a node other than the old primary answers as the primary
("promoted") and when every replica it waits for streams from it ("recovered"), writes
for 12 s at least and 2 s past the last of these, reads back which acknowledged rows the
primary holds, and judges the figures against group data's drill goals (model.drill).
Every figure is timed from the fault. Each entry has the drill's figures:

- to_first_write_on_new_primary_s: the end of the longest write pause that began around
  the fault (model.drill.first_write_after);
- to_new_primary_s, to_replicas_streaming_s: the drill's "promoted" and "recovered";
- write_gap_s: the longest pause between two acknowledged commits over the leg;
- committed_rows, committed_rows_lost (None when the rows could not be read back),
  writer_errors;
- drill_passed, drill_reasons: the drill's verdict (drill_max_rto_seconds,
  drill_max_lost_commits; a read-only replica promoted; a command that failed).

The manual engine (figures at the top level of the JSON, under the keys they always had):

- failover_async: the drill's own failover (Drills.failover_leg: the primary's container
  killed, which is harder than the drill's stop: no clean shutdown sends the last WAL, then
  `pgcluster failover --yes`, then `pgcluster rejoin OLD --yes`); plus the
  failover command's duration and exit code, when it started after the fault, the time
  until the read-only replica streams from the new primary (goals: first write <= 5 s,
  read-only replica <= 15 s), and the rejoin's duration (its container start included);
- switchover under the writer, to the old primary and back (Drills.switchover_leg):
  the command's duration, the drill's figures (goal: nothing lost);
- failover_sync: the failover again with synchronous replication on
  (synchronous_standbys = the standby and the primary).

The Patroni engine (deployed with --data ha_engine=patroni, group_data's patroni_ttl 20 s,
loop_wait 5, retry_timeout 5; figures under "patroni", one entry per fault, each on the
leader of the moment, in this order; each a Leg whose action is the fault):

- stop: `docker stop -t 60` of the leader (Patroni gives the leader key up);
- kill: `docker kill` of the leader (the key must expire: ttl);
- postgres_kill: SIGKILL to the leader's postmaster (Patroni restarts it in place: no
  failover expected; a leg whose target is the leader itself, so its "promoted" is the
  leader answering as the primary again after it was seen down);
- partition: the leader disconnected from the lab network (reconnected afterwards);
- switchover: `pgcluster switchover --to` the other promotable node (Drills.switchover_leg);
- sync_kill: `docker kill` of the leader with synchronous_mode on (redeployed with
  synchronous_standbys = both promotable nodes, and back to group_data's afterwards).

For each, besides the drill's figures (goals: first write within 5 s for stop and
switchover, ttl + 5 = 25 s for kill and partition, nothing lost in the switchover and
sync_kill): the fault command's duration and exit code, the leader before and after, the
time until the read-only replica streams from the new primary (as the drill's probe first
saw it), whether the read-only replica was ever promoted (the drill's new primary, a
commit acknowledged on its port, or it answering as a primary after the leg: it must
never be), and, from when the old leader is brought back (Drills.bring_back: docker
start; network connect; for the switchover: from the fault), the time until it streams from
the new primary. The cluster must be ready again (the drill's not_ready: one primary, every
other node streaming from it, a standby; and under Patroni every node a running member,
one leader, one timeline) before the next fault; healthy_again_s is when the bench first
saw it so (its status is read every few seconds), from the node's return or from the fault
when nothing was brought back. Every wait is bounded (180 s) and records None when it runs
out, and a fault whose cluster never got ready is skipped.

Prints the figures and a table, and saves them to bench/results/failover.json (only the
engines this run measured). --report DIR also writes each leg's drill report (JSON,
Markdown, chart) under DIR/<engine>/<fault>/.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pyinfra.api.exceptions import PyinfraError  # noqa: E402

from bench.common import Bench, save  # noqa: E402
from pgcluster.commands.common import report  # noqa: E402
from pgcluster.control import drill  # noqa: E402
from pgcluster.control.drill import CommandRun, Drills, Leg, LegResult  # noqa: E402
from pgcluster.control.status import Report  # noqa: E402
from pgcluster.errors import ClusterStateError  # noqa: E402
from pgcluster.model.drill import FAULT, Verdict  # noqa: E402
from pgcluster.model.patroni import PatroniMember, PatroniView  # noqa: E402

LAB = "bench"
BENCH = Bench(LAB)
pgcluster = BENCH.pgcluster
INVENTORY = "inventory/docker.py"
RESULTS = REPO / "bench" / "results" / "failover.json"

RATE = 100.0  # the drill writer's commits per second: one every 10 ms
DURATION = 12.0  # seconds it writes at least: a lead-in of 3 s (drill.lead_in), the rest after
MANUAL_GOALS = {"to_first_write_on_new_primary_s": 5,
                "to_readonly_streaming_from_new_primary_s": 15}
TTL = 20  # group_data's patroni_ttl: how long a dead leader's key outlives it
PATRONI_GOALS = {"graceful_stop_and_switchover_first_write_s": 5,
                 "kill_and_partition_first_write_s": TTL + 5,
                 "switchover_lost": 0,
                 "sync_kill_lost": 0}
WAIT = 180  # seconds any wait of the bench's may take; past it the figure is None, not a hang
POSTMASTER_KILL = "kill -KILL $(head -1 /var/lib/postgresql/15/main/postmaster.pid)"
PATRONI_FAULTS = ("stop", "kill", "postgres_kill", "partition", "switchover", "sync_kill")
BROUGHT_BACK = ("stop", "kill", "sync_kill")  # started again by Drills.bring_back
# How long each docker fault may run: docker stop waits up to its -t 60 for the node to
# shut down. (The switchover is the drill's command, with the drill's bound.)
FAULT_TIMEOUT = {"stop": 90, "kill": 60, "postgres_kill": 60, "partition": 60,
                 "sync_kill": 60}


def pyinfra(*args: str) -> subprocess.CompletedProcess:
    return BENCH.pyinfra(*args)[1]


def rebuild(*deploy_args: str) -> None:
    """A lab built from nothing, so one engine's run inherits nothing from the other's."""
    pgcluster("destroy", "--yes", check=False)
    pyinfra("@local", "deploys/lab.py")
    pyinfra(INVENTORY, "deploys/cluster.py", *deploy_args)


# ----------------------------------------------------------------- running the drill


@dataclass
class Commands:
    """The drill's pgcluster commands (control.drill.pgcluster, as Drills runs them), each
    kept with when it started: the bench reports how long the failover, rejoin and
    switchover commands took and how they ended."""

    runs: list[tuple[str, float, CommandRun]] = field(default_factory=list)
    run: Callable[..., CommandRun] = drill.pgcluster

    def __call__(self, inventory: str, *argv: str, timeout: float,
                 verbose: bool = False) -> CommandRun:
        started = time.time()
        done = self.run(inventory, *argv, timeout=timeout, verbose=verbose)
        self.runs.append((argv[0], started, done))
        return done

    def last(self, name: str) -> tuple[float, CommandRun] | None:
        """When the last `pgcluster NAME` started, and how it went; None: not run."""
        return next(((at, run) for what, at, run in reversed(self.runs) if what == name), None)


def make_drills(commands: Commands) -> Drills:
    """The drill on the bench lab, as `pgcluster drill` builds it, at the bench's pace."""
    options = drill.Options(duration=DURATION, rate=RATE)
    return Drills(drill.load_reach(INVENTORY), options,
                  status=lambda: report(INVENTORY)[0], command=commands)


def docker(*args: str, timeout: float = 60) -> tuple[CommandRun, str]:
    """docker ARGS, bounded: how it went (code None: it did not end in time; a docker
    exec into a node whose etcd is unreachable may wait long) and its stderr."""
    shown = " ".join(["docker", *args])
    started = time.monotonic()
    try:
        result = subprocess.run(["docker", *args], cwd=REPO, capture_output=True, text=True,
                                timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return CommandRun(shown, None, time.monotonic() - started), "timed out"
    return CommandRun(shown, result.returncode, time.monotonic() - started), result.stderr.strip()


def docker_fault(args: list[str], timeout: float,
                 runs: list[CommandRun]) -> Callable[[], str | None]:
    """A Leg's action: docker ARGS; its run kept in `runs`; a problem, or None."""
    def act() -> str | None:
        run, err = docker(*args, timeout=timeout)
        runs.append(run)
        if run.code is None:
            return f"`{run.command}` did not end within {timeout:g} s"
        return f"`{run.command}` failed (exit {run.code}): {err[-300:]}" if run.code else None
    return act


def cluster_problems(status: Report, nodes: int) -> list[str]:
    """Why a fault cannot start from this status (empty: it can): the drill's own checks
    (one primary, every other node streaming from it, a standby to promote), and under
    Patroni every node a running member, one leader, every replica on its timeline."""
    found = drill.not_ready(status)
    if status.patroni is not None:
        view = PatroniView(tuple(PatroniMember(**m) for m in status.patroni), "status")
        if len(view.members) != nodes:
            found.append(f"{len(view.members)} Patroni members, not {nodes}")
        found += view.problems()
    return found


def settle(drills: Drills, timeout: float = WAIT) -> tuple[float | None, Report | None]:
    """Wait (Drills.wait) until a fault can start from the same state every time: the
    moment it could, and the status then; (None, None) when it did not within timeout."""
    nodes = len(drills.reach.cluster.nodes)
    seen: list[Report] = []

    def ready() -> bool:
        try:
            status = drills.status()
        except (PyinfraError, OSError):  # not readable now (a node half back): not ready
            return False
        if cluster_problems(status, nodes):
            return False
        seen.append(status)
        return True

    at = drills.wait(ready, timeout)
    return (at, seen[-1]) if at is not None else (None, None)


@dataclass(frozen=True)
class Roles:
    leader: str
    other: str  # the promotable replica: the only possible next leader
    readonly: str  # nofailover / never promoted


def roles(drills: Drills, status: Report) -> Roles:
    """Who is who now: the primary, the other promotable node, the read-only replica."""
    nodes = drills.reach.cluster.nodes
    leader = str(status.primary)
    readonly = next(n.name for n in nodes if n.role == "readonly")
    other = next(n.name for n in nodes if n.name not in (leader, readonly))
    return Roles(leader, other, readonly)


def reported(drills: Drills, reports: Path | None, leg: Leg, result: LegResult,
             verdict: Verdict | None = None) -> None:
    """With --report: the leg's drill report (JSON, Markdown, chart) in its directory."""
    if reports is None:
        return
    outcome = drills.written(leg, result, verdict or result.verdict)
    for path in outcome.paths:
        print(f"  report: {path}", flush=True)


# ------------------------------------------------------------------------ the figures


def rounded(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def after_fault(result: LegResult, moment: float | None) -> float | None:
    """Seconds from the leg's fault to a moment (None: it never came)."""
    return None if moment is None else rounded(moment - result.events[FAULT])


def leg_figures(result: LegResult, verdict: Verdict | None = None) -> dict[str, Any]:
    """The drill's figures of one leg, under the bench's keys; verdict: the leg's own
    unless given (a failover's includes bringing the old primary back)."""
    m, verdict = result.measurements, verdict or result.verdict
    return {
        "to_first_write_on_new_primary_s": rounded(m.first_write_after_fault),
        "to_new_primary_s": rounded(m.time_to_promoted),
        "to_replicas_streaming_s": rounded(m.time_to_recovered),
        "write_gap_s": round(m.longest_gap, 3) if m.commits > 1 else None,
        "committed_rows": m.commits,
        "committed_rows_lost": len(m.lost) if result.read_back else None,
        "writer_errors": result.failures,
        "drill_passed": verdict.passed,
        "drill_reasons": list(verdict.reasons),
    }


def readonly_promoted(result: LegResult, readonly: str, port: int | None) -> bool:
    """Whether the leg saw the read-only replica as the primary: the drill's new primary,
    or a commit the writer got acknowledged on its port."""
    return result.new_primary == readonly or (
        port is not None and any(via == str(port) for _, _, via in result.acknowledged))


def command_figures(started: float, run: CommandRun | None, result: LegResult,
                    name: str) -> dict[str, Any]:
    """A manual command's duration and exit code, and when it started after the fault."""
    if run is None:
        return {f"{name}_command_s": None, "command_exit": None}
    return {f"{name}_command_s": rounded(run.seconds) if run.code is not None else None,
            "command_exit": run.code,
            "command_started_after_fault_s": after_fault(result, started)}


def failover_figures(label: str, title: str, result: LegResult, verdict: Verdict,
                     readonly: str, failover: tuple[float, CommandRun] | None,
                     rejoin: tuple[float, CommandRun] | None) -> dict[str, Any]:
    """A manual failover's entry: the drill's figures, its commands, the read-only replica."""
    figures: dict[str, Any] = {"replication": label, "fault": title}
    figures.update(command_figures(*(failover or (0.0, None)), result, "failover"))
    figures.update(leg_figures(result, verdict))
    figures["to_readonly_streaming_from_new_primary_s"] = after_fault(
        result, result.streaming.get(readonly))
    figures["new_primary"] = result.new_primary
    figures["rejoin_s"] = rounded(rejoin[1].seconds) if rejoin and rejoin[1].ok else None
    figures["rejoin_exit"] = rejoin[1].code if rejoin else None
    return figures


def patroni_figures(shown: str, result: LegResult, old: str, readonly: str,
                    readonly_port: int | None, run: CommandRun | None,
                    switchover: bool) -> dict[str, Any]:
    """A Patroni fault's entry from its leg, before the node is brought back."""
    figures: dict[str, Any] = {
        "fault": shown, "leader_before": old, "leader_after": result.new_primary,
        "fault_command_s": rounded(run.seconds) if run and run.code is not None else None,
        "fault_command_exit": run.code if run else None,
    }
    figures.update(leg_figures(result))
    figures["to_readonly_streaming_from_new_primary_s"] = after_fault(
        result, result.streaming.get(readonly))
    figures["readonly_promoted"] = readonly_promoted(result, readonly, readonly_port)
    # Demoted by Patroni itself, the old leader of a switchover follows without being
    # brought back: among the replicas the leg waited for, timed from the fault.
    figures["returned_node_streaming_s"] = (after_fault(result, result.streaming.get(old))
                                            if switchover else None)
    return figures


def within(values: list[float | None], limit: float) -> bool | None:
    """Every value at most limit; None when one is missing."""
    return None if None in values else all(v <= limit for v in values if v is not None)


def manual_goals_met(results: Mapping[str, Any]) -> dict[str, bool | None]:
    """Each manual goal met by both failovers, not met, or None when a figure is missing."""
    return {key: within([results.get(run, {}).get(key)
                         for run in ("failover_async", "failover_sync")], limit)
            for key, limit in MANUAL_GOALS.items()}


def patroni_goals_met(figures: Mapping[str, Mapping[str, Any]]) -> dict[str, bool | None]:
    """Each goal met, not met, or None when a figure it needs is missing."""
    def first_writes(*kinds: str) -> list[float | None]:
        return [figures.get(k, {}).get("to_first_write_on_new_primary_s") for k in kinds]

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


# ---------------------------------------------------------------------- manual engine


def manual_failover(drills: Drills, commands: Commands, label: str,
                    reports: Path | None) -> dict[str, Any]:
    """The drill's failover (stop, `pgcluster failover`, `pgcluster rejoin`), measured."""
    _, status = settle(drills)
    if status is None:
        return {"replication": label, "skipped": f"the cluster was not ready within {WAIT} s"}
    readonly = roles(drills, status).readonly
    commands.runs.clear()
    try:
        planned = drill.plan(["failover"], status, None)[0]
        # Killed, not stopped as the drill does by default: no clean shutdown hands the last
        # WAL over, so an asynchronous failover can lose acknowledged commits, and the
        # figures show how many.
        container = drills.reach.containers[planned.primary]
        leg, result, verdict = drills.failover_leg(
            planned, lose=lambda: drill.container("kill", container), lost_how="kill it")
    except ClusterStateError as exc:
        return {"replication": label, "skipped": str(exc)}
    if reports is not None:
        leg.directory = reports / "manual" / f"failover-{label.split()[0]}"
    reported(drills, reports, leg, result, verdict)
    return failover_figures(label, leg.title, result, verdict, readonly,
                            commands.last("failover"), commands.last("rejoin"))


def manual_switchover(drills: Drills, commands: Commands, to: str,
                      reports: Path | None) -> dict[str, Any]:
    """A switchover to `to` under the drill's writer (Drills.switchover_leg)."""
    _, status = settle(drills)
    if status is None:
        return {"to": to, "skipped": f"the cluster was not ready within {WAIT} s"}
    if status.primary == to:
        return {"to": to, "skipped": f"{to} is the primary already"}
    old = str(status.primary)
    leg = drills.switchover_leg(old, to, (reports or Path("drills")) / "manual" /
                                f"switchover-to-{to}", f"switchover {old} -> {to}")
    commands.runs.clear()
    try:
        result = drills.leg(leg)
    except ClusterStateError as exc:
        return {"to": to, "skipped": str(exc)}
    reported(drills, reports, leg, result)
    switched = commands.last("switchover")
    figures: dict[str, Any] = {"to": to}
    figures.update(command_figures(*(switched or (0.0, None)), result, "switchover"))
    figures.update(leg_figures(result))
    return figures


def manual_runs(drills: Drills, commands: Commands, reports: Path | None) -> dict[str, Any]:
    """The manual engine's figures, under the top-level keys they always had."""
    nodes = {n.role: n.name for n in drills.reach.cluster.nodes}
    results: dict[str, Any] = {}
    results["failover_async"] = manual_failover(drills, commands, "asynchronous", reports)
    # Back to the inventory's layout, then a planned switchover away and back.
    results["switchover"] = [manual_switchover(drills, commands, nodes["primary"], reports),
                             manual_switchover(drills, commands, nodes["standby"], reports)]
    settle(drills)
    drills.pgcluster("switchover", "--to", nodes["primary"], "--yes")
    sync = json.dumps([nodes["standby"], nodes["primary"]])
    pyinfra(INVENTORY, "deploys/cluster.py", "--data", f"synchronous_standbys={sync}")
    results["failover_sync"] = manual_failover(drills, commands,
                                               "synchronous (FIRST 1 standby)", reports)
    return results


# --------------------------------------------------------------------- Patroni engine


def fault_args(kind: str, container: str, network: str) -> list[str]:
    """The docker command of a Patroni fault on the leader's container."""
    return {
        "stop": ["stop", "-t", "60", container],
        "kill": ["kill", container],
        "sync_kill": ["kill", container],
        "postgres_kill": ["exec", container, "sh", "-c", POSTMASTER_KILL],
        "partition": ["network", "disconnect", network, container],
    }[kind]


def reconnect(drills: Drills, old: str) -> dict[str, Any]:
    """The partitioned leader back on the lab network, at its own address (the other
    members and the certificates know it by it)."""
    lab, container = drills.reach.lab, drills.reach.containers[old]
    assert lab is not None
    address = lab.node(container).address
    run, err = docker("network", "connect", "--ip", address, lab.network, container,
                      timeout=90)
    figures: dict[str, Any] = {"return_command_exit": run.code}
    if not run.ok:
        # Docker 20.10 may leave the old interface in the container's namespace ("conflicts
        # with existing route"): the node is half back, without its published port. A
        # restart rebuilds its network; the figure then includes a crash recovery.
        figures["return_error"] = err[-300:]
        restarted, _ = docker("restart", "-t", "10", container, timeout=90)
        figures["return_restart_exit"] = restarted.code
    return figures


def patroni_fault(drills: Drills, commands: Commands, kind: str, who: Roles,
                  reports: Path | None) -> dict[str, Any]:
    reach, old = drills.reach, who.leader
    assert reach.lab is not None
    directory = (reports or Path("drills")) / "patroni" / kind
    runs: list[CommandRun] = []
    if kind == "switchover":
        leg = drills.switchover_leg(old, who.other, directory,
                                    f"switchover {old} -> {who.other}")
        shown = f"pgcluster switchover --to {who.other} --yes"
    else:
        args = fault_args(kind, reach.containers[old], reach.lab.network)
        shown = " ".join(["docker", *args])
        # The postmaster killed in place keeps the leader (the leg's target is the leader
        # itself); every other fault hands over to any other node (only one may be).
        leg = Leg("failover", old, old if kind == "postgres_kill" else None,
                  docker_fault(args, FAULT_TIMEOUT[kind], runs), directory, f"{kind}: {shown}")
    commands.runs.clear()
    result = drills.leg(leg)
    reported(drills, reports, leg, result)
    switched = commands.last("switchover")
    run = (switched[1] if switched else None) if kind == "switchover" else \
        (runs[-1] if runs else None)
    figures = patroni_figures(shown, result, old, who.readonly,
                              reach.node(who.readonly).published_port, run,
                              switchover=kind == "switchover")
    figures["readonly_promoted"] = (figures["readonly_promoted"]
                                    or drills.probe.is_primary(who.readonly) is True)
    new = result.new_primary
    returned = time.time()
    if kind in BROUGHT_BACK:
        problems = drills.bring_back(old, new, "patroni", result.events)
        figures["returned_node_streaming_s"] = rounded(
            result.events["rejoined"] - returned) if "rejoined" in result.events else None
        figures["return_problems"] = problems
    elif kind == "partition":
        figures.update(reconnect(drills, old))
        streams = None if new is None else drills.wait(
            lambda: old in (drills.probe.streaming(new) or set()), WAIT)
        figures["returned_node_streaming_s"] = (None if streams is None
                                                else rounded(streams - returned))
    # Timed from the node's return, or from the fault when nothing had to be brought back.
    start = returned if kind in (*BROUGHT_BACK, "partition") else result.events[FAULT]
    ready, _ = settle(drills)
    figures["healthy_again_s"] = None if ready is None else rounded(ready - start)
    return figures


def synchronous(drills: Drills, on: bool) -> bool:
    """Redeploy with synchronous_mode on (both promotable nodes may be the synchronous
    standby) or back to group_data's; True once Patroni shows it so."""
    promotable = [n.name for n in drills.reach.cluster.nodes if n.role != "readonly"]
    extra = ["--data", f"synchronous_standbys={json.dumps(promotable)}"] if on else []
    if pyinfra(INVENTORY, "deploys/cluster.py", *extra).returncode != 0:
        return False

    def shown() -> bool:
        try:
            members = drills.status().patroni or []
        except (PyinfraError, OSError):
            return False
        return any(m["role"] == "sync_standby" for m in members) == on

    return drills.wait(shown, 60) is not None


def patroni_runs(drills: Drills, commands: Commands,
                 reports: Path | None) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    for kind in PATRONI_FAULTS:
        if kind == "sync_kill" and not synchronous(drills, on=True):
            results[kind] = {"skipped": "synchronous_mode did not come on"}
            continue
        _, status = settle(drills)
        if status is None:
            # A fault on a cluster still recovering from the last one measures nothing.
            results[kind] = {"skipped": f"the cluster was not ready within {WAIT} s"}
            continue
        try:
            results[kind] = patroni_fault(drills, commands, kind, roles(drills, status),
                                          reports)
        except ClusterStateError as exc:  # the writer refused: nothing was done
            results[kind] = {"skipped": str(exc)}
        print(f"patroni {kind}: {json.dumps(results[kind])}", flush=True)
    synchronous(drills, on=False)
    return results


# ---------------------------------------------------------------------------- report


def table(results: Mapping[str, Any]) -> str:
    """One row per engine and fault: the figures the two engines share."""
    def cell(value: Any) -> str:
        return "-" if value is None else str(value)

    lines = [f"{'engine':<8} {'fault':<26} {'1st write s':>11} {'gap s':>7} {'lost':>5} "
             f"{'readonly s':>10} {'returned s':>10}"]

    def row(engine: str, fault: str, f: Mapping[str, Any], returned: str) -> None:
        if "skipped" in f:
            fault, f = f"{fault} (skipped)", {}
        lines.append(f"{engine:<8} {fault:<26} "
                     f"{cell(f.get('to_first_write_on_new_primary_s')):>11} "
                     f"{cell(f.get('write_gap_s')):>7} {cell(f.get('committed_rows_lost')):>5} "
                     f"{cell(f.get('to_readonly_streaming_from_new_primary_s')):>10} "
                     f"{cell(f.get(returned)):>10}")

    for key, label in (("failover_async", "failover (async)"),
                       ("failover_sync", "failover (sync)")):
        if key in results:
            row("manual", label, results[key], "rejoin_s")
    for f in results.get("switchover", []):
        row("manual", f"switchover to {f['to'].rsplit('-', 1)[-1]}", f, "-")
    for kind, f in results.get("patroni", {}).items():
        promoted = " RO PROMOTED" if f.get("readonly_promoted") else ""
        row("patroni", kind + promoted, f, "returned_node_streaming_s")
    lines += ["every figure from the fault (manual failover: the primary's container killed, "
              "then `pgcluster failover`; a switchover: the command, its checks included)",
              "returned: manual = `pgcluster rejoin`'s duration; patroni = from the node "
              "brought back (switchover: from the fault) to it streaming",
              "-: not measured, or not reached within the wait"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--engine", choices=("manual", "patroni", "both"), default="both",
                        help="the HA engine(s) to measure, each on a lab rebuilt for it")
    parser.add_argument("--keep", action="store_true", help="leave the last bench lab running")
    parser.add_argument("--report", metavar="DIR", type=Path,
                        help="also write each leg's drill report under DIR/<engine>/<fault>/")
    args = parser.parse_args(argv)
    engines = ("manual", "patroni") if args.engine == "both" else (args.engine,)
    # The inventory (inventory/docker.py) and the drill's own commands read the lab from
    # the environment: the bench's, never the seed's.
    os.environ.update({"PGCLUSTER_LAB": LAB, "PYINFRA_PROGRESS": "off"})

    results: dict[str, Any] = {"engines": list(engines)}
    if "manual" in engines:
        rebuild()
        commands = Commands()
        results.update(manual_runs(make_drills(commands), commands, args.report))
        results["goals"] = MANUAL_GOALS
        results["goals_met"] = manual_goals_met(results)
    if "patroni" in engines:
        rebuild("--data", "ha_engine=patroni")
        commands = Commands()
        results["patroni"] = patroni_runs(make_drills(commands), commands, args.report)
        results["patroni_goals"] = PATRONI_GOALS
        results["patroni_goals_met"] = patroni_goals_met(results["patroni"])
    if not args.keep:
        pgcluster("destroy", "--yes", check=False)

    save(RESULTS, "failover", results)
    print("\n" + table(results))
    print(f"\nsaved to {RESULTS.relative_to(REPO)}")


if __name__ == "__main__":
    main()
