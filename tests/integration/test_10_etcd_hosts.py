"""etcd on hosts of its own: the inventory's `etcd` group (lab/etcd.toml: pgetcd-*,
172.22.0.0/16, ports 26432-26434; three database nodes with Patroni, three etcd-only
containers). The same deploys/cluster.py builds it: etcd only on the group's hosts,
Patroni and PostgreSQL only on the database nodes, which reach etcd over TLS with their
own certificates. The DCS losing a member fails nothing over; the primary lost, the
standby takes over and the read-only replica is never promoted. The operator's
commands (switchover, backup) act on the database nodes only.

The tests share the lab and run in order; each leaves it healthy for the next.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator

import pytest

from pgcluster.lab.definition import Lab, LabNode
from tests.conftest import changed, run_pyinfra
from tests.integration.conftest import (
    built_lab,
    connect,
    endpoint_writer,
    node_host,
    pgcluster_cli,
    query,
    wait_for,
    writes_again,
)
from tests.integration.test_07_patroni import healthy, in_recovery, members, writer

LAB = "etcd"
ENV = {"PGCLUSTER_LAB": LAB}
CLUSTER = ["inventory/docker.py", "deploys/cluster.py"]
ETCDCTL = ("ETCDCTL_API=3 etcdctl --cacert=/etc/etcd/tls/ca.crt "
           "--cert=/etc/etcd/tls/server.crt --key=/etc/etcd/tls/server.key")


@pytest.fixture(scope="module")
def etcd_lab() -> Iterator[Lab]:
    yield from built_lab(LAB)


def etcd_members(on: LabNode) -> list[str]:
    """The etcd cluster's member names, as the member `on` lists them."""
    out = node_host(on).check_output(
        f"{ETCDCTL} --endpoints=https://{on.address}:2379 member list -w json")
    return sorted(m["name"] for m in json.loads(out)["members"])


def test_etcd_runs_on_the_etcd_hosts_and_patroni_on_the_nodes(etcd_lab: Lab) -> None:
    primary = etcd_lab.node("primary")
    wait_for(lambda: healthy(etcd_lab, primary.name), timeout=60, what="3 healthy members")
    assert sorted(m.name for m in members(etcd_lab).members) == \
        sorted(n.name for n in etcd_lab.nodes)
    assert writer(etcd_lab) == primary
    streaming = dict(query(primary, "select application_name, state from pg_stat_replication"))
    assert streaming == {etcd_lab.node("standby").name: "streaming",
                         etcd_lab.node("readonly").name: "streaming"}
    expected = sorted(e.name for e in etcd_lab.etcd)
    assert len(expected) == 3
    for member in etcd_lab.etcd:
        host = node_host(member)
        assert host.service("etcd").is_running and host.service("etcd").is_enabled
        assert not host.package("postgresql-15").is_installed
        assert not host.package("patroni").is_installed
        assert etcd_members(member) == expected
    for node in etcd_lab.nodes:
        host = node_host(node)
        assert not host.package("etcd-server").is_installed, f"etcd on {node.name}"
        assert host.service("patroni").is_running
        config = host.file("/etc/patroni/config.yml").content_string
        for member in etcd_lab.etcd:
            assert f"{member.address}:2379" in config


