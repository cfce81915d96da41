"""bench/failover.py's own logic, without Docker: the drill's LegResults turned into the
JSON's figures, the goals met or not, when a fault may start, and the table."""

from __future__ import annotations

from dataclasses import asdict

import pytest

from bench import failover as bench
from pgcluster.control.drill import CommandRun, LegResult
from pgcluster.control.status import NodeStatus, Report
from pgcluster.model.drill import END, FAULT, PROMOTED, RECOVERED, Measurements, Verdict
from pgcluster.model.patroni import PatroniMember

T0 = 1_800_000_000.0
PRIMARY, STANDBY, READONLY = "pgbench-primary", "pgbench-standby", "pgbench-readonly"
PASSED = Verdict(True, [])


def measured(**changes) -> Measurements:
    figures = {"commits": 726, "lost": [], "longest_gap": 2.4567,
               "first_write_after_fault": 2.2612, "time_to_promoted": 1.904,
               "time_to_recovered": 5.2649, "rate": 99.8, "started_at": T0 - 3}
    return Measurements(**{**figures, **changes})


def leg(measurements: Measurements | None = None, *, verdict: Verdict = PASSED,
        new: str | None = STANDBY, acknowledged: list | None = None, read_back: bool = True,
        streaming: dict[str, float] | None = None) -> LegResult:
    events = {FAULT: T0, PROMOTED: T0 + 1.904, RECOVERED: T0 + 5.2649, END: T0 + 9}
    return LegResult(measurements or measured(), verdict, events, new, [],
                     acknowledged if acknowledged is not None else [(1, T0 - 3, "35432")],
                     30, read_back,
                     {READONLY: T0 + 5.2649} if streaming is None else streaming)


# ------------------------------------------------------------------ one leg's figures


def test_a_leg_s_figures_are_the_drill_s_measurements_under_the_bench_s_keys() -> None:
    assert bench.leg_figures(leg()) == {
        "to_first_write_on_new_primary_s": 2.26,
        "to_new_primary_s": 1.9,
        "to_replicas_streaming_s": 5.26,
        "write_gap_s": 2.457,
        "committed_rows": 726,
        "committed_rows_lost": 0,
        "writer_errors": 30,
        "drill_passed": True,
        "drill_reasons": [],
    }


def test_an_unknown_loss_is_none_never_zero_and_missing_moments_stay_none() -> None:
    result = leg(measured(lost=[5, 6], first_write_after_fault=None, time_to_recovered=None,
                          commits=1, longest_gap=0.0),
                 verdict=Verdict(False, ["no write"]), read_back=False)
    figures = bench.leg_figures(result)
    assert figures["committed_rows_lost"] is None  # not read back: lost is not known
    assert figures["to_first_write_on_new_primary_s"] is None
    assert figures["to_replicas_streaming_s"] is None
    assert figures["write_gap_s"] is None  # one commit: no gap to speak of
    assert (figures["drill_passed"], figures["drill_reasons"]) == (False, ["no write"])
    assert bench.leg_figures(leg(measured(lost=[5, 6])))["committed_rows_lost"] == 2
    # A failover's verdict (bringing the old primary back included) replaces the leg's.
    assert bench.leg_figures(leg(), Verdict(False, ["not rejoined"]))["drill_reasons"] == [
        "not rejoined"]


def test_a_manual_failover_s_entry_has_its_commands_and_the_read_only_replica() -> None:
    failover = (T0 + 1.5, CommandRun("pgcluster failover --yes", 0, 3.754))
    rejoin = (T0 + 20, CommandRun("pgcluster rejoin pgbench-primary --yes", 0, 8.571))
    figures = bench.failover_figures("asynchronous", "failover of pgbench-primary", leg(),
                                     Verdict(True, []), READONLY, failover, rejoin)
    assert figures["replication"] == "asynchronous"
    assert figures["failover_command_s"] == 3.75 and figures["command_exit"] == 0
    assert figures["command_started_after_fault_s"] == 1.5
    assert figures["to_readonly_streaming_from_new_primary_s"] == 5.26
    assert (figures["rejoin_s"], figures["rejoin_exit"]) == (8.57, 0)
    assert figures["new_primary"] == STANDBY
    assert figures["to_first_write_on_new_primary_s"] == 2.26
    failed = (T0 + 20, CommandRun("pgcluster rejoin pgbench-primary --yes", 1, 2.0))
    none = bench.failover_figures("asynchronous", "t", leg(streaming={}), Verdict(True, []),
                                  READONLY, None, failed)
    assert none["failover_command_s"] is None and none["command_exit"] is None
    assert none["to_readonly_streaming_from_new_primary_s"] is None
    assert (none["rejoin_s"], none["rejoin_exit"]) == (None, 1)


