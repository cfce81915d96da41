"""The same deploys/cluster.py on stand-ins for VMs, reached only over SSH as a non-root
user with sudo (pyinfra's SSH connector and testinfra's SSH backend; never docker exec):
packages, services, file owners, replication, data, passwords, the CLI's Session, and a
second run without changes.

Failover and backups over SSH belong after these tests, on the same `ssh_cluster` fixture
(see the end of this file).
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from tests.conftest import totals
from tests.integration.conftest import wait_for
from tests.integration.sshlab import PASSWORDS, SshCluster

NODES = ["primary", "standby", "readonly"]
TABLES = ("select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace "
          "where c.relkind = 'r' and c.relpersistence = 'p' and n.nspname not in "
          "('pg_catalog', 'information_schema') and n.nspname !~ '^pg_(toast|temp)'")


def test_first_deploy_built_the_cluster_over_ssh(ssh_cluster: SshCluster) -> None:
    counts = ssh_cluster.first_deploy
    assert counts["error"] == 0
    if ssh_cluster.fresh:  # from bare Debian hosts: install, configure, init, clone
        assert counts["success"] > 50


@pytest.mark.parametrize("role", NODES)
def test_login_is_not_root_and_sudo_is_passwordless(ssh_cluster: SshCluster, role: str) -> None:
    login = ssh_cluster.host(role, sudo=False)
    assert login.check_output("id -un") == ssh_cluster.user
    assert login.check_output("id -u") != "0"
    assert login.check_output("sudo -n id -u") == "0"
    # The DBA's way in, as documented: psql as postgres through sudo.
    assert login.check_output("cd / && sudo -n -u postgres psql -XAtc 'select 1'") == "1"


@pytest.mark.parametrize("role", NODES)
def test_packages_and_services_under_systemd(ssh_cluster: SshCluster, role: str) -> None:
    host = ssh_cluster.host(role)
    assert host.package("postgresql-15").is_installed
    for service in ("postgresql@15-main", "cron", "ssh"):
        assert host.service(service).is_running, service
        assert host.service(service).is_enabled, service
    assert host.check_output("cat /proc/1/comm") == "systemd"


@pytest.mark.parametrize("role", NODES)
def test_files_belong_to_postgres_or_root_never_to_the_login(ssh_cluster: SshCluster,
                                                             role: str) -> None:
    host = ssh_cluster.host(role)
    expected = {
        "/etc/postgresql/15/main/postgresql.conf": ("postgres", 0o644),
        "/etc/postgresql/15/main/pg_hba.conf": ("postgres", 0o640),
        "/var/lib/postgresql/.pgpass": ("postgres", 0o600),
        "/var/lib/postgresql/15/main": ("postgres", 0o700),
        "/backups/wal_archive": ("postgres", 0o750),
        "/etc/postgresql-common/createcluster.conf": ("root", 0o644),
        "/usr/local/lib/pgcluster/clone-replica": ("root", 0o755),
    }
    # One stat over SSH for all of them (testinfra's host.file would log in once per field).
    listing = host.check_output("stat -c '%n %U %G %a' " + " ".join(expected))
    found = {path: (user, group, int(mode, 8))
             for path, user, group, mode in (line.split() for line in listing.splitlines())}
    assert found == {path: (owner, owner, mode) for path, (owner, mode) in expected.items()}
    # Files uploaded through sudo land with the owner asked for, never the SSH user's.
    strays = host.check_output(
        f"find /etc /usr/local /var/lib/postgresql /backups -xdev -user {ssh_cluster.user}"
    )
    assert strays == ""


def test_one_primary_two_replicas_in_recovery(ssh_cluster: SshCluster) -> None:
    recovery = {role: ssh_cluster.psql(role, "select pg_is_in_recovery()") for role in NODES}
    assert recovery == {"primary": [["f"]], "standby": [["t"]], "readonly": [["t"]]}


def test_replicas_stream_from_the_primary_with_their_slots(ssh_cluster: SshCluster) -> None:
    replicas = {ssh_cluster.node(r).name: ssh_cluster.node(r).address
                for r in ("standby", "readonly")}
    senders = ssh_cluster.psql("primary", "select application_name, state, "
                               "host(client_addr) from pg_stat_replication", "postgres")
    assert sorted(senders) == sorted([name, "streaming", address]
                                     for name, address in replicas.items())
    slots = ssh_cluster.psql("primary", "select slot_name, active from pg_replication_slots",
                             "postgres")
    assert sorted(slots) == sorted([name.replace("-", "_"), "t"] for name in replicas)


def test_row_written_on_primary_is_read_on_both_replicas(ssh_cluster: SshCluster) -> None:
    marker = f"ssh-replication-check-{uuid.uuid4()}"
    ssh_cluster.psql("primary", "insert into proyecto.logs_replicacion (evento, nodo, detalle) "
                     f"values ('test', 'pytest-ssh', '{marker}')")
    for role in ("standby", "readonly"):
        wait_for(lambda r=role: ssh_cluster.psql(
            r, f"select 1 from proyecto.logs_replicacion where detalle = '{marker}'"),
            timeout=15, what=f"row on {role}")


@pytest.mark.parametrize("role", ["standby", "readonly"])
def test_write_on_replica_is_refused(ssh_cluster: SshCluster, role: str) -> None:
    result = ssh_cluster.psql_result(
        role, f"insert into proyecto.usuarios (nombre, email) values ('x', '{uuid.uuid4()}@x')")
    assert result.rc != 0
    assert "cannot execute INSERT in a read-only transaction" in result.stderr


@pytest.mark.parametrize("role", NODES)
def test_seed_data_on_every_node(ssh_cluster: SshCluster, role: str) -> None:
    users = ssh_cluster.psql(role, "select nombre, email from proyecto.usuarios order by id")
    assert len(users) == 5
    assert users[0] == ["Ana García", "ana.garcia@proyecto.local"]


def test_passwords_from_the_environment_work_across_the_network(ssh_cluster: SshCluster
                                                                 ) -> None:
    """admin logs in from another node with the password the suite exported (no default
    exists outside the Docker lab); a wrong one is refused."""
    login = ssh_cluster.host("readonly", sudo=False)
    primary = ssh_cluster.node("primary").address

    def admin(password: str, sslmode: str = "verify-full"):
        # A client on the node trusts the node's copy of the cluster CA.
        return login.run(f"PGPASSWORD='{password}' psql -XAtq 'host={primary} user=admin "
                         f"dbname=proyecto_db sslmode={sslmode} "
                         "sslrootcert=/etc/postgresql/15/main/tls/ca.crt' "
                         "-c 'select current_user'")

    assert admin(PASSWORDS["PGCLUSTER_ADMIN_PASSWORD"]).stdout.strip() == "admin"
    refused = admin("admin123")  # the lab's default must not exist here
    assert refused.rc != 0 and "password authentication failed" in refused.stderr
    plain = admin(PASSWORDS["PGCLUSTER_ADMIN_PASSWORD"], sslmode="disable")
    assert plain.rc != 0 and "no encryption" in plain.stderr


def test_replication_over_ssh_uses_verified_tls(ssh_cluster: SshCluster) -> None:
    rows = ssh_cluster.psql("primary", "select r.application_name, s.ssl from "
                            "pg_stat_replication r join pg_stat_ssl s using (pid)", "postgres")
    assert sorted(rows) == sorted([ssh_cluster.node(r).name, "t"]
                                  for r in ("standby", "readonly"))
    for role in ("standby", "readonly"):
        conninfo = ssh_cluster.psql(role, "select conninfo from pg_stat_wal_receiver",
                                    "postgres")[0][0]
        assert "sslmode=verify-full" in conninfo and "channel_binding=require" in conninfo


def test_cli_session_runs_commands_through_sudo(ssh_cluster: SshCluster) -> None:
    """pgcluster.control.session.Session (the CLI's way to the nodes) reaches them over SSH and
    applies the inventory's _sudo to its commands, facts and queries."""
    with ssh_cluster.session() as session:
        topology = session.topology()
        assert topology.primary.name == ssh_cluster.node("primary").name
        for node in session.cluster.nodes:
            ok, out, err = session.run(node, "id -u")
            assert ok and out == "0", err
            assert session.query(node, "select count(*) from proyecto.usuarios",
                                 database="proyecto_db") == [["5"]]


def test_second_deploy_over_ssh_reports_zero_changes(ssh_cluster: SshCluster) -> None:
    result = ssh_cluster.pyinfra("deploys/cluster.py", json_output=True)
    assert result.returncode == 0, result.stderr[-3000:]
    counts = totals(result)
    assert counts["error"] == 0
    assert counts["success"] == 0, f"a re-run changed {counts['success']} operation(s)"
    assert counts["no_change"] > 50
    assert ssh_cluster.all_streaming()


# Backups, then a failover and a rejoin over SSH: after the checks above because they
# change the cluster; the same deploys as on the lab, with no SSH-specific code.


def test_backups_over_ssh(ssh_cluster: SshCluster) -> None:
    """The backup jobs run through the SSH user's sudo, on the live primary only; a replica
    does nothing; the backup verifies."""
    before = ssh_cluster.host("primary").check_output("ls -1 /backups/full").split()
    result = ssh_cluster.pyinfra("deploys/backup.py")
    assert result.returncode == 0, result.stderr[-3000:]
    after = ssh_cluster.host("primary").check_output("ls -1 /backups/full").split()
    (new,) = set(after) - set(before)
    assert ssh_cluster.psql("primary", "select kind, status from pgcluster.backups "
                            f"where path = 'full/{new}'", "postgres") == [["full", "ok"]]
    replica = ssh_cluster.host("standby").run("/usr/local/lib/pgcluster/backup-full")
    assert replica.rc == 0 and replica.stdout == ""
    verify = ssh_cluster.pyinfra("deploys/backup.py", "--data", "backup_kind=verify")
    assert verify.returncode == 0, verify.stderr[-3000:]
    assert ssh_cluster.psql("primary", "select verify_status from pgcluster.backups "
                            f"where path = 'full/{new}'", "postgres") == [["ok"]]


def test_a_restore_drill_restores_onto_the_drill_host_over_ssh(ssh_cluster: SshCluster,
                                                              tmp_path: Path) -> None:
    """The inventory's `drill` host (pgssh-drill: outside the cluster, /backups mounted as
    on the nodes) is left alone by the cluster deploy; `pgcluster drill restore` restores
    the newest backup onto it over SSH and compares every table with the primary."""
    drill = ssh_cluster.host("drill")
    assert not drill.file("/etc/pgcluster/node.env").exists, "the cluster deploy touched it"
    result = ssh_cluster.cli("drill", "restore", "--yes", "--report", str(tmp_path),
                             timeout=1200)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-3000:]
    data = json.loads((tmp_path / "restore.json").read_text())
    assert data["passed"], data["reasons"]
    figures = data["figures"]
    assert (figures["scratch_node"], figures["drill_host"]) == ("pgssh-drill", True)
    assert figures["differing_tables"] == [], figures
    # Every permanent table of every database, as this test counts them on the primary.
    databases = [row[0] for row in ssh_cluster.psql(
        "primary", "select datname from pg_database where datallowconn and not "
                   "datistemplate", "postgres")]
    tables = sum(int(ssh_cluster.psql("primary", TABLES, database)[0][0])
                 for database in databases)
    assert (figures["tables_compared"], figures["databases_compared"]) == (
        tables, len(databases)), (tables, databases)
    # A copy of its own: a primary that never archives, and no replica of the cluster.
    assert ssh_cluster.psql("drill", "select pg_is_in_recovery(), "
                                     "current_setting('archive_mode')") == [["f", "off"]]
    assert ssh_cluster.psql("drill", "select count(*) from proyecto.usuarios") == \
        ssh_cluster.psql("primary", "select count(*) from proyecto.usuarios")
    assert ssh_cluster.psql("primary", "select count(*) from pg_stat_replication where "
                                       "application_name = 'pgssh-drill'", "postgres") == [["0"]]
    assert ssh_cluster.psql("primary", "select node, status from pgcluster.backups where "
                                       "kind = 'drill' order by id desc limit 1",
                            "postgres") == [["pgssh-drill", "ok"]]


