"""Operating the cluster when it matters: status, split brain, failover, fencing, rejoin
with pg_rewind, converging after a failover, switchover and back under a writer.

These tests run in order on a lab of their own (lab/ha.toml) because they change which
node is primary; each states what it expects to find first.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
import uuid

import pytest

from pgcluster.control import secrets, tls
from pgcluster.control.writer import Writer, conninfo
from pgcluster.lab.definition import Lab, LabNode
from pgcluster.model.lock import LOCK_FILE, new_record
from tests.conftest import REPO, run_pyinfra, totals
from tests.integration.conftest import (
    ADMIN,
    connect,
    endpoint_writer,
    lab_ca,
    node_host,
    pgcluster_cli,
    query,
    wait_for,
    writes_again,
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


def env_of(lab: Lab, **extra: str) -> dict[str, str]:
    return {"PGCLUSTER_LAB": lab.source, **extra}


def healthy(lab: Lab) -> None:
    wait_for(lambda: pgcluster_cli(lab, "status").returncode == 0, timeout=90,
             what="a healthy cluster")


SHIM = "/usr/local/sbin/systemctl"  # before /usr/bin on PATH: what the deploy's commands run


def shim_systemctl(node, stop: str) -> None:
    """Make `systemctl stop postgresql@...` on a node fail (stop=fail) or do nothing while
    saying it worked (stop=pretend): a fence or a clean stop that does not happen."""
    action = 'echo "shim: stop refused" >&2; exit 1' if stop == "fail" else "exit 0"
    script = ("#!/bin/sh\n"
              f'case "$*" in *stop*postgresql@*) {action};; esac\n'
              'exec /usr/bin/systemctl "$@"\n')
    node_host(node).check_output(f"printf %s {shlex.quote(script)} > {SHIM} && chmod 755 {SHIM}")


def lock_files(lab: Lab) -> dict[str, str]:
    found = {}
    for node in lab.nodes:
        text = node_host(node).run(f"cat {LOCK_FILE}").stdout
        if text:
            found[node.name] = text
    return found


def accepting_writes(lab: Lab) -> list[str]:
    """Nodes whose server runs and is not in recovery, asked on each node itself."""
    names = []
    for node in lab.nodes:
        out = node_host(node).run("runuser -u postgres -- psql -XAtc 'select pg_is_in_recovery()'")
        if out.rc == 0 and out.stdout.strip() == "f":
            names.append(node.name)
    return names


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


def test_an_unknown_node_is_a_plain_error(ha_lab: Lab) -> None:
    result = pgcluster_cli(ha_lab, "logs", "no-such-node")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "no node named 'no-such-node'; known nodes:" in result.stderr


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


# ------------------------------------------------------------------------ fail closed


def test_a_primary_that_is_only_unreachable_is_not_failed_over(ha_lab: Lab) -> None:
    """The control machine cannot reach the primary (here: left out with --limit) but the
    replicas still stream from it: promoting would make two primaries."""
    primary, standby, readonly = (ha_lab.node(r) for r in ("primary", "standby", "readonly"))
    for force in ([], ["--data", "force=yes"]):
        result = run_pyinfra("inventory/docker.py", "deploys/failover.py", *force,
                             "--limit", f"@lab/{standby.name}", "--limit",
                             f"@lab/{readonly.name}", env=env_of(ha_lab))
        assert result.returncode != 0
        assert f"still stream WAL from {primary.name}" in result.stderr, result.stderr[-2000:]
    assert accepting_writes(ha_lab) == [primary.name]
    assert lock_files(ha_lab) == {}


def test_a_failed_fence_never_ends_in_a_promotion(ha_lab: Lab) -> None:
    primary = ha_lab.node("primary")
    shim_systemctl(primary, stop="fail")
    try:
        result = pgcluster_cli(ha_lab, "failover", "--force", "--yes")
    finally:
        node_host(primary).check_output(f"rm -f {SHIM}")
    assert result.returncode != 0
    assert "Failover FAILED" in result.stderr and "Full log: state/docker/logs/" in result.stderr
    assert accepting_writes(ha_lab) == [primary.name], "a standby was promoted"
    assert roles(ha_lab)[ha_lab.node("standby").name] == "STANDBY"
    assert lock_files(ha_lab) == {}, "a failed run keeps the operation lock"


def test_a_switchover_never_promotes_while_the_old_primary_runs(ha_lab: Lab) -> None:
    primary, standby = ha_lab.node("primary"), ha_lab.node("standby")
    shim_systemctl(primary, stop="pretend")
    try:
        result = pgcluster_cli(ha_lab, "switchover", "--to", standby.name, "--yes")
    finally:
        node_host(primary).check_output(f"rm -f {SHIM}")
    assert result.returncode != 0
    assert f"@lab/{primary.name} is still running" in result.stderr, result.stderr[-3000:]
    assert accepting_writes(ha_lab) == [primary.name]
    assert lock_files(ha_lab) == {}
    healthy(ha_lab)


def test_one_change_at_a_time(ha_lab: Lab) -> None:
    readonly = ha_lab.node("readonly")
    # Another operator's run holds the lock (written as that run would write it).
    other = new_record("ana@other-laptop", 4242, "pgcluster switchover --to x", "not-ours")
    node_host(readonly).check_output(
        f"install -d /var/lib/pgcluster && printf %s {shlex.quote(other.to_text())} "
        f"> {LOCK_FILE}")
    refused = pgcluster_cli(ha_lab, "stop", readonly.name)
    assert refused.returncode != 0
    assert (f"{'@lab/' + readonly.name} holds the operation lock of `pgcluster switchover "
            "--to x` by ana@other-laptop (pid 4242)") in refused.stderr, refused.stderr[-2000:]
    assert roles(ha_lab)[readonly.name] == "READONLY"
    status = pgcluster_cli(ha_lab, "status")
    assert f"operation lock held on {readonly.name}: `pgcluster switchover --to x`" \
        in status.stdout, status.stdout[-2000:]
    broken = pgcluster_cli(ha_lab, "start", readonly.name, "--break-lock")
    assert broken.returncode == 0, broken.stderr[-2000:]
    assert lock_files(ha_lab) == {}
    # While a run holds it (a cluster deploy), a second one is refused with who holds it.
    deploy = subprocess.Popen(
        [sys.executable, "-m", "pyinfra", "-y", "inventory/docker.py", "deploys/cluster.py"],
        cwd=REPO, env={**os.environ, "PYINFRA_PROGRESS": "off", **env_of(ha_lab)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        held = wait_for(lambda: lock_files(ha_lab), timeout=120, interval=0.1,
                        what="the cluster deploy holding the lock")
        assert all("command=cluster deploy" in text or "deploys/cluster.py" in text
                   for text in held.values()), held
        second = pgcluster_cli(ha_lab, "stop", readonly.name)
        assert second.returncode != 0 and "the cluster is busy" in second.stderr
    finally:
        _, err = deploy.communicate(timeout=600)
    assert deploy.returncode == 0, err[-3000:]
    assert lock_files(ha_lab) == {}
    assert roles(ha_lab)[readonly.name] == "READONLY"


def test_no_empty_primary_over_the_clusters_data(ha_lab: Lab) -> None:
    primary = ha_lab.node("primary")
    host = node_host(primary)
    host.check_output("systemctl stop postgresql@15-main && "
                      "mv /var/lib/postgresql/15/main /var/lib/postgresql/15/main.test-aside")
    try:
        result = run_pyinfra("inventory/docker.py", "deploys/cluster.py", env=env_of(ha_lab))
        assert result.returncode != 0
        assert "never creates an empty primary" in result.stderr, result.stderr[-3000:]
        assert "pgcluster failover --to" in result.stderr
        assert not host.file("/var/lib/postgresql/15/main/PG_VERSION").exists, "initdb ran"
    finally:
        host.check_output("rm -rf /var/lib/postgresql/15/main && mv "
                          "/var/lib/postgresql/15/main.test-aside /var/lib/postgresql/15/main "
                          "&& systemctl start postgresql@15-main")
    healthy(ha_lab)


def heard_nothing_for(node: LabNode, seconds: float) -> bool:
    """The node's WAL receiver has had no message for `seconds`, or has given up."""
    rows = query(node, "select extract(epoch from now() - last_msg_receipt_time), status "
                       "from pg_stat_wal_receiver")
    return not rows or rows[0][1] != "streaming" or float(rows[0][0]) > seconds