def test_a_patroni_fault_s_entry() -> None:
    kill = CommandRun("docker kill pgbench-primary", 0, 0.254)
    figures = bench.patroni_figures("docker kill pgbench-primary", leg(), PRIMARY, READONLY,
                                    35434, kill, switchover=False)
    assert figures["fault"] == "docker kill pgbench-primary"
    assert (figures["leader_before"], figures["leader_after"]) == (PRIMARY, STANDBY)
    assert (figures["fault_command_s"], figures["fault_command_exit"]) == (0.25, 0)
    assert figures["to_readonly_streaming_from_new_primary_s"] == 5.26
    assert figures["readonly_promoted"] is False
    assert figures["returned_node_streaming_s"] is None  # set once the node is back
    # A switchover's old leader follows by itself: timed from the fault, as the drill saw it.
    switched = leg(streaming={READONLY: T0 + 4.0, PRIMARY: T0 + 6.974})
    figures = bench.patroni_figures("pgcluster switchover", switched, PRIMARY, READONLY,
                                    35434, None, switchover=True)
    assert figures["returned_node_streaming_s"] == 6.97
    assert figures["to_readonly_streaming_from_new_primary_s"] == 4.0
    assert figures["fault_command_s"] is None and figures["fault_command_exit"] is None
    timed_out = CommandRun("docker stop -t 60 x", None, 90.0)
    assert bench.patroni_figures("x", leg(), PRIMARY, READONLY, 35434, timed_out,
                                 switchover=False)["fault_command_s"] is None


def test_the_read_only_replica_promoted_is_seen_by_the_drill_or_by_the_writer() -> None:
    assert not bench.readonly_promoted(leg(), READONLY, 35434)
    assert bench.readonly_promoted(leg(new=READONLY), READONLY, 35434)
    acked = leg(acknowledged=[(1, T0, "35432"), (2, T0 + 3, "35434")])
    assert bench.readonly_promoted(acked, READONLY, 35434)
    assert not bench.readonly_promoted(acked, READONLY, None)


# --------------------------------------------------------------------------- goals


PATRONI = {
    "stop": {"to_first_write_on_new_primary_s": 1.83, "committed_rows_lost": 0},
    "kill": {"to_first_write_on_new_primary_s": 20.5, "committed_rows_lost": 0},
    "partition": {"to_first_write_on_new_primary_s": 18.36, "committed_rows_lost": 0},
    "switchover": {"to_first_write_on_new_primary_s": 4.87, "committed_rows_lost": 0},
    "sync_kill": {"to_first_write_on_new_primary_s": 21.37, "committed_rows_lost": 0},
}


def test_the_patroni_goals_are_met_missed_or_unknown() -> None:
    assert bench.patroni_goals_met(PATRONI) == dict.fromkeys(bench.PATRONI_GOALS, True)
    slow = {**PATRONI, "switchover": {"to_first_write_on_new_primary_s": 5.01,
                                      "committed_rows_lost": 1}}
    assert bench.patroni_goals_met(slow) == {
        "graceful_stop_and_switchover_first_write_s": False,
        "kill_and_partition_first_write_s": True, "switchover_lost": False,
        "sync_kill_lost": True}
    skipped = {**PATRONI, "partition": {"skipped": "not ready"},
               "sync_kill": {"committed_rows_lost": None}}
    met = bench.patroni_goals_met(skipped)
    assert met["kill_and_partition_first_write_s"] is None
    assert met["sync_kill_lost"] is None


def test_the_manual_goals_need_both_failovers() -> None:
    ok = {"to_first_write_on_new_primary_s": 2.3, "to_readonly_streaming_from_new_primary_s": 5}
    results = {"failover_async": ok, "failover_sync": ok}
    assert bench.manual_goals_met(results) == dict.fromkeys(bench.MANUAL_GOALS, True)
    late = {**ok, "to_readonly_streaming_from_new_primary_s": 15.5}
    assert bench.manual_goals_met({**results, "failover_sync": late}) == {
        "to_first_write_on_new_primary_s": True,
        "to_readonly_streaming_from_new_primary_s": False}
    assert bench.manual_goals_met({"failover_async": ok}) == dict.fromkeys(
        bench.MANUAL_GOALS, None)


# --------------------------------------------------------- when a fault may start


def node(name: str, role: str, inventory_role: str) -> NodeStatus:
    return NodeStatus(name=name, inventory_role=inventory_role, address="172.28.0.10",
                      port=5432, published_port=None, reachable=True, running=True, role=role)


def member(name: str, role: str = "replica", state: str = "streaming",
           timeline: int = 2) -> dict:
    return asdict(PatroniMember(name, "172.28.0.10", None, role, state, timeline, 0, True,
                                tags={"nofailover": True} if name == READONLY else {}))


def report(streaming: tuple[str, ...] = (STANDBY, READONLY),
           patroni: list[dict] | None = None) -> Report:
    nodes = [node(PRIMARY, "PRIMARY", "primary"), node(STANDBY, "STANDBY", "standby"),
             node(READONLY, "READONLY", "readonly")]
    return Report(healthy=False, issues=["the last full backup is old"], primary=PRIMARY,
                  nodes=nodes, replication=[{"application_name": n, "state": "streaming"}
                                            for n in streaming],
                  archiver=None, last_backup=None, collected_at=0.0,
                  engine="manual" if patroni is None else "patroni", patroni=patroni)


