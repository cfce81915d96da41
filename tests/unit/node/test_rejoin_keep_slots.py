"""rejoin-replica keeps the slots of its cascading replicas (KEEP_SLOTS) when it drops the
inactive ones left from a time the node was the primary; the rejoin operation passes them."""

from __future__ import annotations

import pytest

from pgcluster.facts.postgres import PgNode
from pgcluster.model.layout import Layout
from pgcluster.operations import promotion
from tests.unit.fakes import FakeHost, FakeInventory, FakeState, run_operation, text
from tests.unit.node.conftest import Call, FakeNode
from tests.unit.node.test_rejoin_replica import CONNINFO, REWIND, SLOT, streams

DROP = "select pg_drop_replication_slot(slot_name) from pg_replication_slots where not active"


def the_drop(node: FakeNode) -> Call:
    drops = [c for c in node.queries() if (c.input or "").startswith(DROP)]
    assert len(drops) == 1, [c.input for c in node.queries()]
    return drops[0]


def variables(call: Call) -> list[str]:
    return [call.args[i + 1] for i, arg in enumerate(call.args) if arg == "-v"]


def re_pointed(node: FakeNode, env: dict[str, str] | None = None) -> Call:
    node.data_dir(standby=True)
    node.running(primary=False)
    streams(node)
    result = rejoin_with(node, env)
    assert result.returncode == 0, result.stderr
    return the_drop(node)


def rejoin_with(node: FakeNode, env: dict[str, str] | None):
    return node.run("rejoin-replica", CONNINFO, SLOT, REWIND, "2", env=env)


def test_the_slots_of_its_cascade_are_kept(node: FakeNode) -> None:
    drop = re_pointed(node, env={"KEEP_SLOTS": "db4 db_far"})
    assert "keep=db4 db_far" in variables(drop)
    # The names go in as a psql variable, quoted by psql, and are split there.
    assert drop.input == (f"{DROP} and slot_name <> all(string_to_array(:'keep', ' '))")
    assert drop.user == "postgres"


def test_without_keep_slots_every_inactive_slot_goes(node: FakeNode) -> None:
    drop = re_pointed(node)
    assert "keep=" in variables(drop)  # empty: string_to_array gives {}, <> all({}) holds


def test_a_rewound_node_keeps_them_too(node: FakeNode) -> None:
    node.data_dir()
    streams(node, after="rewound")
    node.fake("pg_rewind", ': >"$FAKE_STATE/rewound"; echo "pg_rewind: Done!" >&2')
    result = rejoin_with(node, {"KEEP_SLOTS": "db5"})
    assert result.returncode == 0, result.stderr
    assert "keep=db5" in variables(the_drop(node))


# ------------------------------------------------------------------ the operation

def hosts(**states: dict) -> dict[str, FakeHost]:
    state, inventory = FakeState(), FakeInventory()
    return {name: FakeHost(name, {PgNode: live}, state=state, inventory=inventory)
            for name, live in states.items()}


def test_the_rejoin_operation_passes_keep_slots(monkeypatch: pytest.MonkeyPatch) -> None:
    h = hosts(db3={"running": False, "in_recovery": False, "data": True},
              db2={"running": True, "in_recovery": False, "data": True, "timeline": "2"})
    kwargs = {"layout": Layout(15, "main"), "conninfo": "host=10.0.0.2 port=5432",
              "slot": "db3", "rewind_conninfo": "host=10.0.0.2 dbname=postgres",
              "primary_host": "db2"}
    out = text(run_operation(monkeypatch, promotion, h["db3"], promotion.rejoin,
                             keep_slots=("db5", "db_far"), **kwargs))
    assert out.startswith("KEEP_SLOTS='db5 db_far' /usr/local/lib/pgcluster/rejoin-replica ")
    one = text(run_operation(monkeypatch, promotion, h["db3"], promotion.rejoin,
                             keep_slots=("db5",), **kwargs))
    assert one.startswith("KEEP_SLOTS=db5 /usr/local/lib/pgcluster/rejoin-replica ")
    none = text(run_operation(monkeypatch, promotion, h["db3"], promotion.rejoin, **kwargs))
    assert none.startswith("/usr/local/lib/pgcluster/rejoin-replica ")
