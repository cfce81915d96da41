"""The freshly built cluster: packages, services, files, roles, replication, data, auth."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from pgcluster.control import scram
from pgcluster.lab.definition import Lab
from tests.integration.conftest import connect, node_host, query, streaming, wait_for

NODES = ["primary", "standby", "readonly"]


@pytest.mark.parametrize("role", NODES)
def test_packages_and_services(lab: Lab, role: str) -> None:
    host = node_host(lab.node(role))
    assert host.package("postgresql-15").is_installed
    for service in ("postgresql@15-main", "cron"):
        assert host.service(service).is_running, service
        assert host.service(service).is_enabled, service
    # systemd is PID 1: the node boots like a VM.
    assert host.check_output("cat /proc/1/comm") == "systemd"


@pytest.mark.parametrize("role", NODES)
def test_configuration_files_owner_and_mode(lab: Lab, role: str) -> None:
    host = node_host(lab.node(role))
    expected = {
        "/etc/postgresql/15/main/postgresql.conf": 0o644,
        "/etc/postgresql/15/main/pg_hba.conf": 0o640,
        "/var/lib/postgresql/.pgpass": 0o600,
        "/backups/wal_archive": 0o750,
        "/etc/postgresql/15/main/tls": 0o755,
        "/etc/postgresql/15/main/tls/ca.crt": 0o644,
        "/etc/postgresql/15/main/tls/server.crt": 0o644,
        "/etc/postgresql/15/main/tls/server.key": 0o600,
    }
    for path, mode in expected.items():
        f = host.file(path)
        assert f.exists, path
        assert (f.user, f.group, f.mode) == ("postgres", "postgres", mode), path
    assert host.file("/usr/local/lib/pgcluster/archive-wal").mode == 0o755


def test_one_primary_two_replicas_in_recovery(lab: Lab) -> None:
    recovery = {role: query(lab.node(role), "select pg_is_in_recovery()")[0][0] for role in NODES}
    assert recovery == {"primary": False, "standby": True, "readonly": True}


def test_replicas_stream_with_their_slots(lab: Lab) -> None:
    replicas = {lab.node("standby").name, lab.node("readonly").name}
    assert streaming(lab) == {name: "streaming" for name in replicas}
    slots = query(lab.node("primary"),
                  "select slot_name, active, slot_type from pg_replication_slots")
    assert sorted(slots) == sorted((name.replace("-", "_"), True, "physical") for name in replicas)
    senders = query(lab.node("primary"), "select application_name, client_addr::text, "
                    "(select active_pid from pg_replication_slots s "
                    " where s.slot_name = replace(r.application_name, '-', '_')) = r.pid "
                    "from pg_stat_replication r")
    addresses = {lab.node(r).name: lab.node(r).address + "/32" for r in ("standby", "readonly")}
    assert {(app, addr) for app, addr, _ in senders} == set(addresses.items())
    assert all(slot_is_senders for _, _, slot_is_senders in senders)


def test_row_written_on_primary_is_read_on_both_replicas(lab: Lab) -> None:
    marker = f"replication-check-{uuid.uuid4()}"
    with connect(lab.node("primary")) as conn:
        conn.execute("insert into proyecto.logs_replicacion (evento, nodo, detalle) "
                     "values ('test', 'pytest', %s)", (marker,))
    for role in ("standby", "readonly"):
        wait_for(lambda r=role: query(lab.node(r), "select 1 from proyecto.logs_replicacion "
                                      "where detalle = %s", (marker,)),
                 timeout=10, what=f"row on {role}")


@pytest.mark.parametrize("role", ["standby", "readonly"])
def test_write_on_replica_is_refused(lab: Lab, role: str) -> None:
    with connect(lab.node(role)) as conn, pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        conn.execute("insert into proyecto.usuarios (nombre, email) values ('x', %s)",
                     (f"{uuid.uuid4()}@x",))


@pytest.mark.parametrize("role", NODES)
def test_seed_data_on_every_node(lab: Lab, role: str) -> None:
    node = lab.node(role)
    users = query(node, "select nombre, email from proyecto.usuarios order by id")
    assert len(users) == 5
    assert users[0] == ("Ana García", "ana.garcia@proyecto.local")
    assert query(node, "select count(*) from proyecto.logs_replicacion "
                       "where evento = 'cluster_init'") == [(1,)]
    owner = query(node, "select pg_get_userbyid(datdba) from pg_database "
                        "where datname = 'proyecto_db'")
    assert owner == [("admin",)]


def test_roles_and_their_rights(lab: Lab) -> None:
    rows = query(lab.node("primary"), "select rolname, rolsuper, rolreplication, rolcanlogin, "
                 "rolcreatedb or rolcreaterole or rolbypassrls from pg_roles "
                 "where rolname in ('admin', 'replicator', 'rewinder', 'app') order by 1")
    assert rows == [("admin", True, False, True, False), ("app", False, False, True, False),
                    ("replicator", False, True, True, False),
                    ("rewinder", False, False, True, False)]
    stored = query(lab.node("primary"),
                   "select rolpassword from pg_authid where rolname = 'admin'")[0][0]
    # Stored as a SCRAM verifier, and the one pgcluster checks idempotently.
    assert stored.startswith("SCRAM-SHA-256$4096:")
    assert scram.matches(stored, "admin123")
    assert not scram.matches(stored, "admin124")


@pytest.mark.parametrize("role", NODES)
def test_wrong_password_is_refused(lab: Lab, role: str) -> None:
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        connect(lab.node(role), password="not-the-password")


def test_replicator_cannot_log_into_databases(lab: Lab) -> None:
    with pytest.raises(psycopg.OperationalError, match=r"pg_hba\.conf rejects connection"):
        connect(lab.node("primary"), user="replicator", password="replica123")


@pytest.mark.parametrize("role", NODES)
def test_no_trust_tls_and_scram_everywhere_on_the_network(lab: Lab, role: str) -> None:
    rules = query(lab.node(role), "select type, user_name, auth_method, error "
                                  "from pg_hba_file_rules")
    assert rules, "pg_hba.conf has no rules"
    assert all(error is None for *_, error in rules), rules
    assert all(method != "trust" for _, _, method, _ in rules)
    assert {method for kind, _, method, _ in rules if kind == "local"} == {"peer",
                                                                          "scram-sha-256"}
    # By peer: postgres, and with a monitor the exporter's role (as the OS user prometheus).
    exporter = [["monitor"]] if lab.monitor else []
    assert [user for kind, user, method, _ in rules if method == "peer"] == [
        ["postgres"]] * 2 + exporter
    network = [(kind, user, method) for kind, user, method, _ in rules if kind != "local"]
    # accepted over TLS only, with a password; everything else is an explicit refusal
    assert {method for kind, _, method in network if kind == "hostssl"} == {"scram-sha-256"}
    assert {method for kind, _, method in network if kind != "hostssl"} == {"reject"}
    assert sorted(user[0] for kind, user, method in network if kind == "host") == sorted(
        ["postgres", "replicator", "rewinder", *(u[0] for u in exporter)])


@pytest.mark.parametrize("role", NODES)
def test_settings_of_the_seed_are_live(lab: Lab, role: str) -> None:
    wanted = {
        "wal_level": "replica", "max_wal_senders": "10", "wal_keep_size": "512MB",
        "hot_standby": "on", "archive_mode": "on", "max_connections": "100",
        "listen_addresses": "*", "wal_log_hints": "on", "password_encryption": "scram-sha-256",
        "cluster_name": lab.node(role).name, "data_checksums": "on", "ssl": "on",
        "ssl_min_protocol_version": "TLSv1.2", "log_statement": "none",
    }
    with connect(lab.node(role)) as conn:
        live = {name: conn.execute(f"show {name}").fetchone()[0] for name in wanted}
    assert live == wanted


def test_wal_is_archived(lab: Lab) -> None:
    with connect(lab.node("primary")) as conn:
        segment = conn.execute("select pg_walfile_name(pg_current_wal_lsn())").fetchone()[0]
        conn.execute("select pg_switch_wal()")
    host = node_host(lab.node("primary"))
    wait_for(lambda: host.file(f"/backups/wal_archive/{segment}").exists, timeout=20,
             what=f"{segment} in the archive")
    failed = query(lab.node("primary"), "select failed_count from pg_stat_archiver")
    assert failed == [(0,)]
