"""More faults the Patroni engine must survive, on the Patroni lab (lab/patroni.toml: the
one test_08 took over in place when it ran first, else a fresh one),
each under a writer that records every acknowledged commit (libpq multi-host string,
target_session_attrs=read-write, reconnecting on error):

- the leader's container stopped (docker stop): Patroni hands over at once, nothing lost;
- the leader cut off the network: it stops accepting writes before the other takes over (a
  writer inside it, on its local socket, proves no write is acknowledged on both sides),
  and back on the network it rejoins as a replica by pg_rewind;
- etcd's quorum lost: nothing is promoted, the leader keeps writing (failsafe_mode);
- a failover with synchronous_mode on: no acknowledged commit lost;
- `pgcluster drill all`: failover, switchovers and a restore drill pass under Patroni;
- an in-place restore to a time: refused while Patroni runs; after `pgcluster stop` the
  leader goes back in time and leads, and `pgcluster start` brings the others back.

The read-only replica is never promoted; a deploy afterwards changes nothing. The tests
share the lab and run in order; each finds the leader it left.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pgcluster.control.writer import TABLE, Writer, conninfo
from pgcluster.lab.definition import Lab, LabNode
from tests.conftest import changed, run_pyinfra
from tests.integration.conftest import (
    ADMIN,
    built_lab,
    connect,
    endpoint_writer,
    lab_ca,
    node_host,
    pgcluster_cli,
    query,
    wait_for,
    writes_again,
)
from tests.integration.test_07_patroni import healthy, in_recovery, members, writer
from tests.integration.test_13_drills import DURATION, check_leg, drill, report, report_json

LAB = "patroni"
ENV = {"PGCLUSTER_LAB": LAB}
CLUSTER = ["inventory/docker.py", "deploys/cluster.py"]
TTL = 20  # group_data's patroni_ttl


@pytest.fixture(scope="module")
def patroni_lab() -> Iterator[Lab]:
    # The lab test_08 took over from the manual engine, when it ran in this session: a
    # Patroni cluster like a bootstrapped one (test_07 proves that one), at rest.
    yield from built_lab(LAB, handed_over=True)


def roles(lab: Lab) -> tuple[LabNode, LabNode, LabNode]:
    """(the leader, the other promotable node, the read-only replica), as they are now."""
    view = members(lab)
    leader = next(n for n in lab.nodes if n.name == view.leader)
    readonly = lab.node("readonly")
    other = next(n for n in lab.nodes if n not in (leader, readonly))
    return leader, other, readonly


def a_writer(lab: Lab) -> Writer:
    return Writer(conninfo([n.published_port for n in lab.nodes], *ADMIN,
                           sslrootcert=lab_ca())).start()


def first_write_on(node: LabNode) -> float | None:
    """When the first row the writer committed on `node` was inserted (epoch seconds; its
    commit came later)."""
    rows = query(node, f"select extract(epoch from min(at))::float8 from {TABLE} "
                       "where split_part(written_on, '/', 1) = %s", (node.address,))
    return rows[0][0]


def test_a_stopped_leader_hands_over_at_once_losing_nothing(patroni_lab: Lab) -> None:
    leader, other, readonly = roles(patroni_lab)
    client = a_writer(patroni_lab)
    # And an application that knows only the proxy's read-write endpoint.
    application = endpoint_writer(patroni_lab, leader, table="proyecto.stop_endpoint")
    time.sleep(2)
    stopped = time.time()
    # systemd stops Patroni, which stops PostgreSQL (its WAL reaches the replicas first) and
    # gives the leader key up: no ttl to wait for.
    subprocess.run(["docker", "stop", "-t", "60", leader.name], check=True, capture_output=True)
    try:
        wait_for(lambda: not in_recovery(other), timeout=60, interval=0.5,
                 what=f"{other.name} promoted")
        promoted = time.time()
        writes_again(application, after=promoted)
        time.sleep(1)
    finally:
        client.stop()
        application.stop()
    first = client.first_ack_after(stopped, str(other.published_port))
    assert first is not None, f"no write acknowledged on {other.name}"
    assert client.missing() == [], "acknowledged commits lost on a graceful stop"
    assert application.missing() == [], "acknowledged commits lost through the endpoint"
    assert in_recovery(readonly), "the read-only replica was promoted"
    print(f"leader stopped: first write on {other.name} {first - stopped:.1f}s after docker stop")
    subprocess.run(["docker", "start", leader.name], check=True, capture_output=True)
    wait_for(lambda: healthy(patroni_lab, other.name), timeout=120, interval=1,
             what=f"{leader.name} back as a replica")
    assert writer(patroni_lab) == other


LOCAL_WRITER = """
end=$((SECONDS + {seconds}))
while [ "$SECONDS" -lt "$end" ]; do
    if PGOPTIONS='-c statement_timeout=2000' runuser -u postgres -- psql -XAtq -d proyecto_db \
        -c "insert into proyecto.partition_drill (note) values ('local')" >/dev/null 2>&1
    then date +%s.%N >> /tmp/partition-acks
    fi
    sleep 0.05
