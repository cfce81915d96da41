"""Node-to-node connections: TLS with the peer's certificate checked, the password from
.pgpass, never in the connection string."""

from __future__ import annotations

from pgcluster.replication import primary_conninfo, rewind_conninfo, ssl_conninfo
from pgcluster.sql import conninfo_value
from tests.unit.helpers import ALL, cluster


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
