"""The PgNode fact read back from what its command prints (lines of key=value)."""

from __future__ import annotations

from pgcluster.facts.postgres import _NODE_SQL, PgNode
from pgcluster.model.failover import hears_from

STANDBY_OUTPUT = """installed=1
configured=1
data=1
data_dir_nonempty=1
standby_signal=1
timeline=1
running=1
in_recovery=1
receiver_status=streaming
sender_host=10.0.0.1
receiver_silence=13.412345
receiver_timeout_ms=15000
receive_lsn=0/40A00D8
replay_lsn=0/40A00D8""".splitlines()


def test_every_key_the_query_prints_is_kept() -> None:
    """A key the query prints but the fact drops reads as unknown everywhere (a failover
    took a silent stream for a live one that way)."""
    state = PgNode().process(STANDBY_OUTPUT)
    printed = {part.split("'")[1].split("=")[0] for part in _NODE_SQL.split("select ")[1:]}
    assert len(printed) > 15 and printed <= set(state), printed - set(state)
    assert state["receiver_silence"] == "13.412345" and state["receiver_timeout_ms"] == "15000"


def test_a_stream_silent_past_the_ping_is_no_proof_of_life() -> None:
    state = PgNode().process(STANDBY_OUTPUT)
    assert state["running"] and state["in_recovery"]
    assert hears_from(state, "10.0.0.1") is False
    fresh = PgNode().process([*STANDBY_OUTPUT, "receiver_silence=2.0"])
    assert hears_from(fresh, "10.0.0.1") is True