def receiver_timeout(node: LabNode, seconds: int | None, expected_ms: int = 0) -> int:
    """Set wal_receiver_timeout on a replica (None: reset it to the deploy's value, which
    is expected_ms), wait until its server runs with it, and return the value it had."""
    def current() -> int:
        return query(node, "select setting::int from pg_settings "
                           "where name = 'wal_receiver_timeout'")[0][0]

    before = current()
    with connect(node) as conn:
        if seconds is None:
            conn.execute("alter system reset wal_receiver_timeout")
        else:
            conn.execute(f"alter system set wal_receiver_timeout = '{int(seconds)}s'")
            expected_ms = seconds * 1000
        conn.execute("select pg_reload_conf()")
    wait_for(lambda: current() == expected_ms, timeout=10,
             what=f"wal_receiver_timeout {expected_ms} ms on {node.name}")
    return before


def test_a_target_behind_the_rest_of_the_cluster_is_refused_without_force(ha_lab: Lab) -> None:
    """The standby loses its network while the primary goes on writing (the read-only
    replica receives it), then the primary dies (killed: no last segment reaches the
    archive, from which the standby would catch up): the standby lags, and stopped
    receiving WAL seconds before the cluster did."""
    primary, standby, readonly = (ha_lab.node(r) for r in ("primary", "standby", "readonly"))
    # The refusal holds while the read-only replica's silence is within half its
    # wal_receiver_timeout plus a margin (7.5 + 5 s with the lab's 15 s). On a busy machine
    # the failover command alone can take longer than that to gather its facts, so the
    # replica waits 120 s for the duration of that one check.
    deployed_timeout = receiver_timeout(readonly, 120)
    docker = ["docker", "network"]
    subprocess.run([*docker, "disconnect", ha_lab.network, standby.name], check=True)
    try:
        time.sleep(3)
        with connect(primary) as conn:
            conn.execute("create table if not exists public.lag_check (id int)")
            conn.execute("insert into public.lag_check select generate_series(1, 5000)")
        time.sleep(1)
        # Powered off: its network goes first, so no FIN reaches the replicas (a process
        # killed on a live kernel has its connections closed; a dead machine has not).
        subprocess.run([*docker, "disconnect", ha_lab.network, primary.name], check=True)
        subprocess.run(["docker", "kill", primary.name], check=True, capture_output=True)
    finally:
        subprocess.run([*docker, "connect", "--ip", standby.address, ha_lab.network,
                        standby.name], check=True)
    try:
        # A killed primary closes no connection: until its replicas have heard nothing for
        # longer than a live primary allows (half of wal_receiver_timeout, then a margin),
        # their streams count as proof that it lives, and the failover is refused.
        try:
            refused = pgcluster_cli(ha_lab, "failover", "--yes")
        finally:
            receiver_timeout(readonly, None, deployed_timeout)
        assert refused.returncode != 0 and "still stream" in refused.stdout + refused.stderr, \
            refused.stdout[-2000:] + refused.stderr[-2000:]
        wait_for(lambda: all(heard_nothing_for(n, 13) for n in (standby, readonly)),
                 timeout=45, interval=1, what="the replicas to hear nothing from the primary")
        env = env_of(ha_lab, PGCLUSTER_ALLOW_DOWN="1")
        lag = run_pyinfra("inventory/docker.py", "deploys/failover.py", "--data",
                          "failover_max_lag_bytes=0", env=env)
        assert lag.returncode != 0
        assert f"{standby.name} has WAL up to" in lag.stderr, lag.stderr[-3000:]
        assert "bytes behind the furthest known position" in lag.stderr
        assert f"({readonly.name})" in lag.stderr and "failover_max_lag_bytes = 0" in lag.stderr
        stale = run_pyinfra("inventory/docker.py", "deploys/failover.py", "--data",
                            "failover_max_receive_age=1", env=env)
        assert stale.returncode != 0
        assert "failover_max_receive_age = 1s" in stale.stderr, stale.stderr[-3000:]
        assert roles(ha_lab)[standby.name] == "STANDBY"
    finally:
        if ha_lab.network not in subprocess.run(
                ["docker", "inspect", "-f", "{{range $n, $_ := .NetworkSettings.Networks}}"
                 "{{$n}} {{end}}", primary.name], capture_output=True, text=True).stdout.split():
            subprocess.run([*docker, "connect", "--ip", primary.address, ha_lab.network,
                            primary.name], check=True)
        subprocess.run(["docker", "start", primary.name], check=True, capture_output=True)
    healthy(ha_lab)


