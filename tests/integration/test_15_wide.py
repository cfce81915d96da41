"""More replicas and cascading replication, on the wide lab (lab/wide.toml): a primary, two
standbys and two read-only replicas, pgwide-readonly2 cascading from pgwide-standby2. All
stream from their source with their slot there; a re-run changes nothing; a cascade whose
upstream is lost is re-pointed past it and moved back when it returns; a failover picks
the most advanced standby and the cascade keeps streaming from its promoted upstream; a
node added to the inventory is the only one cloned; `pgcluster remove` retires it and the
deploy without it changes nothing; a slot no node needs is never left silently; last,
Patroni takes the cluster over and streams the cascade from its upstream (replicatefrom).
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import uuid
from collections.abc import Iterator

import pytest

from pgcluster.lab.definition import Lab, LabNode, lab_path, load_lab
from tests.conftest import changed, run_pyinfra, totals
from tests.integration.conftest import (
    built_lab,
    connect,
    destroy_lab,
    node_host,
    pgcluster_cli,
    query,
    wait_for,
)

LAB = "wide"
TABLE = "public.wide_check"
# The node the add and remove tests bring in and retire (a copy of the lab file has it).
EXTRA = """
[[nodes]]
name = "pgwide-readonly3"
role = "readonly"
address = "172.30.0.15"
published_port = 30437
data_volume = "pgwide-readonly3-data"
"""


@pytest.fixture(scope="module")
def wide() -> Iterator[Lab]:
    yield from built_lab(LAB)


@pytest.fixture(scope="module")
def wider(wide: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """The wide lab's file with a sixth node, as a user edits an inventory to add one; the
    node's container and volume are removed afterwards (with the rest of the lab)."""
    path = tmp_path_factory.mktemp("wider") / f"{LAB}.toml"
    path.write_text(lab_path(LAB).read_text() + EXTRA)
    yield load_lab(str(path))
    destroy_lab({"PGCLUSTER_LAB": str(path)})


def deploy(lab: Lab, *extra: str) -> subprocess.CompletedProcess:
    result = run_pyinfra("inventory/docker.py", "deploys/cluster.py", *extra, json_output=True,
                         env={"PGCLUSTER_LAB": lab.source})
    assert result.returncode == 0, result.stderr[-4000:]
    return result


def no_change(lab: Lab) -> None:
    again = deploy(lab)
    assert totals(again)["success"] == 0, changed(again)


def ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, (result.stdout[-3000:], result.stderr[-3000:])
    return result


def senders(node: LabNode) -> dict[str, str]:
    """Who streams from this node: application_name -> state."""
    return dict(query(node, "select application_name, state from pg_stat_replication"))


def slots(node: LabNode) -> set[str]:
    return {r[0] for r in query(node, "select slot_name from pg_replication_slots "
                                      "where slot_type = 'physical'")}


def source_of(node: LabNode) -> str:
    """The address this replica's WAL receiver streams from."""
    rows = query(node, "select sender_host from pg_stat_wal_receiver where status = "
                       "'streaming'")
    return rows[0][0] if rows else ""


def arrives(nodes: list[LabNode], writer: LabNode) -> None:
    """A row committed on `writer` is read back on every node of `nodes`."""
    marker = uuid.uuid4().hex
    with connect(writer) as conn:
        conn.execute(f"create table if not exists {TABLE} (marker text)")
        conn.execute(f"insert into {TABLE} values (%s)", (marker,))
    for node in nodes:
        wait_for(lambda n=node: query(n, f"select count(*) from {TABLE} where marker = %s",
                                      (marker,))[0][0] == 1,
                 timeout=60, what=f"the row on {node.name}")


