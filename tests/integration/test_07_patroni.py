"""The Patroni engine on a lab of its own (lab/patroni.toml: pgpat-*, 172.23.0.0/16, ports
27432-27434, ha_engine = "patroni"): etcd and Patroni on every node, deployed with the same
deploys/cluster.py; the cluster fails over by itself when its primary dies, the read-only
replica is never promoted, and the old primary comes back as a replica, never as a second
primary.

The tests of this module share one lab and run in order: each leaves the cluster healthy
for the next (a new leader after the failover test).
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import time
from collections.abc import Iterator

import psycopg
import pytest

from pgcluster.control.writer import Writer, conninfo
from pgcluster.lab.definition import Lab, LabNode, load_lab
from pgcluster.model.patroni import PatroniView, parse_members
from pgcluster.model.settings import duration_seconds
from tests.conftest import changed, run_pyinfra, totals
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
)
from tests.integration.prometheus import (
    PROMETHEUS,
    alert_for,
    api,
    firing,
    firing_now,
    healthy_targets,
    instant,
)

LAB = "patroni"
ENV = {"PGCLUSTER_LAB": LAB}
CLUSTER = ["inventory/docker.py", "deploys/cluster.py"]
PATRONICTL = "patronictl -c /etc/patroni/config.yml"
# The lab's scrape interval (lab/patroni.toml's [data]).
SCRAPE = duration_seconds(dict(load_lab(LAB).data)["monitor_scrape_interval"])


@pytest.fixture(scope="module")
def patroni_lab() -> Iterator[Lab]:
    yield from built_lab(LAB)


def members(lab: Lab, on: LabNode | None = None) -> PatroniView:
    """The cluster as Patroni lists it, read on `on` (default: the first node that answers)."""
    for node in [on] if on else lab.nodes:
        result = node_host(node).run(f"{PATRONICTL} list -f json")
        if result.rc == 0:
            return parse_members(result.stdout)
    raise AssertionError(f"patronictl list failed on every node: {result.stderr}")


def in_recovery(node: LabNode) -> bool:
    return query(node, "select pg_is_in_recovery()")[0][0]


def writer(lab: Lab) -> LabNode:
    """The one node that accepts writes (asserts there is exactly one)."""
    writers = []
    for node in lab.nodes:
        try:
            if not in_recovery(node):
                writers.append(node)
        except psycopg.Error:
            pass
    assert len(writers) == 1, f"nodes accepting writes: {[n.name for n in writers]}"
    return writers[0]


def healthy(lab: Lab, leader: str) -> bool:
    view = members(lab)
    return view.leader == leader and not view.problems() and all(
        m.timeline == view.member(leader).timeline for m in view.members)


def test_patroni_bootstraps_the_cluster_every_replica_streaming(patroni_lab: Lab) -> None:
    primary = patroni_lab.node("primary")
    wait_for(lambda: healthy(patroni_lab, primary.name), timeout=60, what="3 healthy members")
    view = members(patroni_lab)
    assert sorted(m.name for m in view.members) == sorted(n.name for n in patroni_lab.nodes)
    assert view.member(patroni_lab.node("readonly").name).nofailover
    assert not view.member(patroni_lab.node("standby").name).nofailover
    assert writer(patroni_lab) == primary
    streaming = dict(query(primary, "select application_name, state from pg_stat_replication"))
    assert streaming == {patroni_lab.node("standby").name: "streaming",
                         patroni_lab.node("readonly").name: "streaming"}
    # The seed's schema, roles and data, on the replicas too.
    for node in patroni_lab.nodes:
        assert query(node, "select count(*) from proyecto.usuarios")[0][0] >= 3
    # Debian's unit no longer manages PostgreSQL: Patroni does, alone.
    host = node_host(primary)
    assert host.service("postgresql@15-main").is_enabled is False
    assert host.service("patroni").is_running and host.service("etcd").is_running
    # A Patroni the deploy started got no reload: a SIGHUP before Patroni sets its handler
    # kills it, and systemd does not restart a process a SIGHUP ended. (A kept lab may have
    # been reloaded by earlier runs: only a lab built by this run is read.)
    for node in [] if os.environ.get("PGCLUSTER_TEST_REUSE") == "1" else patroni_lab.nodes:
        journal = node_host(node).check_output("journalctl --no-pager -q -u patroni")
        assert "Reloading patroni.service" not in journal, f"{node.name} got a reload"


def test_a_second_deploy_reports_zero_changes(patroni_lab: Lab) -> None:
    result = run_pyinfra(*CLUSTER, env=ENV, json_output=True)
    assert result.returncode == 0, result.stderr[-3000:]
    counts = totals(result)
    assert counts["error"] == 0 and counts["no_change"] > 50
    assert counts["success"] == 0, f"a re-run changed {counts['success']} operation(s)"


def test_prometheus_scrapes_patroni_and_etcd_on_every_node(patroni_lab: Lab) -> None:
    """The monitor scrapes every exporter, every Patroni's REST API and every etcd member
    (with its client certificate): each target up, Patroni's and etcd's own view of the
    cluster in the metrics, and no alert firing on the healthy cluster once it has a
    full backup."""
    names = {n.name for n in patroni_lab.nodes}
    jobs = ("postgres", "node", "patroni", "etcd")
    wait_for(lambda: all(healthy_targets(patroni_lab).get(job) == names for job in jobs),
             timeout=3 * SCRAPE + 30, what=f"every {'/'.join(jobs)} target up "
             f"(up: {healthy_targets(patroni_lab)})")
    assert instant(patroni_lab, "patroni_postgres_running") == dict.fromkeys(names, 1.0)
    assert instant(patroni_lab, "patroni_cluster_unlocked") == dict.fromkeys(names, 0.0)
    assert instant(patroni_lab, "etcd_server_has_leader") == dict.fromkeys(names, 1.0)
    # One etcd leader among the members, and Patroni's leader is the exporter's primary.
    assert sum(instant(patroni_lab, "etcd_server_is_leader").values()) == 1.0
    assert instant(patroni_lab, "pgcluster_node_in_recovery == 0") == \
        {patroni_lab.node("primary").name: 0.0}
    # Healthy includes a full backup (a new lab has none: NewestFullBackupTooOld says so),
    # taken on Patroni's leader.
    backup = pgcluster_cli(patroni_lab, "backup", "full")
    assert backup.returncode == 0, backup.stdout[-2000:] + backup.stderr[-2000:]
    wait_for(lambda: firing_now(patroni_lab) == [], timeout=3 * SCRAPE + 30, interval=2,
             what=f"no alert firing (firing: {firing_now(patroni_lab)})")
    rules = {r["name"] for g in api(patroni_lab, PROMETHEUS, "/api/v1/rules", type="alert")
             ["data"]["groups"] for r in g["rules"]}
    assert {"PatroniNoLeader", "EtcdMemberDown", "EtcdNoLeader"} <= rules


def test_status_shows_patronis_view(patroni_lab: Lab) -> None:
    result = pgcluster_cli(patroni_lab, "status", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["engine"] == "patroni" and report["healthy"], report["issues"]
    leader = [m["name"] for m in report["patroni"] if m["role"] == "leader"]
    assert leader == [report["primary"]] == [patroni_lab.node("primary").name]


def test_monitor_logs_psql_and_the_menu_work_under_patroni(patroni_lab: Lab) -> None:
    primary, standby = patroni_lab.node("primary"), patroni_lab.node("standby")
    shown = pgcluster_cli(patroni_lab, "psql", "standby", "-c", "select pg_is_in_recovery()")
    assert shown.returncode == 0 and shown.stdout.split()[2] == "t", shown.stdout + shown.stderr
    # PostgreSQL's output under Patroni is in the patroni unit's journal, with Patroni's.
    logs = pgcluster_cli(patroni_lab, "logs", "standby", "-n", "400")
    assert logs.returncode == 0, logs.stderr
    assert "started streaming WAL from primary" in logs.stdout, logs.stdout[-2000:]
    assert f"I am {standby.name}" in logs.stdout or "no action" in logs.stdout
    monitor = pgcluster_cli(patroni_lab, "monitor", "--count", "1", "--interval", "1")
    assert monitor.returncode == 0, monitor.stdout + monitor.stderr
    assert primary.name in monitor.stdout and "leader" in monitor.stdout.lower()
    # The seed's menu: 2 status, then 0 quit.
    menu = pgcluster_cli(patroni_lab, "menu", stdin="2\n0\n", timeout=300)
    assert menu.returncode == 0, menu.stdout[-2000:] + menu.stderr[-2000:]
    assert "leader" in menu.stdout.lower() and primary.name in menu.stdout


def test_a_killed_primary_is_replaced_by_the_standby_by_itself(patroni_lab: Lab) -> None:
    primary, standby, readonly = (patroni_lab.node(r) for r in ("primary", "standby",
                                                                 "readonly"))
    with connect(primary) as conn:
        conn.execute("create table if not exists patroni_drill (id int primary key, at text)")
        conn.execute("insert into patroni_drill values (1, 'before the failover')")
    wait_for(lambda: query(readonly, "select count(*) from patroni_drill")[0][0] == 1,
             timeout=30, what="the row on the read-only replica")
    # An application that knows only the proxy's read-write endpoint, reconnecting on error.
    client = endpoint_writer(patroni_lab, primary)
    wait_for(lambda: len(client.acknowledged) > 10, timeout=30, what="writes through 5000")
    killed, killed_at = time.monotonic(), time.time()
    subprocess.run(["docker", "kill", primary.name], check=True, capture_output=True)
    try:
        wait_for(lambda: not in_recovery(standby), timeout=90, interval=1,
                 what=f"{standby.name} promoted by Patroni")
        took = time.monotonic() - killed
        wait_for(lambda: client.first_ack_after(time.time() - 0.5) is not None, timeout=60,
                 what="writes again through the read-write endpoint, same address")
    finally:
        client.stop()
    outage = client.outage_after(killed_at)
    assert outage is not None and outage[1] > killed_at
    print(f"read-write endpoint: writes again {outage[1] - killed_at:.1f}s after the kill")
    assert in_recovery(readonly), "the read-only replica (nofailover) was promoted"
    with connect(standby) as conn:
        conn.execute("insert into patroni_drill values (2, 'after the failover')")
    # The read-only replica follows the new leader by itself.
    wait_for(lambda: query(readonly, "select count(*) from patroni_drill")[0][0] == 2,
             timeout=60, what="the read-only replica following the new leader")
    assert in_recovery(readonly)
    print(f"failover by Patroni: {took:.1f}s from the kill to a writable {standby.name}")


def test_the_old_primary_comes_back_as_a_replica(patroni_lab: Lab) -> None:
    primary, standby = patroni_lab.node("primary"), patroni_lab.node("standby")
    subprocess.run(["docker", "start", primary.name], check=True, capture_output=True)
    wait_for(lambda: healthy(patroni_lab, standby.name), timeout=120, interval=1,
             what=f"{primary.name} back as a replica of {standby.name}")
    assert writer(patroni_lab) == standby
    assert in_recovery(primary)
    assert query(primary, "select count(*) from patroni_drill")[0][0] == 2
    view = members(patroni_lab, on=primary)
    assert view.member(primary.name).role == "replica"


def a_writer(lab: Lab) -> Writer:
    """A client writing without pause through every node's port (libpq's multi-host
    string, target_session_attrs=read-write), recording every acknowledged commit."""
    return Writer(conninfo([n.published_port for n in lab.nodes], *ADMIN,
                           sslrootcert=lab_ca())).start()


def test_a_switchover_under_a_writer_loses_no_acknowledged_commit(patroni_lab: Lab) -> None:
    primary, readonly = patroni_lab.node("primary"), patroni_lab.node("readonly")
    assert members(patroni_lab).leader == patroni_lab.node("standby").name
    client = a_writer(patroni_lab)
    # An application beside it, that knows only the proxy's read-write endpoint.
    application = endpoint_writer(patroni_lab, patroni_lab.node("standby"),
                                  table="proyecto.endpoint_writes")
    time.sleep(2)
    started = time.time()
    result = pgcluster_cli(patroni_lab, "switchover", "--to", primary.name, "--yes")
    wait_for(lambda: application.first_ack_after(time.time() - 0.5) is not None, timeout=30,
             what="the application writing again through 5000")
    time.sleep(2)
    client.stop()
    application.stop()
    assert application.first_ack_after(started) is not None
    assert application.missing() == [], "acknowledged commits lost through the endpoint"
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert members(patroni_lab).leader == primary.name and writer(patroni_lab) == primary
    assert len(client.acknowledged) > 100
    first = client.first_ack_after(started, str(primary.published_port))
    assert first is not None, "no write acknowledged by the new primary"
    assert client.missing() == [], "acknowledged commits lost in a switchover"
    assert in_recovery(readonly)
    wait_for(lambda: healthy(patroni_lab, primary.name), timeout=60, what="every member back")
    print(f"switchover by Patroni: first write on {primary.name} {first - started:.1f}s after "
          "the command started")


def test_postgresql_killed_under_a_living_patroni_is_restarted_in_place(
        patroni_lab: Lab) -> None:
    """The postmaster dies (SIGKILL) while Patroni and the leader key live: Patroni starts it
    again on the same node (within primary_start_timeout), with no failover. (Patroni 3.0.2
    starts a crashed primary in recovery first, then promotes it: a new timeline, the same
    leader.)"""
    primary, standby = patroni_lab.node("primary"), patroni_lab.node("standby")
    host = node_host(primary)
    host.run("kill -KILL $(head -1 /var/lib/postgresql/15/main/postmaster.pid)")
    wait_for(lambda: not in_recovery(primary), timeout=60, interval=1,
             what="PostgreSQL back on the leader")
    with connect(primary) as conn:
        conn.execute("insert into patroni_drill values (3, 'after the crash') "
                     "on conflict do nothing")
    assert members(patroni_lab).leader == primary.name
    assert in_recovery(standby), "the standby was promoted: a failover, not a restart"
    wait_for(lambda: healthy(patroni_lab, primary.name), timeout=60, what="every member back")


def streams_from(primary: LabNode, replica: LabNode) -> bool:
    return bool(query(primary, "select 1 from pg_stat_replication where application_name = "
                               "%s and state = 'streaming'", (replica.name,)))


def replica_diagnostics(primary: LabNode, replica: LabNode) -> str:
    """What to read when a replica did not get a row: both sides of its replication and
    the last words of its Patroni and PostgreSQL (a failure in CI cannot be looked at)."""
    parts = []
    for node, sql in ((primary, "select application_name, state, sent_lsn, replay_lsn "
                                "from pg_stat_replication"),
                      (replica, "select status, sender_host, latest_end_lsn, "
                                "pg_last_wal_replay_lsn(), pg_is_wal_replay_paused() "
                                "from pg_stat_wal_receiver right join (select 1) one on true")):
        try:
            parts.append(f"{node.name}: {query(node, sql)}")
        except Exception as exc:  # the diagnostics must not hide the failure
            parts.append(f"{node.name}: {exc}")
    parts.append(node_host(replica).run(
        "journalctl --no-pager -q -n 40 -u patroni | cut -c1-250; "
        "tail -n 20 /var/log/postgresql/*.log 2>/dev/null | cut -c1-250").stdout)
    return "\n".join(parts)


def test_one_etcd_member_lost_fails_nothing_over(patroni_lab: Lab) -> None:
    """And the lost member alerts (EtcdMemberDown) within its `for` plus two scrapes and an
    evaluation, Patroni keeps its leader (no PatroniNoLeader), and the alert resolves."""
    primary, readonly = patroni_lab.node("primary"), patroni_lab.node("readonly")
    bound = alert_for(patroni_lab, "EtcdMemberDown") + 3 * SCRAPE
    # From a replica that streams (the previous test restarted the primary's server).
    wait_for(lambda: streams_from(primary, readonly), timeout=60, what=f"{readonly.name} "
             "streaming")
    node_host(readonly).run("systemctl stop etcd")
    stopped = time.monotonic()
    try:
        wait_for(lambda: firing(patroni_lab, "EtcdMemberDown") == {readonly.name},
                 timeout=bound + 5, interval=1, what="EtcdMemberDown for the stopped member")
        fired = time.monotonic() - stopped
        print(f"EtcdMemberDown fired {fired:.1f}s after the stop (bound {bound:.0f}s)")
        assert fired <= bound
        assert firing(patroni_lab, "PatroniNoLeader") == set()
        # Longer than the leader key lives: a lost quorum would have shown by now.
        time.sleep(max(0.0, 25 - (time.monotonic() - stopped)))
        assert members(patroni_lab, on=primary).leader == primary.name
        assert writer(patroni_lab) == primary
        with connect(primary) as conn:
            conn.execute("insert into patroni_drill values (4, 'two etcd members of three') "
                         "on conflict do nothing")
        try:
            wait_for(lambda: query(readonly, "select count(*) from patroni_drill where id = 4")
                     [0][0] == 1, timeout=60, what="the row on the read-only replica")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{replica_diagnostics(primary, readonly)}") from None
    finally:
        node_host(readonly).run("systemctl start etcd")
    wait_for(lambda: healthy(patroni_lab, primary.name), timeout=60, what="every member back")
    wait_for(lambda: firing(patroni_lab, "EtcdMemberDown") == set(), timeout=3 * SCRAPE + 10,
             interval=1, what="EtcdMemberDown resolved")


def settings(node: LabNode) -> tuple[str, str]:
    shared_buffers, max_connections = query(node, "select current_setting('shared_buffers'), "
                                                  "current_setting('max_connections')")[0]
    return shared_buffers, max_connections


def longest_gap(client: Writer) -> float:
    times = sorted(at for _, at, _ in client.acknowledged)
    return max((b - a for a, b in itertools.pairwise(times)), default=0.0)


def change_settings(lab: Lab, *data: str) -> tuple[Writer, Writer, subprocess.CompletedProcess]:
    """A deploy with `data` (--data k=v each) under a writer, and under an application of
    the read-write endpoint."""
    client = a_writer(lab)
    application = endpoint_writer(lab, writer(lab), table="proyecto.rolling_endpoint")
    time.sleep(2)
    args = [arg for item in data for arg in ("--data", item)]
    try:
        result = run_pyinfra(*CLUSTER, *args, env=ENV)
        done = time.time()
        wait_for(lambda: application.first_ack_after(done) is not None, timeout=30,
                 what="writes through the read-write endpoint after the deploy")
        time.sleep(1)
    finally:
        client.stop()
        application.stop()
    return client, application, result


def test_settings_that_need_a_restart_are_applied_rolling_by_one_switchover(
        patroni_lab: Lab) -> None:
    """shared_buffers (pgcluster's own postgresql.conf) raised and max_connections (a DCS
    parameter) raised: the replicas restart one at a time, the leader hands over by one
    switchover, nothing acknowledged is lost and the longest write pause is the
    switchover's. Lowered again, Patroni keeps the replicas at the primary's higher
    max_connections until the leader restarted: the deploy restarts it in place, then the
    replicas. Each time every member runs the values asked for, nothing left pending, the
    read-only replica never leads, and a second run with the same data changes nothing."""
    readonly = patroni_lab.node("readonly")
    before = settings(readonly)  # the lab's group data
    raised = f"{int(before[1]) + 20}"
    for data, wanted in ((("shared_buffers=160MB", f"max_connections={raised}"),
                          ("160MB", raised)),
                         ((), before)):
        leader = members(patroni_lab).leader
        client, application, result = change_settings(patroni_lab, *data)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        assert client.missing() == [], "acknowledged commits lost in the rolling restart"
        assert application.missing() == [], "acknowledged commits lost through the endpoint"
        view = members(patroni_lab)
        assert view.leader not in (None, readonly.name)
        assert not any(m.pending_restart for m in view.members), view
        for node in patroni_lab.nodes:
            assert settings(node) == wanted, node.name
        assert healthy(patroni_lab, view.leader)
        print(f"rolling restart {data or 'back'}: leader {leader} -> {view.leader}, longest "
              f"write pause {longest_gap(client):.1f}s, {len(client.acknowledged)} commits")
        args = [arg for item in data for arg in ("--data", item)]
        again = run_pyinfra(*CLUSTER, *args, env=ENV, json_output=True)
        assert again.returncode == 0, again.stderr[-3000:]
        assert changed(again) == [], "a second run with the same data changed something"


def test_the_deploy_after_the_faults_changes_nothing(patroni_lab: Lab) -> None:
    result = run_pyinfra(*CLUSTER, env=ENV, json_output=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert changed(result) == []
