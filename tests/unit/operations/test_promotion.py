"""The operations that change who is primary, facts in and commands out (as pyinfra tests
its own operations): what each yields on a node in each state, and what it refuses."""

from __future__ import annotations

import pytest
from pyinfra.api.exceptions import OperationError

from pgcluster.facts.postgres import PgNode, PgQuery
from pgcluster.model.layout import Layout
from pgcluster.operations import promotion
from pgcluster.operations.promotion import synchronous_names
from tests.unit.fakes import FakeHost, FakeInventory, FakeState, run_operation, sql, text

LAYOUT = Layout(15, "main")
PRIMARY = {"running": True, "in_recovery": False, "data": True}
STANDBY = {"running": True, "in_recovery": True, "data": True,
           "primary_conninfo": "host=10.0.0.1 port=5432 user=replicator", "timeline": "1"}
STOPPED = {"running": False, "in_recovery": False, "data": True, "checkpoint_lsn": "0/5000028"}


def hosts(executing: bool = False, **states: dict) -> dict[str, FakeHost]:
    """Fake hosts sharing one inventory and state: name -> its PgNode fact."""
    state, inventory = FakeState(is_executing=executing), FakeInventory()
    return {name: FakeHost(name, {PgNode: live}, state=state, inventory=inventory)
            for name, live in states.items()}


def run(monkeypatch: pytest.MonkeyPatch, on: FakeHost, op, **kwargs) -> list:
    return run_operation(monkeypatch, promotion, on, op, layout=LAYOUT, **kwargs)


def test_stop_and_start_act_only_when_needed(monkeypatch: pytest.MonkeyPatch) -> None:
    h = hosts(db1=PRIMARY, db2=STOPPED)
    assert text(run(monkeypatch, h["db1"], promotion.stop_server)) == \
        "systemctl stop postgresql@15-main"
    assert run(monkeypatch, h["db2"], promotion.stop_server) == []
    assert h["db2"].noops == ["postgresql@15-main is not running"]
    assert text(run(monkeypatch, h["db2"], promotion.start_server)) == \
        "systemctl start postgresql@15-main"
    assert run(monkeypatch, h["db1"], promotion.start_server) == []


def test_promote_a_standby_then_checkpoint_and_forget_its_upstream(
        monkeypatch: pytest.MonkeyPatch) -> None:
    h = hosts(db2=STANDBY)
    statements = sql(run(monkeypatch, h["db2"], promotion.promote, timeout=30))
    assert statements == ["select pg_promote(true, 30)", "CHECKPOINT",
                          "ALTER SYSTEM RESET primary_conninfo",
                          "ALTER SYSTEM RESET primary_slot_name", "select pg_reload_conf()"]
    assert run(monkeypatch, hosts(db2=PRIMARY)["db2"], promotion.promote) == []
    with pytest.raises(OperationError, match="not running"):
        run(monkeypatch, hosts(db2=STOPPED)["db2"], promotion.promote)