def test_every_replica_streams_from_its_source_with_its_slot_there(wide: Lab) -> None:
    primary, standby2 = wide.node("pgwide-primary"), wide.node("pgwide-standby2")
    assert senders(primary) == {"pgwide-standby1": "streaming", "pgwide-standby2": "streaming",
                                "pgwide-readonly1": "streaming"}
    assert senders(standby2) == {"pgwide-readonly2": "streaming"}
    assert slots(primary) == {"pgwide_standby1", "pgwide_standby2", "pgwide_readonly1"}
    assert slots(standby2) == {"pgwide_readonly2"}
    assert source_of(wide.node("pgwide-readonly2")) == standby2.address
    arrives([n for n in wide.nodes if n != primary], primary)
    # status checks each replica on its source: healthy, the cascade shown from its upstream.
    status = pgcluster_cli(wide, "status", "--json")
    report = json.loads(status.stdout)
    assert status.returncode == 0 and report["healthy"], report["issues"]
    assert {(r["application_name"], r["source"]) for r in report["replication"]} == {
        ("pgwide-standby1", primary.name), ("pgwide-standby2", primary.name),
        ("pgwide-readonly1", primary.name), ("pgwide-readonly2", standby2.name)}


def test_a_rerun_changes_nothing(wide: Lab) -> None:
    no_change(wide)


def test_a_slot_no_node_needs_is_warned_about_or_dropped(wide: Lab) -> None:
    primary = wide.node("pgwide-primary")
    query(primary, "select pg_create_physical_replication_slot('pgwide_gone', true)")
    warned = deploy(wide)
    assert totals(warned)["success"] == 0, changed(warned)
    assert "replication slot pgwide_gone is no node's of the inventory" in warned.stderr
    assert "pgwide_gone" in slots(primary)
    dropped = deploy(wide, "--data", "orphan_slots=drop")
    assert "pgwide_gone" not in slots(primary), changed(dropped)
    no_change(wide)


def test_a_cascade_past_a_lost_upstream_and_back(wide: Lab) -> None:
    primary, standby2 = wide.node("pgwide-primary"), wide.node("pgwide-standby2")
    cascade = wide.node("pgwide-readonly2")
    subprocess.run(["docker", "stop", "-t", "5", standby2.name], check=True,
                   capture_output=True)
    try:
        # Its upstream is gone: rejoin re-points it past it, to the primary (its slot there).
        ok(pgcluster_cli(wide, "rejoin", cascade.name, "--yes"))
        assert source_of(cascade) == primary.address
        assert "pgwide_readonly2" in slots(primary)
        arrives([cascade], primary)
    finally:
        ok(pgcluster_cli(wide, "start", standby2.name))
    # The upstream is back: the deploy moves the cascade back, and drops its slot on the
    # primary, which would retain WAL for no one.
    moved = deploy(wide)
    assert any("Cascading replicas stream from their source" in line
               for line in changed(moved)), changed(moved)
    wait_for(lambda: source_of(cascade) == standby2.address, timeout=60,
             what="the cascade streaming from its upstream again")
    assert "pgwide_readonly2" not in slots(primary)
    arrives([cascade], primary)
    no_change(wide)


def test_a_failover_promotes_the_most_advanced_standby_and_the_cascade_survives(
        wide: Lab) -> None:
    primary, standby1 = wide.node("pgwide-primary"), wide.node("pgwide-standby1")
    standby2, cascade = wide.node("pgwide-standby2"), wide.node("pgwide-readonly2")
    docker = ["docker", "network"]
    # pgwide-standby1 misses the last rows: pgwide-standby2 is the one to promote.
    subprocess.run([*docker, "disconnect", wide.network, standby1.name], check=True)
    try:
        time.sleep(2)
        arrives([standby2, cascade], primary)
        subprocess.run(["docker", "kill", primary.name], check=True, capture_output=True)
    finally:
        subprocess.run([*docker, "connect", "--ip", standby1.address, wide.network,
                        standby1.name], check=True)
    failover = wait_for(lambda: (r := pgcluster_cli(wide, "failover", "--yes")).returncode == 0
                        and r, timeout=90, interval=3, what="the failover")
    assert f"{standby2.name} is the primary" in failover.stdout, failover.stdout[-2000:]
    followers = {"pgwide-standby1", "pgwide-readonly1", "pgwide-readonly2"}
    wait_for(lambda: set(senders(standby2)) == followers
             and set(senders(standby2).values()) == {"streaming"}, timeout=90,
             what="every node streaming from the new primary")
    # The cascade was never re-pointed: it follows its upstream onto the new timeline.
    assert source_of(cascade) == standby2.address
    arrives([standby1, cascade, wide.node("pgwide-readonly1")], standby2)
    ok(pgcluster_cli(wide, "rejoin", primary.name, "--yes"))
    assert senders(standby2)[primary.name] == "streaming"
    no_change(wide)


