"""Waiting for the replicas: nothing to run when they stream, a bounded loop otherwise that
says on a timeout who is missing and what the primary does see."""

from __future__ import annotations

import pytest

from pgcluster.facts.postgres import PgQuery
from pgcluster.operations import postgres
from tests.unit.fakes import FakeHost, run_operation, text

STREAMING = [["db2", "streaming"], ["db3", "streaming"]]


def test_streaming_replicas_need_no_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    on = FakeHost(facts={PgQuery: STREAMING})
    assert run_operation(monkeypatch, postgres, on, postgres.wait_for_replicas,
                         application_names=["db2", "db3"]) == []
    assert on.noops == ["db2, db3 stream"]


def test_a_missing_replica_is_waited_for_and_a_timeout_explained(
        monkeypatch: pytest.MonkeyPatch) -> None:
    on = FakeHost(facts={PgQuery: [["db2", "streaming"], ["db3", "catchup"]]})
    loop = text(run_operation(monkeypatch, postgres, on, postgres.wait_for_replicas,
                              application_names=["db2", "db3"], timeout=9,
                              explain="patronictl list"))
    assert "seq 9" in loop and 'not streaming after 9s:$missing' in loop
    # after the timeout: what pg_stat_replication shows, then the engine's own view
    after = loop.split("not streaming after 9s", 1)[1]
    assert "client_addr, state from pg_stat_replication" in after
    assert after.index("pg_stat_replication") < after.index("patronictl list >&2")
    plain = text(run_operation(monkeypatch, postgres, on, postgres.wait_for_replicas,
                               application_names=["db3"]))
    assert "patronictl" not in plain and "seq 180" in plain
