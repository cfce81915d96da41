"""Secure by default, on the shared test lab: TLS on every connection (plain text and a
foreign CA refused, replication encrypted and verified), pg_hba.conf refusing an address
outside the client networks, least privilege (replicator, the application role), secrets
kept out of output, process lists and logs, private files, and certificates renewed by a
re-run of the deploy.
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets as random
import socket
import ssl
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from pgcluster.control import secrets, tls
from pgcluster.lab.definition import Lab, LabNode
from tests.conftest import REPO, run_pyinfra, totals
from tests.integration.conftest import (
    APP,
    LAB_ENV,
    all_streaming,
    connect,
    lab_ca,
    node_host,
    query,
    wait_for,
)
from tests.integration.sshlab import SSH_LAB_NAME

NODES = ["primary", "standby", "readonly"]
CLUSTER = ["inventory/docker.py", "deploys/cluster.py"]
TLS_DIR = "/etc/postgresql/15/main/tls"


# ------------------------------------------------------------------------------ TLS


@pytest.mark.parametrize("role", NODES)
def test_plain_text_connection_is_refused(lab: Lab, role: str) -> None:
    with pytest.raises(psycopg.OperationalError,
                       match=r'pg_hba\.conf rejects connection for host "[\d.]+", user '
                             r'"admin", database "proyecto_db", no encryption'):
        connect(lab.node(role), sslmode="disable")


@pytest.mark.parametrize("role", NODES)
def test_clients_get_tls_1_3_and_a_certificate_for_the_address(lab: Lab, role: str) -> None:
    with connect(lab.node(role)) as conn:
        ssl_row = conn.execute("select ssl, version from pg_stat_ssl "
                               "where pid = pg_backend_pid()").fetchone()
    assert ssl_row == (True, "TLSv1.3")


def test_a_client_trusting_another_ca_fails_verify_full(lab: Lab, tmp_path: Path) -> None:
    _, foreign = tls.make_ca("somebody else's CA", 30)
    (tmp_path / "foreign.crt").write_text(tls.cert_pem(foreign))
    with pytest.raises(psycopg.OperationalError, match="certificate verify failed"):
        connect(lab.node("primary"), sslrootcert=str(tmp_path / "foreign.crt"))


def test_verify_full_checks_the_name_connected_to(lab: Lab) -> None:
    """The certificate is the cluster's, but names other hosts: refused all the same."""
    with pytest.raises(psycopg.OperationalError, match="does not match host name"):
        connect(lab.node("primary"), host="not-a-node.invalid", hostaddr="127.0.0.1")


def test_every_replication_connection_uses_verified_tls(lab: Lab) -> None:
    rows = query(lab.node("primary"), "select r.application_name, s.ssl, s.version "
                 "from pg_stat_replication r left join pg_stat_ssl s using (pid)")
    replicas = {n.name for n in lab.nodes if n.role != "primary"}
    assert {name for name, _, _ in rows} == replicas
    assert all(encrypted and version in ("TLSv1.2", "TLSv1.3") for _, encrypted, version in rows)
    for role in ("standby", "readonly"):
        conninfo = query(lab.node(role), "select conninfo from pg_stat_wal_receiver")[0][0]
        assert f"sslmode=verify-full sslcompression=0 sslrootcert={TLS_DIR}/ca.crt" in conninfo
        assert "channel_binding=require" in conninfo