def test_no_promotion_while_the_fenced_primary_still_runs(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Planning: the old primary runs, of course (the fence comes first in the same run).
    planning = hosts(db1=PRIMARY, db2=STANDBY)
    assert run(monkeypatch, planning["db2"], promotion.promote, stopped_host="db1")
    # Executing: its stop failed or did nothing -> this step fails, nothing is promoted.
    executing = hosts(executing=True, db1=PRIMARY, db2=STANDBY)
    [refused] = run(monkeypatch, executing["db2"], promotion.promote, stopped_host="db1")
    assert "db1 is still running" in refused and "not promoted" in refused
    assert refused.endswith("exit 1") and "pg_promote" not in refused
    fenced = hosts(executing=True, db1=STOPPED, db2=STANDBY)
    assert "pg_promote" in text(run(monkeypatch, fenced["db2"], promotion.promote,
                                    stopped_host="db1"))


def test_a_switchover_waits_for_the_stopped_primarys_last_wal(
        monkeypatch: pytest.MonkeyPatch) -> None:
    planning = hosts(db1=PRIMARY, db2=STANDBY)
    assert run(monkeypatch, planning["db2"], promotion.wait_received, lsn_host="db1") == []
    still_running = hosts(executing=True, db1=PRIMARY, db2=STANDBY)
    [refused] = run(monkeypatch, still_running["db2"], promotion.wait_received, lsn_host="db1")
    assert "still running" in refused and refused.endswith("exit 1")
    stopped = hosts(executing=True, db1=STOPPED, db2=STANDBY)
    out = run(monkeypatch, stopped["db2"], promotion.wait_received, lsn_host="db1", timeout=5)
    assert sql(out) == ["select pg_wal_lsn_diff(pg_last_wal_receive_lsn(), '0/5000028') > 0"]
    assert "seq 10" in text(out)
    unreadable = hosts(executing=True, db1={**STOPPED, "checkpoint_lsn": None}, db2=STANDBY)
    [refused] = run(monkeypatch, unreadable["db2"], promotion.wait_received, lsn_host="db1")
    assert "shutdown checkpoint" in refused and refused.endswith("exit 1")


def test_rejoin_runs_the_script_with_the_primarys_current_timeline(
        monkeypatch: pytest.MonkeyPatch) -> None:
    h = hosts(db1={**STOPPED, "running": False}, db2={**PRIMARY, "timeline": "2"})
    out = text(run(monkeypatch, h["db1"], promotion.rejoin, conninfo="host=10.0.0.2 port=5432",
                   slot="db1", rewind_conninfo="host=10.0.0.2 dbname=postgres",
                   primary_host="db2"))
    assert out.startswith("/usr/local/lib/pgcluster/rejoin-replica 'host=10.0.0.2 port=5432'")
    assert out.endswith(" db1 'host=10.0.0.2 dbname=postgres' 2")
    following = hosts(db1={**STANDBY, "primary_conninfo": "host=10.0.0.2"}, db2=PRIMARY)
    assert run(monkeypatch, following["db1"], promotion.rejoin, conninfo="host=10.0.0.2",
               slot="db1", rewind_conninfo="", primary_host="db2") == []


@pytest.mark.parametrize(("rows", "followers", "expected"), [
    ([["f", 'FIRST 1 ("db2")']], ["db3"], "ALTER SYSTEM SET synchronous_standby_names = ''"),
    ([["f", 'FIRST 1 ("db2")'], ["t", ""]], ["db2"],
     "ALTER SYSTEM RESET synchronous_standby_names"),
    ([["f", 'FIRST 1 ("db2")']], ["db2"], None),
    ([["f", ""]], [], None),
])
def test_synchronous_replication_is_suspended_and_lifted_on_live_settings(
        monkeypatch: pytest.MonkeyPatch, rows: list, followers: list[str],
        expected: str | None) -> None:
    node = FakeHost("db1", {PgQuery: rows})
    out = sql(run_operation(monkeypatch, promotion, node, promotion.synchronous_override,
                            followers=followers))
    assert out == ([expected, "select pg_reload_conf()"] if expected else [])


def test_synchronous_names_parsing() -> None:
    assert synchronous_names("") == []
    assert synchronous_names('FIRST 1 ("pg-standby", "pg-primary")') == ["pg-standby",
                                                                           "pg-primary"]
    assert synchronous_names("ANY 1 (a, b)") == ["a", "b"]
    assert synchronous_names("a, b") == ["a", "b"]


def test_a_refusal_when_executing_is_a_failed_step_not_a_crash_of_the_run(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """pyinfra turns an exception raised while executing into the end of the whole run,
    without its failure handling (the operation lock would stay): refusals fail a step."""
    planning = hosts(db2={**STANDBY, "running": False})
    with pytest.raises(OperationError, match="not running"):
        run(monkeypatch, planning["db2"], promotion.promote)
    executing = hosts(executing=True, db2={**STANDBY, "running": False})
    [command] = run(monkeypatch, executing["db2"], promotion.promote)
    assert command.endswith("; exit 1") and "not running there" in command
