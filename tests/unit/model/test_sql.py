"""SQL quoting of identifiers and literals."""

from __future__ import annotations

from pgcluster.model.sql import ident, is_plain_identifier, literal


def test_quoting() -> None:
    assert ident('we"ird') == '"we""ird"'
    assert literal("it's") == "'it''s'"
    assert is_plain_identifier("proyecto_db")
    assert not is_plain_identifier("Proyecto") and not is_plain_identifier("a;b")
