"""The application's endpoints (lab/ha.toml: pgha-*, manual engine, with the proxy
container pgha-proxy publishing 28500-28503 and 28700 on 127.0.0.1): HAProxy routes by
each node's role check (pgcluster-health under the manual engine), PgBouncer pools on
every node with TLS and scram-sha-256 against PostgreSQL's own verifiers.

Real clients only: psycopg through the proxy with sslmode=verify-full against the
address they dial. The tests share the lab and run in order; each leaves it as the next
expects (the failover test last but one, the split brain last).
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator

import psycopg
import pytest

from pgcluster.control.writer import TABLE
from pgcluster.lab.definition import Lab, LabNode
from pgcluster.model.endpoints import serving
from tests.conftest import changed, run_pyinfra
from tests.integration.conftest import (
    APP,
    RO,
    RO_DIRECT,
    RW,
    RW_DIRECT,
    STATS,
    built_lab,
    connect,
    endpoint_dsn,
    endpoint_writer,
    node_host,
    pgcluster_cli,
    query,
    wait_for,
)


@pytest.fixture(scope="module")
def proxy_lab() -> Iterator[Lab]:
    # The lab test_04_ha.py leaves when it ran first in this session (its primary switched
    # back, a deploy that changes nothing); else a new one.
    yield from built_lab("ha", handed_over=True)


def dsn(lab: Lab, endpoint: int, user: tuple[str, str] = APP, **extra: str) -> str:
    return endpoint_dsn(lab, endpoint, user, **extra)


def ask(lab: Lab, endpoint: int, sql: str, user: tuple[str, str] = APP) -> tuple:
    with psycopg.connect(dsn(lab, endpoint, user), autocommit=True) as conn:
        return conn.execute(sql).fetchone()


WHO = "select current_setting('cluster_name'), pg_is_in_recovery()"


def served_by(lab: Lab, endpoint: int, times: int = 12) -> Counter:
    """Which node answered each of `times` new connections (HAProxy balances per
    connection)."""
    return Counter(ask(lab, endpoint, WHO)[0] for _ in range(times))


def replay(node: LabNode, paused: bool) -> None:
    query(node, f"select pg_wal_replay_{'pause' if paused else 'resume'}()")


def test_writes_and_reads_go_where_they_belong_with_verify_full(proxy_lab: Lab) -> None:
    primary, standby, readonly = (proxy_lab.node(r) for r in ("primary", "standby",
                                                               "readonly"))
    wait_for(lambda: ask(proxy_lab, RW, WHO) == (primary.name, False), timeout=60,
             what="the read-write endpoint on the primary")
    for endpoint in (RW, RW_DIRECT):
        with psycopg.connect(dsn(proxy_lab, endpoint), autocommit=True) as conn:
            assert conn.info.parameter_status("in_hot_standby") == "off"
            conn.execute("insert into proyecto.logs_replicacion (evento, nodo, detalle) values "
                         "('test', 'pytest', %s)", (f"through {endpoint}",))
    wait_for(lambda: set(served_by(proxy_lab, RO)) == {standby.name, readonly.name},
             timeout=30, what="reads from both replicas, round robin")
    assert set(served_by(proxy_lab, RO_DIRECT)) == {standby.name, readonly.name}
    # A write through the read-only endpoint is refused by the replica itself.
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        ask(proxy_lab, RO, "insert into proyecto.logs_replicacion (evento, nodo, detalle) "
                           "values ('test', 'pytest', 'through 5001')")


def test_status_shows_where_each_endpoint_sends_clients(proxy_lab: Lab) -> None:
    primary = proxy_lab.node("primary")
    result = pgcluster_cli(proxy_lab, "status", "--json")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    (proxy,) = json.loads(result.stdout)["proxies"]
    assert proxy["name"] == "pgha-proxy"
    assert serving(proxy["endpoints"]["read-write"]) == [primary.name]
    assert sorted(serving(proxy["endpoints"]["read-only"])) == sorted(
        n.name for n in proxy_lab.nodes if n != primary)
    text = pgcluster_cli(proxy_lab, "status").stdout
    assert f"read-write                          {primary.name}" in text, text


def test_pgbouncer_refuses_plain_text_wrong_passwords_and_its_excluded_roles(
        proxy_lab: Lab) -> None:
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(dsn(proxy_lab, RW, ("app", "wrong")))
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(dsn(proxy_lab, RW, sslmode="disable"))
    # A superuser's, the lookup role's and pg_rewind's verifiers are never handed out.
    for role in (("admin", "admin123"), ("pgbouncer", ""), ("rewinder", "rewind123")):
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(dsn(proxy_lab, RW, role))
    # The admin uses the direct endpoint (or a node's own port).
    assert ask(proxy_lab, RW_DIRECT, "select current_user", ("admin", "admin123")) == ("admin",)
    # No password in PgBouncer's files: the auth user's entry is empty, nothing else.
    userlist = node_host(proxy_lab.node("primary")).file("/etc/pgbouncer/userlist.txt")
    assert userlist.content_string == '"pgbouncer" ""\n' and userlist.mode == 0o640


def test_the_statistics_page_answers_on_the_loopback_only(proxy_lab: Lab) -> None:
    assert proxy_lab.proxy is not None
    page = urllib.request.urlopen(f"http://127.0.0.1:{proxy_lab.published(STATS)}/",
                                  timeout=5).read().decode()
    assert all(n.name in page for n in proxy_lab.nodes) and "replicas" in page
    published = subprocess.run(["docker", "port", proxy_lab.proxy.name], check=True,
                               capture_output=True, text=True).stdout.split()
    hosts = {line.rsplit(":", 1)[0] for line in published if ":" in line}
    assert hosts == {"127.0.0.1"}, published


def test_reads_leave_a_lagging_replica_and_fall_back_to_the_primary(proxy_lab: Lab) -> None:
    primary, standby, readonly = (proxy_lab.node(r) for r in ("primary", "standby",
                                                               "readonly"))
    assert primary.name not in served_by(proxy_lab, RO), "the primary served reads"
    with connect(primary) as conn:
        conn.execute("create table if not exists proxy_lag (filler text)")
    replay(standby, paused=True)
    try:
        # More WAL than proxy_max_replica_lag (16 MB) behind: its replay is paused.
        with connect(primary) as conn:
            for _ in range(3):
                conn.execute("insert into proxy_lag select repeat('x', 1000) "
                             "from generate_series(1, 8000)")
        wait_for(lambda: set(served_by(proxy_lab, RO)) == {readonly.name}, timeout=30,
                 what=f"{standby.name} out of the read-only endpoint")
        replay(readonly, paused=True)
        with connect(primary) as conn:
            conn.execute("insert into proxy_lag select repeat('x', 1000) "
                         "from generate_series(1, 24000)")
        wait_for(lambda: set(served_by(proxy_lab, RO)) == {primary.name}, timeout=30,
                 what="reads on the primary while no replica qualifies")
    finally:
        replay(standby, paused=False)
        replay(readonly, paused=False)
    wait_for(lambda: set(served_by(proxy_lab, RO)) == {standby.name, readonly.name},
             timeout=30, what="both replicas back in the read-only endpoint")


def test_a_second_deploy_reports_zero_changes(proxy_lab: Lab) -> None:
    result = run_pyinfra("inventory/docker.py", "deploys/cluster.py",
                         env={"PGCLUSTER_LAB": proxy_lab.source}, json_output=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert changed(result) == []


def test_switchovers_there_and_back_lose_nothing_through_the_endpoint(proxy_lab: Lab) -> None:
    primary, standby = proxy_lab.node("primary"), proxy_lab.node("standby")
    client = endpoint_writer(proxy_lab, primary)
    try:
        for target in (standby, primary):
            wait_for(lambda: len(client.acknowledged) > 20, timeout=30, what="writes")
            started = time.time()
            result = pgcluster_cli(proxy_lab, "switchover", "--to", target.name, "--yes")
            assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
            wait_for(lambda name=target.name: ask(proxy_lab, RW, WHO) == (name, False),
                     timeout=30, what=f"the read-write endpoint on {target.name}")
            wait_for(lambda: client.first_ack_after(time.time() - 0.5) is not None,
                     timeout=30, what="writes again through 5000")
            outage = client.outage_after(started)
            assert outage is not None
            print(f"switchover to {target.name}: writes through 5000 paused "
                  f"{outage[1] - outage[0]:.2f}s")
    finally:
        client.stop()
    assert client.missing() == [], "acknowledged commits lost in a switchover"


def test_a_client_of_the_read_write_endpoint_writes_again_after_a_failover(
        proxy_lab: Lab) -> None:
    primary, standby = proxy_lab.node("primary"), proxy_lab.node("standby")
    client = endpoint_writer(proxy_lab, primary)
    try:
        wait_for(lambda: len(client.acknowledged) > 20, timeout=30, what="writes through 5000")
        subprocess.run(["docker", "stop", primary.name], check=True, capture_output=True)
        lost = time.time()
        result = pgcluster_cli(proxy_lab, "failover", "--yes")
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        wait_for(lambda: client.first_ack_after(time.time() - 0.5) is not None, timeout=60,
                 what="writes again through 5000")
    finally:
        client.stop()
    outage = client.outage_after(lost)
    assert outage is not None
    resumed = outage[1]
    rows = dict(query(standby, f"select written_on, count(*) from {TABLE} group by 1"))
    assert rows.get(standby.name, 0) > 0, rows
    print(f"read-write endpoint: writes again {resumed - lost:.1f}s after the primary stopped "
          "(failover command included)")
    # The old primary comes back as a replica of the new one.
    subprocess.run(["docker", "start", primary.name], check=True, capture_output=True)
    rejoin = pgcluster_cli(proxy_lab, "rejoin", primary.name, "--yes")
    assert rejoin.returncode == 0, rejoin.stdout[-3000:] + rejoin.stderr[-3000:]
    wait_for(lambda: ask(proxy_lab, RW, WHO) == (standby.name, False), timeout=30,
             what="the endpoint on the new primary")


def test_a_split_brain_is_no_write_target(proxy_lab: Lab) -> None:
    """Two servers accepting writes: the read-write endpoints refuse new connections."""
    primary, standby = proxy_lab.node("primary"), proxy_lab.node("standby")  # standby leads
    node_host(primary).check_output("runuser -u postgres -- psql -Atc 'select pg_promote()'")
    wait_for(lambda: not query(primary, "select pg_is_in_recovery()")[0][0], timeout=30,
             what="a second primary, made by hand")

    def refused() -> bool:
        for endpoint in (RW, RW_DIRECT):
            try:
                ask(proxy_lab, endpoint, "select 1")
                return False
            except psycopg.OperationalError:
                pass
        return True

    wait_for(refused, timeout=30, what="both read-write endpoints refusing")
    issues = json.loads(pgcluster_cli(proxy_lab, "status", "--json").stdout)["issues"]
    assert any("the read-write endpoint of pgha-proxy has 2 write targets" in i
               for i in issues), issues
    assert pgcluster_cli(proxy_lab, "stop", primary.name).returncode == 0
    wait_for(lambda: ask(proxy_lab, RW, WHO) == (standby.name, False), timeout=30,
             what="the endpoint back on the one primary")