def served_certificate(port: int) -> bytes:
    """The certificate a node serves on a published port (PostgreSQL's SSLRequest, then a
    TLS handshake that checks nothing: this only reads what is served)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        raw.sendall((8).to_bytes(4, "big") + (80877103).to_bytes(4, "big"))
        assert raw.recv(1) == b"S"
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        with context.wrap_socket(raw) as wrapped:
            der = wrapped.getpeercert(binary_form=True)
    assert der
    return der


def test_certificates_are_renewed_by_a_rerun_inside_the_margin(lab: Lab) -> None:
    """With a renewal margin longer than what is left of the certificates, a re-run issues
    new ones, the servers reload and serve them, replication carries on. Lost certificate
    files are issued again the same way; a normal re-run then changes nothing."""
    nodes_dir = secrets.inventory_dir("tls", inventory="docker") / "nodes"

    def issued(node: LabNode) -> x509.Certificate:
        return tls.load_certs((nodes_dir / f"{node.name}.crt").read_bytes())[0]

    def served_is_issued() -> dict[str, bytes]:
        served = {n.name: served_certificate(n.published_port) for n in lab.nodes}
        assert all(issued(n).public_bytes(Encoding.DER) == served[n.name] for n in lab.nodes)
        return served

    before = served_is_issued()
    left = min(issued(n).not_valid_after_utc for n in lab.nodes) - datetime.now(UTC)
    margin = left.days + 1  # every certificate now expires within the margin
    renew = run_pyinfra(*CLUSTER, "--data", f"tls_renew_days={margin}", "--data",
                        f"tls_cert_days={margin + 1}", env=LAB_ENV, json_output=True)
    assert renew.returncode == 0, renew.stderr[-3000:]
    # per node: its TLS files (with the configuration) and the reload that serves them
    assert totals(renew)["success"] >= 2 * len(lab.nodes)
    renewed = served_is_issued()
    assert all(renewed[name] != before[name] for name in before)
    with connect(lab.node("primary")) as conn:  # verify-full against the same CA
        assert conn.execute("select 1").fetchone() == (1,)
    wait_for(lambda: all_streaming(lab), timeout=60, what="replicas streaming after renewal")

    for node in lab.nodes:  # lost on the control machine: issued again (with the defaults)
        for suffix in (".crt", ".key"):
            (nodes_dir / f"{node.name}{suffix}").unlink()
    reissued = run_pyinfra(*CLUSTER, env=LAB_ENV)
    assert reissued.returncode == 0, reissued.stderr[-3000:]
    assert "new TLS certificate for" in reissued.stderr + reissued.stdout
    assert all(served != renewed[name] for name, served in served_is_issued().items())
    again = run_pyinfra(*CLUSTER, env=LAB_ENV, json_output=True)
    assert again.returncode == 0 and totals(again)["success"] == 0
    wait_for(lambda: all_streaming(lab), timeout=60, what="replicas streaming")


# ------------------------------------------------------------------------- pg_hba


def outsider_prefix(lab: Lab) -> str:
    """Names derived from the lab's (pgtest-primary -> pgtest-outsider), so that a suite
    only ever creates and removes objects of its own lab."""
    return f"{lab.node('primary').name.rsplit('-', 1)[0]}-outsider"


@pytest.fixture(scope="module")
def outsider(lab: Lab) -> Iterator[dict[str, str]]:
    """A client container with psql and the lab's CA, on a Docker network of its own and
    also on the lab network at an address that is neither a node nor in the lab's client
    networks (only the gateway: this machine). For the duration, the primary is attached to
    the outsider's network too, so that a client there can reach it at all."""
    name = outsider_prefix(lab)
    network = f"{name}-network"
    primary = lab.node("primary").name
    lab_address = str(ipaddress.ip_network(lab.subnet).network_address + 200)

    def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(["docker", *args], capture_output=True, text=True, check=check)

    def clean() -> None:
        docker("rm", "--force", name, check=False)
        docker("network", "disconnect", "--force", network, primary, check=False)
        docker("network", "rm", network, check=False)

    clean()
    try:
        docker("network", "create", "--label", f"pgcluster.lab={lab.name}", network)
        docker("run", "--detach", "--name", name, "--network", network, "--label",
               f"pgcluster.lab={lab.name}", lab.image, "sleep", "infinity")
        installed = subprocess.run(
            ["docker", "exec", name, "sh", "-c",
             "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "
             "--no-install-recommends postgresql-client-15 >/dev/null"],
            capture_output=True, text=True, timeout=300, check=False)
        assert installed.returncode == 0, installed.stderr[-2000:]
        docker("cp", str(lab_ca()), f"{name}:/ca.crt")
        docker("network", "connect", "--ip", lab_address, lab.network, name)
        docker("network", "connect", network, primary)
        addresses = json.loads(docker("inspect", "--format", "{{json .NetworkSettings.Networks}}",
                                      name).stdout)
        primary_there = json.loads(docker("inspect", "--format",
                                          "{{json .NetworkSettings.Networks}}",
                                          primary).stdout)[network]["IPAddress"]
        yield {"name": name, "lab_address": lab_address,
               "other_address": addresses[network]["IPAddress"],
               "primary_on_other_network": primary_there}
    finally:
        clean()