def test_failover_after_losing_the_primary_container(ha_lab: Lab) -> None:
    primary, standby, readonly = (ha_lab.node(r) for r in ("primary", "standby", "readonly"))
    # An application that knows only the proxy's read-write endpoint, reconnecting on error.
    application = endpoint_writer(ha_lab, primary, table="proyecto.failover_endpoint")
    wait_for(lambda: len(application.acknowledged) > 10, timeout=30, what="writes through 5000")
    stopped = time.time()
    subprocess.run(["docker", "stop", primary.name], check=True, capture_output=True)
    try:
        refused_readonly = pgcluster_cli(ha_lab, "failover", "--yes", "--to", readonly.name)
        assert refused_readonly.returncode != 0
        result = pgcluster_cli(ha_lab, "failover", "--yes")
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        promoted = time.time()
        writes_again(application, after=promoted)
    finally:
        application.stop()
    # docker stop is a clean shutdown: the old primary sent all its WAL before it went.
    assert application.missing() == [], "acknowledged commits lost through the endpoint"
    outage = application.outage_after(stopped)
    assert outage is not None and outage[1] > stopped
    print(f"read-write endpoint: writes again {outage[1] - stopped:.1f}s after docker stop "
          f"(the failover command included)")
    # The operator reads the result, not pyinfra's log: what was done, how far behind the
    # promoted node was, the topology now, and where the whole log is.
    assert result.stdout.startswith("Failover done in "), result.stdout[:2000]
    assert f"{standby.name} has WAL up to" in result.stdout
    assert f"now: {standby.name} is the primary (timeline 2); streaming from it: " \
           f"{readonly.name}" in result.stdout
    log = REPO / result.stdout.split("log: ", 1)[1].split()[0]
    assert "Promote" in log.read_text() and "--> Starting operation" not in result.stdout
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
    events = query(standby, "select evento, nodo, detalle from proyecto.logs_replicacion "
                            "where evento = 'failover'")
    assert [(e, n) for e, n, _ in events] == [("failover", standby.name)]
    assert "bytes behind the furthest known position" in events[0][2]  # recorded too
    assert "failover" in node_host(standby).check_output("cat /var/log/pgcluster/events.log")