done
"""


def test_a_partitioned_leader_stops_writing_before_another_takes_over(patroni_lab: Lab) -> None:
    leader, other, readonly = roles(patroni_lab)
    with connect(leader) as conn:
        conn.execute("create table if not exists proyecto.partition_drill "
                     "(id bigserial primary key, note text)")
    host = node_host(leader)
    host.run("rm -f /tmp/partition-acks")
    client = a_writer(patroni_lab)
    # An application that knows only the read-write endpoint: HAProxy loses the cut-off
    # leader's checks, cuts its sessions and sends the client to the new leader.
    application = endpoint_writer(patroni_lab, leader, table="proyecto.partition_endpoint")
    subprocess.run(["docker", "exec", "-d", leader.name, "bash", "-c",
                    LOCAL_WRITER.format(seconds=TTL + 45)], check=True)
    time.sleep(2)
    cut = time.time()
    subprocess.run(["docker", "network", "disconnect", patroni_lab.network, leader.name],
                   check=True, capture_output=True)
    try:
        wait_for(lambda: not in_recovery(other), timeout=TTL + 40, interval=0.5,
                 what=f"{other.name} promoted")
        took = time.time() - cut
        promoted = time.time()
        writes_again(application, after=promoted)
        time.sleep(5)
        client.stop()
        application.stop()
        assert in_recovery(readonly), "the read-only replica was promoted"
        acks = [float(t) for t in host.check_output("cat /tmp/partition-acks").split()]
        after_cut = [t for t in acks if t > cut]
        assert after_cut, "the local writer acknowledged nothing after the cut: it proves nothing"
        first_new = first_write_on(other)
        assert first_new is not None, f"no write committed on {other.name}"
        # The old leader's last acknowledged write came before the new leader's first one.
        assert max(after_cut) < first_new, (
            f"{leader.name} acknowledged a write {max(after_cut) - first_new:.2f}s after "
            f"{other.name} took its first: two primaries")
        print(f"partition: {leader.name} stopped writing {max(after_cut) - cut:.1f}s after the "
              f"cut, {other.name} writable after {took:.1f}s")
    finally:
        client.stop()
        application.stop()
        back = subprocess.run(["docker", "network", "connect", "--ip", leader.address,
                               patroni_lab.network, leader.name], check=False,
                              capture_output=True, text=True)
        if back.returncode != 0:
            # Docker 20.10 may leave the old interface in the container ("conflicts with
            # existing route"): half back, without its published port. A restart rebuilds it.
            print(f"network connect failed ({back.stderr.strip()}); restarting {leader.name}")
            subprocess.run(["docker", "restart", "-t", "10", leader.name], check=True,
                           capture_output=True)
    # Back on the network it follows the new leader; its writes after the cut were never
    # replicated, so its timeline diverged: Patroni rewinds it.
    wait_for(lambda: healthy(patroni_lab, other.name), timeout=180, interval=1,
             what=f"{leader.name} rejoined as a replica")
    assert "pg_rewind" in host.check_output("journalctl --no-pager -q -u patroni"), \
        f"{leader.name} rejoined without pg_rewind"
    assert writer(patroni_lab) == other
    assert in_recovery(leader)


def test_etcd_quorum_lost_promotes_nothing_and_the_leader_keeps_writing(
        patroni_lab: Lab) -> None:
    """failsafe_mode (group_data's default): without the DCS the leader stays primary while
    every member's Patroni answers it; no replica can take a leader key."""
    leader, other, readonly = roles(patroni_lab)
    for node in (other, readonly):
        node_host(node).run("systemctl stop etcd")
    try:
        time.sleep(TTL + 10)
        assert writer(patroni_lab) == leader, "the writer changed without a DCS"
        with connect(leader) as conn:
            conn.execute("insert into proyecto.partition_drill (note) values ('no quorum')")
        assert in_recovery(other) and in_recovery(readonly)
    finally:
        for node in (other, readonly):
            node_host(node).run("systemctl start etcd")
    wait_for(lambda: healthy(patroni_lab, leader.name), timeout=90, interval=1,
             what="every member back with the quorum")
    assert writer(patroni_lab) == leader


def sync_standby(lab: Lab) -> str | None:
    out = node_host(lab.node("readonly")).check_output(
        "patronictl -c /etc/patroni/config.yml list -f json")
    return next((m["Member"] for m in json.loads(out) if m["Role"] == "Sync Standby"), None)


def test_a_failover_with_synchronous_mode_loses_no_acknowledged_commit(
        patroni_lab: Lab) -> None:
    leader, other, readonly = roles(patroni_lab)
    sync = json.dumps([leader.name, other.name])
    result = run_pyinfra(*CLUSTER, "--data", f"synchronous_standbys={sync}", env=ENV)
    assert result.returncode == 0, result.stderr[-3000:]
    wait_for(lambda: sync_standby(patroni_lab) == other.name, timeout=60,
             what=f"{other.name} the synchronous standby")
    client = a_writer(patroni_lab)
    application = endpoint_writer(patroni_lab, leader, table="proyecto.sync_endpoint")
    time.sleep(3)
    killed = time.time()
    subprocess.run(["docker", "kill", leader.name], check=True, capture_output=True)
    try:
        wait_for(lambda: not in_recovery(other), timeout=TTL + 40, interval=0.5,
                 what=f"{other.name} promoted")
        promoted = time.time()
        writes_again(application, after=promoted)
        time.sleep(1)
    finally:
        client.stop()
        application.stop()
    assert len(client.acknowledged) > 50
    assert client.missing() == [], "acknowledged commits lost with synchronous_mode"
    assert application.missing() == [], "acknowledged commits lost through the endpoint"
    assert in_recovery(readonly), "the read-only replica was promoted"
    first = client.first_ack_after(killed, str(other.published_port))
    print(f"sync failover: first write on {other.name} "
          f"{(first - killed) if first else float('nan'):.1f}s after the kill")
    subprocess.run(["docker", "start", leader.name], check=True, capture_output=True)
    wait_for(lambda: healthy(patroni_lab, other.name), timeout=120, interval=1,
             what=f"{leader.name} back as a replica")
    # Back to group_data's asynchronous replication; then a re-run changes nothing.
    back = run_pyinfra(*CLUSTER, env=ENV)
    assert back.returncode == 0, back.stderr[-3000:]
    wait_for(lambda: sync_standby(patroni_lab) is None, timeout=60, what="synchronous_mode off")


def test_every_drill_passes_under_patroni_and_reports_what_the_test_counts(
        patroni_lab: Lab, tmp_path: Path) -> None:
    """`pgcluster drill all`: switchovers there and back through Patroni, a failover with
    Patroni promoting by itself (the drill stops the leader's container, then starts it
    again and Patroni rejoins it), and a restore drill onto the scratch node; the writer
    goes through the proxy's read-write port. The failover leg's rows are counted here."""
    _, other, readonly = roles(patroni_lab)
    result, before, after = drill(patroni_lab, tmp_path, "all", "--duration", DURATION)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-3000:]
    failover = report(tmp_path, "failover")
    there = report(tmp_path, "switchover")
    back = report(tmp_path / "switchover-back", "switchover")
    restored = report_json(tmp_path)
    for data in (failover, there, back, restored):
        assert data["passed"], data["reasons"]
    assert failover["figures"]["lost"] == [] and failover["figures"]["commits"] > 100
    # Patroni chose the other promotable node; the read-only replica was never promoted.
    assert in_recovery(readonly)
    now, _, _ = roles(patroni_lab)
    assert now == other, f"{now.name} leads after the failover and the switchovers"
    # `all` runs the switchover (there and back) first: the failover's rows are the last.
    assert before < there["events"]["fault"]["epoch"] < back["events"]["fault"]["epoch"]
    check_leg(failover, now, back["events"]["end"]["epoch"], after)
    assert restored["figures"]["differing_tables"] == []
    assert restored["figures"]["tables_compared"] > 0
    wait_for(lambda: healthy(patroni_lab, now.name), timeout=120, interval=1,
             what="every member streaming after the drills")