def psql_from(container: str, conninfo: str) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", "exec", container, "psql", "-w", "-XAtq", conninfo,
                           "-c", "select 1"], capture_output=True, text=True, check=False)


def test_a_client_outside_the_client_networks_is_refused(lab: Lab,
                                                         outsider: dict[str, str]) -> None:
    assert query(lab.node("primary"), "select 1") == [(1,)]  # this machine may log in
    name, verified = outsider["name"], "sslmode=verify-full sslrootcert=/ca.crt"
    # From a container on another network: TLS works (not verifiable: the primary's address
    # there is in no certificate), and pg_hba.conf has no line for that address.
    other = psql_from(name, f"host={outsider['primary_on_other_network']} user=app "
                            "dbname=proyecto_db sslmode=require")
    assert other.returncode != 0
    assert (f'no pg_hba.conf entry for host "{outsider["other_address"]}", user "app", '
            'database "proyecto_db", SSL encryption') in other.stderr
    # From the lab network itself, at an address that is not this machine's: the
    # certificate verifies, pg_hba.conf refuses all the same; replication too.
    primary = lab.node("primary").address
    same = psql_from(name, f"host={primary} user=app dbname=proyecto_db {verified}")
    assert (f'no pg_hba.conf entry for host "{outsider["lab_address"]}", user "app", '
            'database "proyecto_db", SSL encryption') in same.stderr
    replication = psql_from(name, f"host={primary} user=replicator dbname=replication "
                                  f"replication=true {verified}")
    assert ('no pg_hba.conf entry for replication connection from host '
            f'"{outsider["lab_address"]}", user "replicator", SSL encryption'
            ) in replication.stderr


# ---------------------------------------------------------------- least privilege


def test_replicator_cannot_select_from_usuarios(lab: Lab) -> None:
    primary = lab.node("primary")
    for options in ({}, {"replication": "database"}):  # SQL, or a logical walsender's SQL
        with pytest.raises(psycopg.OperationalError,
                           match=r'pg_hba\.conf rejects connection for host "[\d.]+", user '
                                 r'"replicator", database "proyecto_db"'):
            connect(primary, user="replicator", password="replica123", **options)
    rights = query(primary, "select has_table_privilege('replicator', 'proyecto.usuarios', "
                            "'SELECT'), has_database_privilege('replicator', 'proyecto_db', "
                            "'CONNECT'), has_schema_privilege('replicator', 'proyecto', "
                            "'USAGE')")
    assert rights == [(False, False, False)]


def test_application_role_reads_and_writes_its_tables_and_nothing_more(lab: Lab) -> None:
    email = f"app-{random.token_hex(4)}@proyecto.local"
    with connect(lab.node("primary"), *APP) as conn:
        assert conn.execute("select count(*) >= 5 from proyecto.usuarios").fetchone() == (True,)
        conn.execute("insert into proyecto.usuarios (nombre, email) values ('App', %s)",
                     (email,))
        conn.execute("update proyecto.usuarios set activo = false where email = %s", (email,))
        conn.execute("delete from proyecto.usuarios where email = %s", (email,))
        for sql, error in [
            ("create table proyecto.nope (id int)", psycopg.errors.InsufficientPrivilege),
            ("create table public.nope (id int)", psycopg.errors.InsufficientPrivilege),
            ("create schema nope", psycopg.errors.InsufficientPrivilege),
            ("select rolpassword from pg_authid", psycopg.errors.InsufficientPrivilege),
            ("truncate proyecto.usuarios", psycopg.errors.InsufficientPrivilege),
            ("create database nope", psycopg.errors.InsufficientPrivilege),
            ("create role nope", psycopg.errors.InsufficientPrivilege),
        ]:
            with pytest.raises(error):
                conn.execute(sql)
    with connect(lab.node("standby"), *APP) as conn:  # reads on a replica too
        assert conn.execute("select count(*) >= 5 from proyecto.usuarios").fetchone() == (True,)