def test_backup_and_restore_work_while_a_lab_node_is_stopped(ha_lab: Lab) -> None:
    """Right after a failover the old primary's container is down."""
    assert subprocess.run(["docker", "inspect", "-f", "{{.State.Running}}",
                           ha_lab.node("primary").name], capture_output=True,
                          text=True).stdout.strip() == "false"
    backup = pgcluster_cli(ha_lab, "backup", "full")
    assert backup.returncode == 0, backup.stdout[-3000:] + backup.stderr[-3000:]
    assert backup.stdout.startswith("backup full done in ") and "done: full/" in backup.stdout
    listing = pgcluster_cli(ha_lab, "backup", "list", "--json")
    assert listing.stdout and json.loads(listing.stdout)["primary"] == ha_lab.node("standby").name
    restore = pgcluster_cli(ha_lab, "restore", "--node", ha_lab.node("readonly").name, "--yes")
    # Refused for a good reason (another node runs as primary), not for the stopped node.
    assert restore.returncode != 0 and "would be a second primary" in restore.stderr, \
        restore.stderr[-2000:]


def test_old_primary_is_fenced_when_its_container_comes_back(ha_lab: Lab) -> None:
    primary = ha_lab.node("primary")
    subprocess.run(["docker", "start", primary.name], check=True, capture_output=True)
    host = node_host(primary)
    wait_for(lambda: "start-guard" in host.check_output(
        "journalctl -u postgresql@15-main --no-pager | tail -20"), timeout=60,
        what="the start guard refusing the old primary")
    assert not host.service("postgresql@15-main").is_running
    assert roles(ha_lab)[primary.name] == "DOWN"


