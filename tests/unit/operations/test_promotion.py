"""The operations that change who is primary, facts in and commands out."""

from __future__ import annotations


def test_synchronous_names_parsing() -> None:
    from pgcluster.operations.promotion import synchronous_names

    assert synchronous_names("") == []
    assert synchronous_names('FIRST 1 ("pg-standby", "pg-primary")') == ["pg-standby",
                                                                           "pg-primary"]
    assert synchronous_names("ANY 1 (a, b)") == ["a", "b"]
    assert synchronous_names("a, b") == ["a", "b"]
