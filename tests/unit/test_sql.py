from __future__ import annotations

from pgcluster.model import slot_name
from pgcluster.sql import conninfo_value, ident, is_plain_identifier, literal


def test_conninfo_value() -> None:
    conninfo = ("user=replicator passfile='/var/lib/postgresql/.pgpass' host=172.20.0.10 "
                "port=5432 application_name='postgresql-standby' options='-c x=\\'y\\''")
    assert conninfo_value(conninfo, "host") == "172.20.0.10"
    assert conninfo_value(conninfo, "application_name") == "postgresql-standby"
    assert conninfo_value(conninfo, "passfile") == "/var/lib/postgresql/.pgpass"
    assert conninfo_value(conninfo, "options") == "-c x='y'"
    assert conninfo_value(conninfo, "sslmode") is None
    assert conninfo_value(None, "host") is None


def test_quoting() -> None:
    assert ident('we"ird') == '"we""ird"'
    assert literal("it's") == "'it''s'"
    assert is_plain_identifier("proyecto_db")
    assert not is_plain_identifier("Proyecto") and not is_plain_identifier("a;b")


def test_slot_names_from_node_names() -> None:
    assert slot_name("postgresql-standby") == "postgresql_standby"
    assert slot_name("DB2.example.net") == "db2_example_net"
