"""Roles: their verifier travels in a private file, never on a command line; an unchanged
role is no change. Waiting for the replicas: nothing to run when they stream, a bounded
loop otherwise that says on a timeout who is missing and what the primary does see."""

from __future__ import annotations

import pytest
from pyinfra.api import FileUploadCommand

from pgcluster.control import scram
from pgcluster.facts.postgres import PgQuery
from pgcluster.model.layout import UPLOAD_DIR
from pgcluster.operations import postgres as operations
from tests.unit.fakes import FakeHost, run_operation, text


def commands(monkeypatch: pytest.MonkeyPatch, facts: dict, op, **kwargs) -> list:
    return run_operation(monkeypatch, operations, FakeHost(facts=facts), op, **kwargs)


@pytest.mark.parametrize("existing", [None, "SCRAM-SHA-256$4096:c2FsdA==$eA==:eQ=="])
def test_role_sends_its_verifier_from_a_private_file(monkeypatch: pytest.MonkeyPatch,
                                                     existing: str | None) -> None:
    rows = [] if existing is None else [["f", "f", "t", "f", "f", "f", existing]]
    cmds = commands(monkeypatch, {PgQuery: rows}, operations.role, role="app",
                    password="pa55word")
    uploads = [c for c in cmds if isinstance(c, FileUploadCommand)]
    assert len(uploads) == 1 and uploads[0].dest == f"{UPLOAD_DIR}/role-app.sql"
    sql = uploads[0].src.getvalue()
    assert sql.startswith("SET log_statement = 'none';")
    assert "SET log_min_error_statement = 'panic';" in sql
    verifier = sql.split("PASSWORD '")[1].split("'")[0]
    assert scram.matches(verifier, "pa55word")
    for command in cmds:
        if isinstance(command, str):
            assert "pa55word" not in command and "SCRAM-SHA-256" not in command
    assert cmds[-1].endswith(f"< {UPLOAD_DIR}/role-app.sql; rc=$?; "
                             f"rm -f {UPLOAD_DIR}/role-app.sql; exit $rc")


def test_role_with_the_right_password_and_attributes_changes_nothing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    rows = [["f", "t", "t", "f", "f", "f", scram.verifier("replica-pw")]]
    assert commands(monkeypatch, {PgQuery: rows}, operations.role, role="replicator",
                    password="replica-pw", replication=True) == []


def test_role_drops_createdb_createrole_bypassrls(monkeypatch: pytest.MonkeyPatch) -> None:
    rows = [["f", "f", "t", "t", "t", "t", scram.verifier("pw")]]
    cmds = commands(monkeypatch, {PgQuery: rows}, operations.role, role="app", password="pw")
    sql = next(c for c in cmds if isinstance(c, FileUploadCommand)).src.getvalue()
    assert 'ALTER ROLE "app" NOCREATEDB NOCREATEROLE NOBYPASSRLS;' in sql


STREAMING = [["db2", "streaming"], ["db3", "streaming"]]


def test_streaming_replicas_need_no_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    on = FakeHost(facts={PgQuery: STREAMING})
    assert run_operation(monkeypatch, operations, on, operations.wait_for_replicas,
                         application_names=["db2", "db3"]) == []
    assert on.noops == ["db2, db3 stream"]


def test_a_missing_replica_is_waited_for_and_a_timeout_explained(
        monkeypatch: pytest.MonkeyPatch) -> None:
    on = FakeHost(facts={PgQuery: [["db2", "streaming"], ["db3", "catchup"]]})
    loop = text(run_operation(monkeypatch, operations, on, operations.wait_for_replicas,
                              application_names=["db2", "db3"], timeout=9,
                              explain="patronictl list"))
    assert "seq 9" in loop and 'not streaming after 9s:$missing' in loop
    # after the timeout: what pg_stat_replication shows, then the engine's own view
    after = loop.split("not streaming after 9s", 1)[1]
    assert "client_addr, state from pg_stat_replication" in after
    assert after.index("pg_stat_replication") < after.index("patronictl list >&2")
    plain = text(run_operation(monkeypatch, operations, on, operations.wait_for_replicas,
                               application_names=["db3"]))
    assert "patronictl" not in plain and "seq 180" in plain