def test_tables_admin_creates_later_are_open_to_the_application(lab: Lab) -> None:
    with connect(lab.node("primary")) as conn:
        conn.execute("create table if not exists proyecto.later_table (id int)")
    try:
        with connect(lab.node("primary"), *APP) as conn:
            conn.execute("insert into proyecto.later_table values (1)")
            assert conn.execute("select count(*) from proyecto.later_table").fetchone()[0] >= 1
    finally:
        with connect(lab.node("primary")) as conn:
            conn.execute("drop table proyecto.later_table")


# -------------------------------------------------------------------------- secrets


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("role", NODES)
def test_secret_files_on_the_nodes_are_private(lab: Lab, role: str) -> None:
    host = node_host(lab.node(role))
    for path in ("/var/lib/postgresql/.pgpass", f"{TLS_DIR}/server.key"):
        f = host.file(path)
        assert (f.user, f.group, f.mode) == ("postgres", "postgres", 0o600), path
    assert host.file("/var/lib/pgcluster/upload").mode == 0o700
    assert host.check_output("ls -A /var/lib/pgcluster/upload") == ""  # nothing left behind


def test_secret_files_on_the_control_machine_are_private(lab: Lab, tmp_path: Path) -> None:
    directory = secrets.inventory_dir("tls", inventory="docker")
    assert mode(directory) == 0o700 and mode(directory / "nodes") == 0o700
    assert mode(directory / "ca.key") == 0o600
    for node in lab.nodes:
        assert mode(directory / "nodes" / f"{node.name}.key") == 0o600
    generated = subprocess.run(
        [sys.executable, "-m", "pgcluster", "--inventory", "inventory/production.py",
         "secrets", "init"], cwd=REPO,
        env={**os.environ, "PGCLUSTER_SECRETS_DIR": str(tmp_path / "s")},
        capture_output=True, text=True, check=True)
    path = tmp_path / "s" / "production.env"
    assert mode(path) == 0o600 and mode(path.parent) == 0o700
    assert all(value not in generated.stdout for value in secrets.read_file(path).values())


@pytest.mark.parametrize("case", ["lab default", "missing"])
def test_a_non_lab_inventory_without_its_own_passwords_stops_before_connecting(
        tmp_path: Path, case: str) -> None:
    """The SSH stand-ins' inventory (like any VM or bare-metal one) with the lab's public
    passwords, or without one, never reaches a host."""
    env = {"PGCLUSTER_SSH_LAB": SSH_LAB_NAME, "PGCLUSTER_SSH_KEY": str(tmp_path / "no-key"),
           "PGCLUSTER_SECRETS_DIR": str(tmp_path / "secrets"),
           **{secrets.env_name(k): f"own-{k}" for k in secrets.SECRET_KEYS}}
    if case == "lab default":
        env["PGCLUSTER_ADMIN_PASSWORD"] = "admin123"
        expected = "is one of the Docker lab's documented passwords"
    else:
        env["PGCLUSTER_APP_PASSWORD"] = ""
        expected = "app_password is not set for"
    result = run_pyinfra("inventory/standins.py", "deploys/cluster.py", env=env)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert expected in output
    assert "secrets init" in output and "PGCLUSTER_" in output
    assert "Connecting to hosts" not in output