def test_a_fault_starts_from_the_drill_s_ready_state_not_from_status_healthy() -> None:
    assert bench.cluster_problems(report(), 3) == []  # an unrelated issue does not matter
    assert bench.cluster_problems(report(streaming=(STANDBY,)), 3) == [
        f"{READONLY} does not stream from {PRIMARY} (readonly)"]


def test_under_patroni_every_node_is_a_running_member_on_the_leader_s_timeline() -> None:
    members = [member(PRIMARY, "leader", "running"), member(STANDBY), member(READONLY)]
    assert bench.cluster_problems(report(patroni=members), 3) == []
    assert bench.cluster_problems(report(patroni=members[:2]), 3) == [
        "2 Patroni members, not 3"]
    behind = [*members[:2], member(READONLY, timeline=1)]
    assert any("timeline 1" in p for p in bench.cluster_problems(report(patroni=behind), 3))
    stopped = [members[0], member(STANDBY, state="stopped"), members[2]]
    assert bench.cluster_problems(report(patroni=stopped), 3)


# ------------------------------------------------------------ commands and faults


def test_the_drill_s_commands_are_kept_with_when_they_started(monkeypatch) -> None:
    monkeypatch.setattr(bench.time, "time", lambda: T0)
    seen = []

    def run(inventory: str, *argv: str, timeout: float, verbose: bool) -> CommandRun:
        seen.append((inventory, argv, timeout, verbose))
        return CommandRun("pgcluster " + " ".join(argv), 0 if argv[0] == "failover" else 1, 2)

    commands = bench.Commands(run=run)
    assert commands("inventory/docker.py", "failover", "--yes", timeout=900).ok
    commands("inventory/docker.py", "rejoin", "x", "--yes", timeout=900, verbose=True)
    assert seen[1] == ("inventory/docker.py", ("rejoin", "x", "--yes"), 900, True)
    assert commands.last("failover") == (T0, CommandRun("pgcluster failover --yes", 0, 2))
    assert commands.last("rejoin")[1].code == 1
    assert commands.last("switchover") is None


def test_a_docker_fault_is_a_leg_action_that_says_what_went_wrong(monkeypatch) -> None:
    answers = iter([(CommandRun("docker kill c", 0, 0.2), ""),
                    (CommandRun("docker kill c", 1, 0.1), "No such container: c"),
                    (CommandRun("docker kill c", None, 60.0), "timed out")])
    monkeypatch.setattr(bench, "docker", lambda *args, timeout: next(answers))
    runs: list[CommandRun] = []
    act = bench.docker_fault(["kill", "c"], 60, runs)
    assert act() is None
    assert act() == "`docker kill c` failed (exit 1): No such container: c"
    assert act() == "`docker kill c` did not end within 60 s"
    assert [r.code for r in runs] == [0, 1, None]
    assert bench.fault_args("partition", "c", "net") == ["network", "disconnect", "net", "c"]
    assert bench.fault_args("postgres_kill", "c", "net")[:3] == ["exec", "c", "sh"]


# --------------------------------------------------------------------------- table


def test_the_table_has_a_row_per_fault_skipped_ones_included() -> None:
    results = {
        "failover_async": {"to_first_write_on_new_primary_s": 2.26, "write_gap_s": 2.457,
                           "committed_rows_lost": 0,
                           "to_readonly_streaming_from_new_primary_s": 5.26, "rejoin_s": 8.57},
        "failover_sync": {"replication": "synchronous", "skipped": "not ready"},
        "switchover": [{"to": PRIMARY, "write_gap_s": 0.8, "committed_rows_lost": 0}],
        "patroni": {"kill": {**PATRONI["kill"], "readonly_promoted": True,
                             "returned_node_streaming_s": 1.89},
                    "stop": {"skipped": "not ready"}},
    }
    lines = bench.table(results).splitlines()
    assert lines[1].split() == ["manual", "failover", "(async)", "2.26", "2.457", "0", "5.26",
                                "8.57"]
    assert lines[2].split()[:4] == ["manual", "failover", "(sync)", "(skipped)"]
    assert lines[3].split() == ["manual", "switchover", "to", "primary", "-", "0.8", "0", "-",
                                "-"]
    assert lines[4].split() == ["patroni", "kill", "RO", "PROMOTED", "20.5", "-", "0", "-",
                                "1.89"]
    assert lines[5].split() == ["patroni", "stop", "(skipped)", "-", "-", "-", "-", "-"]


@pytest.mark.parametrize("argv", [["--help"]])
def test_the_command_line(argv, capsys) -> None:
    with pytest.raises(SystemExit) as caught:
        bench.main(argv)
    assert caught.value.code == 0
    out = capsys.readouterr().out
    assert "--engine {manual,patroni,both}" in out and "--report DIR" in out
