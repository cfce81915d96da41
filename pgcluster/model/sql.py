"""Quoting for the few SQL strings pgcluster builds (names come from validated data)."""

from __future__ import annotations

import re


def ident(name: str) -> str:
    """A quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


# PostgreSQL's reserved key words (and those reserved as type or function names): a name
# that is one of them must be quoted even when it is plain.
RESERVED = frozenset({
    "all", "analyse", "analyze", "and", "any", "array", "as", "asc", "asymmetric",
    "authorization", "binary", "both", "case", "cast", "check", "collate", "collation",
    "column", "concurrently", "constraint", "create", "cross", "current_catalog",
    "current_date", "current_role", "current_schema", "current_time", "current_timestamp",
    "current_user", "default", "deferrable", "desc", "distinct", "do", "else", "end",
    "except", "false", "fetch", "for", "foreign", "freeze", "from", "full", "grant",
    "group", "having", "ilike", "in", "initially", "inner", "intersect", "into", "is",
    "isnull", "join", "lateral", "leading", "left", "like", "limit", "localtime",
    "localtimestamp", "natural", "not", "notnull", "null", "offset", "on", "only", "or",
    "order", "outer", "overlaps", "placing", "primary", "references", "returning", "right",
    "select", "session_user", "similar", "some", "symmetric", "system_user", "table",
    "tablesample", "then", "to", "trailing", "true", "union", "unique", "user", "using",
    "variadic", "verbose", "when", "where", "window", "with",
})


def name(value: str) -> str:
    """An identifier as SQL reads it best: bare when it is a plain lower-case name that is
    not a reserved word, quoted (ident) otherwise."""
    if is_plain_identifier(value) and value not in RESERVED:
        return value
    return ident(value)


def literal(value: str) -> str:
    """A quoted SQL string literal (standard_conforming_strings is always on)."""
    return "'" + value.replace("'", "''") + "'"


def is_plain_identifier(name: str) -> bool:
    """A lower-case name that needs no quoting anywhere (psql, pg_hba.conf, templates)."""
    return bool(re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name))
