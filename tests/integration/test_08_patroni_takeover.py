"""A cluster built with the manual engine, taken over by Patroni in place (lab/patroni.toml
deployed first with ha_engine = "manual", then as the lab says, "patroni"): the data stays,
no streaming replica is cloned again, the same system, and the way back is refused."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pgcluster.lab.definition import Lab, load_lab
from pgcluster.model.patroni import parse_members
from tests.conftest import run_pyinfra, totals
from tests.integration.conftest import (
    connect,
    destroy_lab,
    hand_over,
    node_host,
    query,
    wait_for,
)
from tests.integration.prometheus import healthy_targets, instant

LAB = "patroni"
ENV = {"PGCLUSTER_LAB": LAB}
CLUSTER = ["inventory/docker.py", "deploys/cluster.py"]
MARKER = "/var/lib/postgresql/15/main/pgcluster-takeover-marker"
SYSTEM_SQL = "select system_identifier::text from pg_control_system()"


@pytest.fixture(scope="module")
def manual_lab(request: pytest.FixtureRequest) -> Iterator[Lab]:
    destroy_lab(ENV)
    for args in (["@local", "deploys/lab.py"],
                 [*CLUSTER, "--data", "ha_engine=manual"]):
        result = run_pyinfra(*args, env=ENV)
        assert result.returncode == 0, f"pyinfra {' '.join(args)}:\n{result.stderr[-4000:]}"
    yield load_lab(LAB)
    # Patroni runs it now: test_09's faults go on on it rather than on a new lab.
    if not hand_over(request, LAB, "test_09_patroni_faults.py"):
        destroy_lab(ENV)


def test_patroni_takes_a_running_manual_cluster_over_in_place(manual_lab: Lab) -> None:
    primary = manual_lab.node("primary")
    replicas = [n for n in manual_lab.nodes if n != primary]
    assert not node_host(primary).service("patroni").is_running
    system = query(primary, SYSTEM_SQL)[0][0]
    with connect(primary) as conn:
        conn.execute("create table if not exists public.takeover (id int)")
        conn.execute("insert into public.takeover values (1)")
    # A file in each replica's data directory: a new clone would not have it.
    for node in replicas:
        node_host(node).run(f"install -o postgres -m 600 /dev/null {MARKER}")

    result = run_pyinfra(*CLUSTER, env=ENV)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "Patroni takes over the running cluster in place" in result.stderr

    view = parse_members(node_host(primary).check_output(
        "patronictl -c /etc/patroni/config.yml list -f json"))
    assert view.leader == primary.name and not view.problems()
    for node in manual_lab.nodes:
        host = node_host(node)
        assert host.service("patroni").is_enabled and host.service("patroni").is_running
        assert not host.service("postgresql@15-main").is_enabled
        assert query(node, SYSTEM_SQL)[0][0] == system
    for node in replicas:
        assert node_host(node).file(MARKER).exists, f"{node.name} was cloned again"
        wait_for(lambda n=node: query(n, "select count(*) from public.takeover")[0][0] == 1,
                 timeout=30, what=f"the row on {node.name}")


def test_the_monitor_scrapes_patroni_and_etcd_after_the_takeover(manual_lab: Lab) -> None:
    """The same deploy gave the running Prometheus the Patroni and etcd jobs."""
    names = {n.name for n in manual_lab.nodes}
    wait_for(lambda: all(healthy_targets(manual_lab).get(job) == names
                         for job in ("postgres", "patroni", "etcd")),
             timeout=60, what=f"Patroni's and etcd's targets up "
             f"(up: {healthy_targets(manual_lab)})")
    assert instant(manual_lab, "patroni_cluster_unlocked") == dict.fromkeys(names, 0.0)


def test_the_deploy_after_the_takeover_changes_nothing(manual_lab: Lab) -> None:
    result = run_pyinfra(*CLUSTER, env=ENV, json_output=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert totals(result)["success"] == 0


def test_going_back_to_manual_is_refused_before_anything_changes(manual_lab: Lab) -> None:
    result = run_pyinfra(*CLUSTER, "--data", "ha_engine=manual", env=ENV, json_output=True)
    assert result.returncode != 0
    assert "does not hand a cluster back from Patroni" in result.stderr
    assert node_host(manual_lab.node("primary")).service("patroni").is_running