def test_an_in_place_restore_takes_the_cluster_back_and_the_others_rejoin(
        patroni_lab: Lab) -> None:
    """Refused while Patroni runs; after `pgcluster stop`, the leader is restored to a time
    (its rows then, not after), leads a new history, and `pgcluster start` brings the
    others back as its replicas (pg_rewind onto the restored timeline)."""
    leader, other, readonly = roles(patroni_lab)
    backup = pgcluster_cli(patroni_lab, "backup", "full")
    assert backup.returncode == 0, backup.stdout[-2000:] + backup.stderr[-2000:]
    with connect(leader) as conn:
        conn.execute("create table restore_drill (id int primary key, note text)")
        conn.execute("insert into restore_drill values (1, 'before the target')")
        time.sleep(1.5)
        target = conn.execute("select now()").fetchone()[0].isoformat()
        time.sleep(1.5)
        conn.execute("insert into restore_drill values (2, 'after the target')")
        conn.execute("select pg_switch_wal()")
    time.sleep(3)  # the segment with the commit after the target archived
    refused = pgcluster_cli(patroni_lab, "restore", "--node", leader.name, "--time", target,
                            "--yes")
    assert refused.returncode != 0 and "Patroni runs on" in refused.stdout + refused.stderr
    assert writer(patroni_lab) == leader  # nothing was touched
    stopped = pgcluster_cli(patroni_lab, "stop")
    assert stopped.returncode == 0, stopped.stdout[-2000:] + stopped.stderr[-2000:]
    restored = pgcluster_cli(patroni_lab, "restore", "--node", leader.name, "--time", target,
                             "--yes")
    assert restored.returncode == 0, restored.stdout[-3000:] + restored.stderr[-3000:]
    assert members(patroni_lab, on=leader).leader == leader.name
    assert query(leader, "select id from restore_drill order by id") == [(1,)]
    started = pgcluster_cli(patroni_lab, "start")
    assert started.returncode == 0, started.stdout[-3000:] + started.stderr[-3000:]
    wait_for(lambda: healthy(patroni_lab, leader.name), timeout=180, interval=1,
             what="the others back as replicas of the restored leader")
    assert writer(patroni_lab) == leader and in_recovery(other) and in_recovery(readonly)
    for node in (other, readonly):
        wait_for(lambda n=node: query(n, "select id from restore_drill order by id") == [(1,)],
                 timeout=30, what=f"the restored rows on {node.name}")


def test_the_deploy_after_the_faults_changes_nothing(patroni_lab: Lab) -> None:
    result = run_pyinfra(*CLUSTER, env=ENV, json_output=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert changed(result) == []