def test_failover_and_rejoin_over_ssh(ssh_cluster: SshCluster) -> None:
    """The primary's server is lost (stopped through sudo over SSH); the failover deploy
    promotes the standby and re-points the read-only replica; rejoin rewinds the old
    primary into a standby. All through pyinfra's SSH connector as the sudo user."""
    primary, standby = ssh_cluster.node("primary"), ssh_cluster.node("standby")
    ssh_cluster.host("primary").check_output("systemctl stop postgresql@15-main")
    failover = ssh_cluster.pyinfra("deploys/failover.py")
    assert failover.returncode == 0, failover.stderr[-3000:]
    assert ssh_cluster.psql("standby", "select pg_is_in_recovery()") == [["f"]]
    marker = "written-after-the-ssh-failover"
    ssh_cluster.psql("standby", "insert into proyecto.logs_replicacion (evento, nodo, detalle) "
                                f"values ('test', 'pytest', '{marker}')")
    wait_for(lambda: ssh_cluster.psql("readonly", "select count(*) from proyecto.logs_replicacion"
                                                  f" where detalle = '{marker}'") == [["1"]],
             timeout=30, what="the read-only replica following the new primary")
    rejoin = ssh_cluster.pyinfra("deploys/rejoin.py", "--data", f"rejoin_node={primary.name}")
    assert rejoin.returncode == 0, rejoin.stderr[-3000:]
    assert "pg_rewind" in ssh_cluster.host("primary").check_output(
        "cat /var/log/pgcluster/rejoin.log")
    senders = dict(ssh_cluster.psql("standby", "select application_name, state "
                                               "from pg_stat_replication", "postgres"))
    assert senders == {primary.name: "streaming", ssh_cluster.node("readonly").name: "streaming"}
    assert standby.name in ssh_cluster.host("standby").check_output(
        "cat /var/log/pgcluster/events.log")
