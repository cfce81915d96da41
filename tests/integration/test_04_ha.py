"""Operating the cluster when it matters: status, split brain, failover, fencing, rejoin
with pg_rewind, converging after a failover, switchover and back under a writer.

These tests run in order on a lab of their own (lab/ha.toml) because they change which
node is primary; each states what it expects to find first.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid

import pytest

from pgcluster.control import secrets, tls
from pgcluster.control.writer import Writer, conninfo
from pgcluster.lab.definition import Lab
from tests.conftest import run_pyinfra, totals
from tests.integration.conftest import (
    ADMIN,
    connect,
    lab_ca,
    node_host,
    pgcluster_cli,
    query,
    wait_for,
)


def roles(lab: Lab) -> dict[str, str]:
    result = pgcluster_cli(lab, "status", "--json")
    report = json.loads(result.stdout)
    return {n["name"]: n["role"] for n in report["nodes"]}


def streaming_from(lab: Lab, role_of_primary: str) -> set[str]:
    rows = query(lab.node(role_of_primary),
                 "select application_name from pg_stat_replication where state = 'streaming'")
    return {r[0] for r in rows}


def others(lab: Lab, name: str) -> set[str]:
    return {n.name for n in lab.nodes if n.name != name}


def test_status_reports_roles_lag_and_health(ha_lab: Lab) -> None:
    result = pgcluster_cli(ha_lab, "status", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["healthy"] is True and report["issues"] == []
    assert {n["name"]: n["role"] for n in report["nodes"]} == {
        ha_lab.node("primary").name: "PRIMARY", ha_lab.node("standby").name: "STANDBY",
        ha_lab.node("readonly").name: "READONLY"}
    replicas = {r["application_name"]: r for r in report["replication"]}
    assert set(replicas) == others(ha_lab, ha_lab.node("primary").name)
    for row in replicas.values():
        assert row["state"] == "streaming"
        assert isinstance(row["lag_bytes"], int) and row["lag_bytes"] >= 0
        assert "replay_lag_seconds" in row
    assert report["archiver"]["failing"] is False
    assert all(n["timeline"] == 1 for n in report["nodes"])
    # the certificate on each node is the one the deploy issued on this machine
    issued = secrets.inventory_dir("tls", inventory="docker") / "nodes"
    for n in report["nodes"]:
        cert = tls.load_certs((issued / f"{n['name']}.crt").read_bytes())[0]
        assert n["certificate_expires"] == cert.not_valid_after_utc.isoformat()
        assert n["certificate_days_left"] > 30  # the deploy renews inside tls_renew_days = 30
    assert report["warnings"] == []
    text = pgcluster_cli(ha_lab, "status")
    assert "HEALTHY" in text.stdout and "REPLICA" in text.stdout
    assert "TLS certificates expire in:" in text.stdout


def test_status_is_unhealthy_while_a_replica_is_stopped(ha_lab: Lab) -> None:
    readonly = ha_lab.node("readonly").name
    assert pgcluster_cli(ha_lab, "stop", readonly).returncode == 0
    try:
        result = pgcluster_cli(ha_lab, "status", "--json")
        assert result.returncode == 1
        issues = json.loads(result.stdout)["issues"]
        assert f"{readonly}: PostgreSQL is not running" in issues
        assert any(f"{readonly} is not streaming" in issue for issue in issues)
    finally:
        assert pgcluster_cli(ha_lab, "start", readonly).returncode == 0
    wait_for(lambda: pgcluster_cli(ha_lab, "status").returncode == 0, timeout=60,
             what="healthy again")


def test_split_brain_is_refused_then_resolved_by_stop_and_rejoin(ha_lab: Lab) -> None:
    standby = ha_lab.node("standby")
    # Make a second primary behind the tool's back.
    node_host(standby).check_output("runuser -u postgres -- psql -Atc 'select pg_promote()'")
    wait_for(lambda: not query(standby, "select pg_is_in_recovery()")[0][0], timeout=30,
             what="standby promoted by hand")
    status = pgcluster_cli(ha_lab, "status", "--json")
    assert status.returncode == 1
    assert any("split brain" in i for i in json.loads(status.stdout)["issues"])
    deploy = run_pyinfra("inventory/docker.py", "deploys/cluster.py",
                         env={"PGCLUSTER_LAB": ha_lab.source})
    assert deploy.returncode != 0 and "split brain" in deploy.stderr + deploy.stdout
    for confirmed in ([], ["--yes"]):  # refused by the CLI's check and by the deploy's
        failover = pgcluster_cli(ha_lab, "failover", *confirmed)
        assert failover.returncode != 0 and "split brain" in failover.stderr
    # The way out: stop the impostor, rejoin it (it diverged: pg_rewind).
    assert pgcluster_cli(ha_lab, "stop", standby.name).returncode == 0
    rejoin = pgcluster_cli(ha_lab, "rejoin", standby.name, "--yes")
    assert rejoin.returncode == 0, rejoin.stdout[-3000:] + rejoin.stderr[-3000:]
    assert "pg_rewind" in node_host(standby).check_output("cat /var/log/pgcluster/rejoin.log")
    assert streaming_from(ha_lab, "primary") == others(ha_lab, ha_lab.node("primary").name)


def test_failover_after_losing_the_primary_container(ha_lab: Lab) -> None:
    primary, standby, readonly = (ha_lab.node(r) for r in ("primary", "standby", "readonly"))
    subprocess.run(["docker", "stop", primary.name], check=True, capture_output=True)
    refused_readonly = pgcluster_cli(ha_lab, "failover", "--yes", "--to", readonly.name)
    assert refused_readonly.returncode != 0
    result = pgcluster_cli(ha_lab, "failover", "--yes")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Connection map" in result.stdout
    assert roles(ha_lab)[standby.name] == "PRIMARY"
    # The new primary answers writes on the standby's port; the read-only replica follows.
    marker = f"after-failover-{uuid.uuid4()}"
    with connect(standby) as conn:
        conn.execute("insert into proyecto.logs_replicacion (evento, nodo, detalle) "
                     "values ('test', 'pytest', %s)", (marker,))
    wait_for(lambda: query(readonly, "select 1 from proyecto.logs_replicacion "
                                     "where detalle = %s", (marker,)),
             timeout=15, what="row on the read-only replica")
    events = query(standby, "select evento, nodo from proyecto.logs_replicacion "
                            "where evento = 'failover'")
    assert events == [("failover", standby.name)]
    assert "failover" in node_host(standby).check_output("cat /var/log/pgcluster/events.log")


def test_old_primary_is_fenced_when_its_container_comes_back(ha_lab: Lab) -> None:
    primary = ha_lab.node("primary")
    subprocess.run(["docker", "start", primary.name], check=True, capture_output=True)
    host = node_host(primary)
    wait_for(lambda: "start-guard" in host.check_output(
        "journalctl -u postgresql@15-main --no-pager | tail -20"), timeout=60,
        what="the start guard refusing the old primary")
    assert not host.service("postgresql@15-main").is_running
    assert roles(ha_lab)[primary.name] == "DOWN"


def test_rejoin_old_primary_with_pg_rewind(ha_lab: Lab) -> None:
    primary, standby = ha_lab.node("primary"), ha_lab.node("standby")
    result = pgcluster_cli(ha_lab, "rejoin", primary.name, "--yes")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    log = node_host(primary).check_output("cat /var/log/pgcluster/rejoin.log")
    assert "pg_rewind from the primary" in log and "pg_rewind done" in log
    assert streaming_from(ha_lab, "standby") == others(ha_lab, standby.name)
    report = json.loads(pgcluster_cli(ha_lab, "status", "--json").stdout)
    timeline = {n["name"]: n["timeline"] for n in report["nodes"]}
    assert timeline[primary.name] == timeline[ha_lab.node("readonly").name] == timeline[
        standby.name] > 1


def test_cluster_deploy_after_failover_keeps_the_new_topology(ha_lab: Lab) -> None:
    env = {"PGCLUSTER_LAB": ha_lab.source}
    first = run_pyinfra("inventory/docker.py", "deploys/cluster.py", env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    assert f"the live primary is {ha_lab.node('standby').name}" in first.stderr
    second = run_pyinfra("inventory/docker.py", "deploys/cluster.py", env=env, json_output=True)
    assert second.returncode == 0 and totals(second)["success"] == 0
    assert roles(ha_lab)[ha_lab.node("standby").name] == "PRIMARY"
    assert streaming_from(ha_lab, "standby") == others(ha_lab, ha_lab.node("standby").name)


@pytest.mark.parametrize("target_role", ["primary", "standby"])
def test_switchover_under_a_writer_loses_no_committed_row(ha_lab: Lab, target_role: str) -> None:
    target = ha_lab.node(target_role)
    old = next(n for n in ha_lab.nodes if roles(ha_lab)[n.name] == "PRIMARY")
    assert old != target
    writer = Writer(conninfo([n.published_port for n in ha_lab.nodes], *ADMIN,
                             sslrootcert=lab_ca())).start()
    time.sleep(2)
    started = time.time()
    result = pgcluster_cli(ha_lab, "switchover", "--to", target.name, "--yes")
    time.sleep(2)
    writer.stop()
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert roles(ha_lab)[target.name] == "PRIMARY"
    assert len(writer.acknowledged) > 100
    assert writer.first_ack_after(started, str(target.published_port)), "no write on new primary"
    assert writer.missing() == [], "committed rows lost in a switchover"
    assert streaming_from(ha_lab, target_role) == others(ha_lab, target.name)


def test_synchronous_replication_survives_a_failover(ha_lab: Lab) -> None:
    env = {"PGCLUSTER_LAB": ha_lab.source}
    live = roles(ha_lab)
    primary = next(n for n in ha_lab.nodes if live[n.name] == "PRIMARY")
    other = next(n for n in ha_lab.nodes if n.role != "readonly" and n != primary)
    sync = json.dumps([primary.name, other.name])
    try:
        deploy = run_pyinfra("inventory/docker.py", "deploys/cluster.py", "--data",
                             f"synchronous_standbys={sync}", env=env)
        assert deploy.returncode == 0, deploy.stderr[-3000:]
        states = dict(query(primary, "select application_name, sync_state "
                                     "from pg_stat_replication"))
        assert states[other.name] == "sync"
        subprocess.run(["docker", "kill", primary.name], check=True, capture_output=True)
        result = pgcluster_cli(ha_lab, "failover", "--yes")
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        # Its synchronous standby is gone: suspended, so the new primary takes writes.
        assert query(other, "show synchronous_standby_names") == [("",)]
        with connect(other) as conn:
            conn.execute("insert into proyecto.logs_replicacion (evento, nodo) "
                         "values ('test', 'sync-suspended')")
        subprocess.run(["docker", "start", primary.name], check=True, capture_output=True)
        rejoin = pgcluster_cli(ha_lab, "rejoin", primary.name, "--yes")
        assert rejoin.returncode == 0, rejoin.stdout[-3000:] + rejoin.stderr[-3000:]
        assert query(other, "show synchronous_standby_names") == [(f'FIRST 1 ("{primary.name}")',)]
        wait_for(lambda: dict(query(other, "select application_name, sync_state from "
                                           "pg_stat_replication")).get(primary.name) == "sync",
                 timeout=30, what="the rejoined node back as the synchronous standby")
    finally:
        assert run_pyinfra("inventory/docker.py", "deploys/cluster.py", env=env).returncode == 0