def test_restarting_every_node_at_once_never_gives_two_primaries(ha_lab: Lab) -> None:
    """The old primary (stopped by its guard) and the new one reboot at the same moment,
    with the read-only replica: whoever answers first, only the new primary takes writes."""
    subprocess.run(["docker", "restart", *(n.name for n in ha_lab.nodes)], check=True,
                   capture_output=True)
    seen: set[str] = set()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        writers = accepting_writes(ha_lab)
        assert len(writers) <= 1, f"two primaries accept writes: {writers}"
        seen.update(writers)
        if writers and roles(ha_lab).get(ha_lab.node("readonly").name) == "READONLY":
            break
        time.sleep(0.5)
    time.sleep(5)  # the old primary's guard has had its chance to (wrongly) let it start
    assert accepting_writes(ha_lab) == [ha_lab.node("standby").name] and seen == {
        ha_lab.node("standby").name}
    assert roles(ha_lab)[ha_lab.node("primary").name] == "DOWN"


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
    # Beside it, an application that knows only the proxy's read-write endpoint.
    application = endpoint_writer(ha_lab, old, table="proyecto.switchover_endpoint")
    time.sleep(2)
    started = time.time()
    result = pgcluster_cli(ha_lab, "switchover", "--to", target.name, "--yes")
    try:
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        done = time.time()
        writes_again(application, after=done)
        time.sleep(1)
    finally:
        writer.stop()
        application.stop()
    assert roles(ha_lab)[target.name] == "PRIMARY"
    assert len(writer.acknowledged) > 100
    assert writer.first_ack_after(started, str(target.published_port)), "no write on new primary"
    assert writer.missing() == [], "committed rows lost in a switchover"
    assert application.missing() == [], "committed rows lost through the endpoint"
    outage = application.outage_after(started)
    assert outage is not None
    print(f"read-write endpoint across the switchover: longest gap "
          f"{outage[1] - outage[0]:.1f}s")
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
        # An application of the read-write endpoint: with a synchronous standby, nothing it
        # was told committed may be lost.
        application = endpoint_writer(ha_lab, primary, table="proyecto.sync_endpoint")
        time.sleep(2)
        subprocess.run(["docker", "kill", primary.name], check=True, capture_output=True)
        try:
            result = pgcluster_cli(ha_lab, "failover", "--yes")
            assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
            promoted = time.time()
            writes_again(application, after=promoted)
        finally:
            application.stop()
        assert application.missing() == [], "acknowledged commits lost through the endpoint"
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
