"""Quoting for the few SQL strings pgcluster builds (names come from validated data)."""

from __future__ import annotations

import re


def ident(name: str) -> str:
    """A quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def literal(value: str) -> str:
    """A quoted SQL string literal (standard_conforming_strings is always on)."""
    return "'" + value.replace("'", "''") + "'"


def is_plain_identifier(name: str) -> bool:
    """A lower-case name that needs no quoting anywhere (psql, pg_hba.conf, templates)."""
    return bool(re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name))
