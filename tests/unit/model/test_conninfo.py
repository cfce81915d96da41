"""libpq connection strings: quoting, reading values, primary_conninfo and pg_rewind's
source over verified TLS."""

from __future__ import annotations

from pgcluster.model.conninfo import primary_conninfo, rewind_conninfo, ssl_conninfo
from pgcluster.model.conninfo import quote as conninfo_quote
from pgcluster.model.conninfo import value as conninfo_value
from tests.unit.helpers import ALL, SECRETS, cluster


def test_primary_conninfo_names_the_replica_and_uses_the_password_file() -> None:
    c = cluster()
    text = primary_conninfo(c.node("db1"), c.node("db2"), {**ALL, **SECRETS})
    assert text == ("host=10.0.0.1 port=5432 user=replicator "
                    "passfile=/var/lib/postgresql/.pgpass application_name=db2 connect_timeout=5"
                    " sslmode=verify-full sslrootcert=/etc/postgresql/15/main/tls/ca.crt"
                    " channel_binding=require")
    assert "s3cret" not in text


def test_rewind_conninfo_uses_the_rewind_role_on_database_postgres() -> None:
    c = cluster()
    text = rewind_conninfo(c.node("db2"), {**ALL, **SECRETS})
    assert "user=rewinder" in text and "dbname=postgres" in text and "host=10.0.0.2" in text


def test_conninfo_quoting() -> None:
    assert conninfo_quote("plain") == "plain"
    assert conninfo_quote("two words") == "'two words'"
    assert conninfo_quote("it's") == "'it\\'s'"


def test_conninfo_value() -> None:
    conninfo = ("user=replicator passfile='/var/lib/postgresql/.pgpass' host=172.20.0.10 "
                "port=5432 application_name='postgresql-standby' options='-c x=\\'y\\''")
    assert conninfo_value(conninfo, "host") == "172.20.0.10"
    assert conninfo_value(conninfo, "application_name") == "postgresql-standby"
    assert conninfo_value(conninfo, "passfile") == "/var/lib/postgresql/.pgpass"
    assert conninfo_value(conninfo, "options") == "-c x='y'"
    assert conninfo_value(conninfo, "sslmode") is None
    assert conninfo_value(None, "host") is None


def test_primary_conninfo_verifies_the_primary() -> None:
    c = cluster()
    conninfo = primary_conninfo(c.node("db1"), c.node("db2"), ALL)
    assert conninfo == (
        "host=10.0.0.1 port=5432 user=replicator passfile=/var/lib/postgresql/.pgpass "
        "application_name=db2 connect_timeout=5 sslmode=verify-full "
        "sslrootcert=/etc/postgresql/15/main/tls/ca.crt channel_binding=require")
    assert conninfo_value(conninfo, "password") is None


def test_rewind_conninfo_verifies_the_primary_too() -> None:
    conninfo = rewind_conninfo(cluster().node("db2"), ALL)
    assert conninfo_value(conninfo, "sslmode") == "verify-full"
    assert conninfo_value(conninfo, "user") == "rewinder"
    assert conninfo_value(conninfo, "dbname") == "postgres"


def test_ssl_conninfo_for_scripts() -> None:
    assert ssl_conninfo(ALL) == ("sslmode=verify-full sslrootcert=/etc/postgresql/15/main/"
                                 "tls/ca.crt channel_binding=require")
