"""The PathStates fact reads every kind of path in one command."""

from __future__ import annotations

from pgcluster.facts.files import PathState, PathStates


def test_path_states_fact_reads_every_kind() -> None:
    fact = PathStates()
    assert fact.process(["f postgres postgres 600 " + "a" * 40, "d root root 755", "o", "-"]
                        ) == [PathState("f", "postgres", "postgres", "600", "a" * 40),
                              PathState("d", "root", "root", "755"), PathState("o"),
                              PathState("-")]
    assert "'/a b'" in fact.command(["/a b", "/c"])