def test_a_second_deploy_reports_zero_changes(etcd_lab: Lab) -> None:
    result = run_pyinfra(*CLUSTER, env=ENV, json_output=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert changed(result) == []


def test_one_etcd_host_lost_fails_nothing_over(etcd_lab: Lab) -> None:
    primary, readonly = etcd_lab.node("primary"), etcd_lab.node("readonly")
    lost = etcd_lab.etcd[0]
    subprocess.run(["docker", "stop", lost.name], check=True, capture_output=True)
    try:
        # Longer than the leader key lives (ttl 20 s): a lost quorum would show by now.
        time.sleep(25)
        assert members(etcd_lab, on=primary).leader == primary.name
        assert writer(etcd_lab) == primary
        with connect(primary) as conn:
            conn.execute("create table if not exists etcd_drill (id int primary key, note text)")
            conn.execute("insert into etcd_drill values (1, 'two etcd hosts of three')")
        wait_for(lambda: query(readonly, "select count(*) from etcd_drill")[0][0] == 1,
                 timeout=30, what="the row on the read-only replica")
    finally:
        subprocess.run(["docker", "start", lost.name], check=True, capture_output=True)
    wait_for(lambda: etcd_members(lost) == sorted(e.name for e in etcd_lab.etcd), timeout=60,
             interval=1, what=f"{lost.name} back in the etcd cluster")
    wait_for(lambda: healthy(etcd_lab, primary.name), timeout=60, what="every member back")


def test_a_killed_primary_fails_over_to_the_standby_not_the_readonly(etcd_lab: Lab) -> None:
    primary, standby, readonly = (etcd_lab.node(r) for r in ("primary", "standby", "readonly"))
    # An application that knows only the proxy's read-write endpoint.
    application = endpoint_writer(etcd_lab, primary, table="proyecto.etcd_endpoint")
    time.sleep(2)
    subprocess.run(["docker", "kill", primary.name], check=True, capture_output=True)
    try:
        wait_for(lambda: not in_recovery(standby), timeout=90, interval=1,
                 what=f"{standby.name} promoted by Patroni")
        promoted = time.time()
        writes_again(application, after=promoted)
    finally:
        application.stop()
    # Killed, the old primary may take its last few commits with it (asynchronous
    # replication); the new one has every row it acknowledged itself.
    print(f"through the endpoint: {len(application.acknowledged)} commits, "
          f"{len(application.missing())} lost with the killed primary")
    assert in_recovery(readonly), "the read-only replica (nofailover) was promoted"
    with connect(standby) as conn:
        conn.execute("insert into etcd_drill values (2, 'after the failover')")
    wait_for(lambda: query(readonly, "select count(*) from etcd_drill")[0][0] == 2,
             timeout=60, what="the read-only replica following the new leader")
    # Back, the old primary rejoins as a replica: never a second primary.
    subprocess.run(["docker", "start", primary.name], check=True, capture_output=True)
    wait_for(lambda: healthy(etcd_lab, standby.name), timeout=120, interval=1,
             what=f"{primary.name} back as a replica of {standby.name}")
    assert writer(etcd_lab) == standby
    assert query(primary, "select count(*) from etcd_drill")[0][0] == 2


def test_switchover_and_backup_run_on_the_nodes_only(etcd_lab: Lab) -> None:
    """The operator's deploys with etcd-only hosts in the inventory: they act on the
    database nodes and leave the etcd hosts alone."""
    primary = etcd_lab.node("primary")
    application = endpoint_writer(etcd_lab, writer(etcd_lab), table="proyecto.etcd_endpoint")
    time.sleep(2)
    try:
        result = pgcluster_cli(etcd_lab, "switchover", "--to", primary.name, "--yes")
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        wait_for(lambda: healthy(etcd_lab, primary.name), timeout=60,
                 what=f"{primary.name} leads")
        done = time.time()
        writes_again(application, after=done)
    finally:
        application.stop()
    assert application.missing() == [], "acknowledged commits lost in the switchover"
    assert writer(etcd_lab) == primary
    backup = pgcluster_cli(etcd_lab, "backup", "full")
    assert backup.returncode == 0, backup.stdout[-3000:] + backup.stderr[-3000:]
    with connect(primary, dbname="postgres") as conn:  # the registry's database
        rows = conn.execute("select kind, status, node from pgcluster.backups "
                            "order by id desc limit 1").fetchall()
    assert rows == [("full", "ok", primary.name)], rows


def test_the_deploy_after_the_faults_changes_nothing(etcd_lab: Lab) -> None:
    result = run_pyinfra(*CLUSTER, env=ENV, json_output=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert changed(result) == []
    assert writer(etcd_lab) == etcd_lab.node("primary")