def test_an_added_node_is_the_only_one_cloned(wider: Lab) -> None:
    created = run_pyinfra("@local", "deploys/lab.py", env={"PGCLUSTER_LAB": wider.source})
    assert created.returncode == 0, created.stderr[-3000:]
    added = deploy(wider)
    clones = [line for line in changed(added) if "Clone" in line]
    assert clones and all(line.endswith("@lab/pgwide-readonly3") for line in clones), clones
    primary = next(n for n in wider.nodes if query(n, "select not pg_is_in_recovery()")[0][0])
    assert senders(primary).get("pgwide-readonly3") == "streaming"
    arrives([wider.node("pgwide-readonly3")], primary)
    no_change(wider)


def test_remove_retires_a_node_and_the_deploy_without_it_changes_nothing(
        wide: Lab, wider: Lab) -> None:
    extra = wider.node("pgwide-readonly3")
    primary = next(n for n in wide.nodes if query(n, "select not pg_is_in_recovery()")[0][0])
    refused = pgcluster_cli(wider, "remove", primary.name, "--yes")
    assert refused.returncode != 0 and "is the primary" in refused.stderr + refused.stdout
    ok(pgcluster_cli(wider, "remove", extra.name, "--yes"))
    host = node_host(extra)
    assert not host.service("postgresql@15-main").is_running
    assert not host.service("postgresql@15-main").is_enabled
    assert host.file("/var/lib/postgresql/15/main/PG_VERSION").exists  # its data is kept
    assert "pgwide_readonly3" not in slots(primary)
    for node in wide.nodes:
        hba = node_host(node).file("/etc/postgresql/15/main/pg_hba.conf").content_string
        assert extra.address not in hba and extra.name not in hba, node.name
    # The user deletes it from the inventory: the others already look that way.
    no_change(wide)


def test_under_patroni_the_cascade_streams_from_its_upstream(wide: Lab) -> None:
    """Patroni takes the wide cluster over in place (replicatefrom on the cascade). Once
    its upstream is a replica again, after a switchover back to pgwide-primary, Patroni has
    the cascade stream from it, with its slot there, and a deploy changes nothing."""
    primary, standby2 = wide.node("pgwide-primary"), wide.node("pgwide-standby2")
    cascade = wide.node("pgwide-readonly2")
    deploy(wide, "--data", "ha_engine=patroni")
    config = node_host(cascade).file("/etc/patroni/config.yml").content_string
    assert re.search(r"^\s*replicatefrom: '?pgwide-standby2'?$", config, re.M), config[-800:]
    ok(pgcluster_cli(wide, "switchover", "--to", primary.name, "--yes"))
    wait_for(lambda: source_of(cascade) == standby2.address, timeout=120,
             what="Patroni's cascade streaming from its upstream")
    assert senders(standby2) == {cascade.name: "streaming"}
    assert cascade.name not in senders(primary)
    wait_for(lambda: "pgwide_readonly2" in slots(standby2), timeout=30,
             what="Patroni's slot for the cascade on its upstream")
    arrives([cascade], primary)
    no_change(wide)
