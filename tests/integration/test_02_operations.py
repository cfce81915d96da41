"""Re-runs, restarts and refusals on the live test lab (after the read-only checks)."""

from __future__ import annotations

import subprocess

from pgcluster.lab.definition import Lab
from pgcluster.lab.docker import inspect
from pgcluster.model.cluster import slot_name
from tests.conftest import run_pyinfra, totals
from tests.integration.conftest import LAB_ENV, all_streaming, node_host, query, wait_for

CLUSTER = ["inventory/docker.py", "deploys/cluster.py"]


def test_second_deploy_reports_zero_changes(lab: Lab) -> None:
    result = run_pyinfra(*CLUSTER, env=LAB_ENV, json_output=True)
    assert result.returncode == 0, result.stderr[-3000:]
    counts = totals(result)
    assert counts["error"] == 0
    assert counts["success"] == 0, f"a re-run changed {counts['success']} operation(s)"
    assert counts["no_change"] > 50  # the run really planned the whole deploy


def test_lab_rerun_leaves_containers_and_volumes_untouched(lab: Lab) -> None:
    before = {name: inspect("container", name)["Id"] for name in lab.containers}
    result = run_pyinfra("@local", "deploys/lab.py", env=LAB_ENV, json_output=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert totals(result)["success"] == 0
    assert {name: inspect("container", name)["Id"] for name in lab.containers} == before


def test_reloadable_change_reloads_without_restart(lab: Lab) -> None:
    started = {n.name: _postmaster_start(lab, n.role) for n in lab.nodes}
    try:
        result = run_pyinfra(*CLUSTER, "--data", "archive_timeout=45", env=LAB_ENV)
        assert result.returncode == 0, result.stderr[-3000:]
        for node in lab.nodes:
            assert query(node, "show archive_timeout") == [("45s",)]
            assert _postmaster_start(lab, node.role) == started[node.name], "restarted"
    finally:
        assert run_pyinfra(*CLUSTER, env=LAB_ENV).returncode == 0
    assert query(lab.node("primary"), "show archive_timeout") == [("1min",)]


def test_restart_only_change_restarts_and_replication_recovers(lab: Lab) -> None:
    started = {n.name: _postmaster_start(lab, n.role) for n in lab.nodes}
    try:
        result = run_pyinfra(*CLUSTER, "--data", "shared_buffers=96MB", env=LAB_ENV)
        assert result.returncode == 0, result.stderr[-3000:]
        for node in lab.nodes:
            assert query(node, "show shared_buffers") == [("96MB",)]
            assert _postmaster_start(lab, node.role) != started[node.name], "not restarted"
    finally:
        assert run_pyinfra(*CLUSTER, env=LAB_ENV).returncode == 0
    wait_for(lambda: all_streaming(lab), timeout=60, what="replicas streaming again")


def test_docker_restart_of_a_replica_comes_back_streaming(lab: Lab) -> None:
    subprocess.run(["docker", "restart", lab.node("standby").name], check=True,
                   capture_output=True)
    wait_for(lambda: all_streaming(lab), timeout=90, what="standby streaming after restart")


def test_docker_restart_of_the_primary_comes_back_and_replicas_reconnect(lab: Lab) -> None:
    subprocess.run(["docker", "restart", lab.node("primary").name], check=True,
                   capture_output=True)
    wait_for(lambda: query(lab.node("primary"), "select not pg_is_in_recovery()")[0][0],
             timeout=90, what="primary serving after restart")
    wait_for(lambda: all_streaming(lab), timeout=90, what="replicas streaming again")


def test_clone_refuses_a_running_server(lab: Lab) -> None:
    host = node_host(lab.node("standby"))
    conninfo = f"host={lab.node('primary').address} port=5432 user=replicator"
    slot = slot_name(lab.node("standby").name)
    result = host.run(f"/usr/local/lib/pgcluster/clone-replica '{conninfo}' {slot}")
    assert result.rc == 2
    assert "refusing" in result.stderr and "running server" in result.stderr
    assert host.file("/var/lib/postgresql/15/main/PG_VERSION").exists
    wait_for(lambda: all_streaming(lab), timeout=30, what="standby still streaming")


def test_missing_password_stops_before_any_host_is_touched(lab: Lab) -> None:
    result = run_pyinfra(*CLUSTER, env={**LAB_ENV, "PGCLUSTER_REPLICATION_PASSWORD": ""})
    assert result.returncode != 0
    output = result.stderr + result.stdout
    assert "replication_password is not set" in output
    assert "PGCLUSTER_REPLICATION_PASSWORD" in output
    assert "Connecting to hosts" not in output


def test_stopped_lab_container_is_refused_then_started_by_the_lab_deploy(lab: Lab) -> None:
    name = lab.node("readonly").name
    subprocess.run(["docker", "stop", name], check=True, capture_output=True)
    try:
        result = run_pyinfra(*CLUSTER, env=LAB_ENV)
        assert result.returncode != 0
        output = result.stderr + result.stdout
        assert f"lab container {name} is exited, not running" in output
        assert f"PGCLUSTER_LAB={lab.name} pyinfra -y @local deploys/lab.py" in output
        assert "Connecting to hosts" not in output
        assert inspect("container", name) is not None, "the container must never be removed"
    finally:
        started = run_pyinfra("@local", "deploys/lab.py", env=LAB_ENV)
    assert started.returncode == 0, started.stderr[-3000:]
    assert inspect("container", name)["State"]["Running"]
    wait_for(lambda: all_streaming(lab), timeout=90, what="read-only replica streaming again")


def _postmaster_start(lab: Lab, role: str) -> str:
    return str(query(lab.node(role), "select pg_postmaster_start_time()")[0][0])