class Sampler:
    """`ps` on every lab node (docker exec) and on this machine, every 50 ms, in the
    background: what any user of those machines could have seen."""

    def __init__(self, lab: Lab):
        self.samples: list[str] = []
        self._stop = threading.Event()
        self._nodes = [subprocess.Popen(
            ["docker", "exec", node.name, "sh", "-c",
             "while :; do ps -eww -o args; echo ---; sleep 0.05; done"],
            stdout=subprocess.PIPE, text=True) for node in lab.nodes]
        self._readers = [threading.Thread(target=self._read, args=(p,), daemon=True)
                         for p in self._nodes]
        self._local = threading.Thread(target=self._sample_local, daemon=True)
        for thread in [*self._readers, self._local]:
            thread.start()

    def _read(self, process: subprocess.Popen) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self.samples.append(line)

    def _sample_local(self) -> None:
        while not self._stop.is_set():
            ps = subprocess.run(["ps", "-eww", "-o", "args"], capture_output=True, text=True,
                                check=False)
            self.samples.append(ps.stdout)
            time.sleep(0.05)

    def stop(self) -> str:
        self._stop.set()
        for process in self._nodes:
            process.terminate()
            process.wait(timeout=10)
        for thread in [*self._readers, self._local]:
            thread.join(timeout=10)
        return "".join(self.samples)


def test_no_password_in_output_process_lists_or_logs_while_the_deploy_runs(lab: Lab) -> None:
    """Every password changes (the deploy rotates them: ALTER ROLE, .pgpass) and the
    read-only replica is cloned again (pg_basebackup with the new .pgpass), with `ps`
    sampled on every node and on this machine and the deploy's output verbose (-vv: every
    command it runs). Neither the new passwords nor their verifiers appear anywhere, nor
    in the nodes' logs; the new passwords work. Then the lab's passwords come back."""
    new = {key: f"rot-{random.token_urlsafe(16)}" for key in secrets.SECRET_KEYS}
    env = {**LAB_ENV, **{secrets.env_name(k): v for k, v in new.items()}}
    readonly = node_host(lab.node("readonly"))
    readonly.check_output("systemctl stop postgresql@15-main && mv /var/lib/postgresql/15/main "
                          "/var/lib/postgresql/15/main.moved-by-test")
    sampler = Sampler(lab)
    try:
        result = run_pyinfra("-vv", *CLUSTER, env=env)
    finally:
        samples = sampler.stop()
    try:
        assert result.returncode == 0, result.stderr[-3000:]
        assert "pg_basebackup" in samples, "the sampler saw no clone: it sampled nothing useful"
        with connect(lab.node("primary"), "admin", new["admin_password"]) as conn:
            verifiers = [row[0] for row in conn.execute(
                "select rolpassword from pg_authid where rolname in "
                "('admin', 'replicator', 'rewinder', 'app')")]
        assert len(verifiers) == 4 and all(v.startswith("SCRAM-SHA-256$") for v in verifiers)
        logs = "".join(node_host(n).run(
            "cat /var/log/postgresql/*.log /var/log/pgcluster/*.log 2>/dev/null; "
            "journalctl --no-pager -q 2>/dev/null").stdout for n in lab.nodes)
        output = result.stdout + result.stderr
        for label, text in (("pyinfra's output", output), ("ps", samples), ("logs", logs)):
            for secret in [*new.values(), *verifiers]:
                assert secret not in text, f"a password or verifier appears in {label}"
        with connect(lab.node("primary"), "app", new["app_password"]) as conn:
            assert conn.execute("select current_user").fetchone() == ("app",)
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            connect(lab.node("primary"), *APP)  # the old one no longer works
        primary = node_host(lab.node("primary"))
        wait_for(lambda: primary.check_output(
            "runuser -u postgres -- psql -XAtc \"select count(*) from pg_stat_replication "
            "where state = 'streaming'\"") == "2", timeout=90,
            what="the re-cloned replica streaming with the new replication password")
    finally:
        back = run_pyinfra(*CLUSTER, env=LAB_ENV)
        readonly.run("rm -rf /var/lib/postgresql/15/main.moved-by-test")
    assert back.returncode == 0, back.stderr[-3000:]
    with connect(lab.node("primary"), *APP) as conn:
        assert conn.execute("select current_user").fetchone() == ("app",)
    wait_for(lambda: all_streaming(lab), timeout=90, what="replicas streaming again")

