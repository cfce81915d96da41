"""The restore deploy's parameters and the refusals it makes before touching a host."""

from __future__ import annotations

import pytest

from pgcluster.errors import ClusterStateError, ConfigError
from pgcluster.facts.patroni import HaServices
from pgcluster.model.backups import (
    FullBackup,
)
from pgcluster.model.topology import decide
from pgcluster.steps import restore
from pgcluster.steps.restore import check, request_from, target_node
from tests.unit.fakes import FakeHost
from tests.unit.helpers import cluster


def seg(position: int, timeline: int = 1) -> str:
    return f"{timeline:08X}{0:08X}{position:08X}"


def backup(name: str, finished: str, stop_lsn: str, label: str = "") -> FullBackup:
    return FullBackup(name, 1, {"label": label or f"pgcluster-full-{name}",
                                "start_wal": seg(1), "finished_at": finished,
                                "stop_lsn": stop_lsn})


def test_restore_parameters_from_data_or_environment() -> None:
    req = request_from({"restore_time": "2026-01-20 12:00:00+00", "restore_node": "db1"},
                       env={"PGCLUSTER_RESTORE_NODE": "db2", "PGCLUSTER_RESTORE_ACTION": "pause"})
    assert (req.target.kind, req.node, req.action, req.timeline, req.backup) == (
        "time", "db1", "pause", "latest", "latest")
    with pytest.raises(ConfigError, match="restore action"):
        request_from({"restore_action": "shutdown"}, env={})
    with pytest.raises(ConfigError, match="restore timeline"):
        request_from({"restore_timeline": "newest"}, env={})
    assert request_from({"restore_name": 12}, env={}).target.value == "12"


PRIMARY = {"running": True, "in_recovery": False, "data": True, "standby_signal": False}


STANDBY = {"running": True, "in_recovery": True, "data": True, "standby_signal": True}


STOPPED = {"running": False, "in_recovery": False, "data": True, "standby_signal": False}


def test_restore_refuses_running_servers_and_second_primaries() -> None:
    topology = decide(cluster(), {"db1": PRIMARY, "db2": STANDBY, "db3": STANDBY})
    with pytest.raises(ConfigError, match="name the node to restore onto"):
        target_node(topology, request_from({}, env={}))
    node, forced = target_node(topology, request_from({"restore_node": "standby"}, env={}))
    assert (node.host, forced) == ("db2", False)
    # Another primary runs: that is the reason, named or not (forcing would not help).
    with pytest.raises(ClusterStateError, match="db1 is the running primary"):
        check(topology, node, forced)
    node, forced = target_node(topology, request_from({"restore_force_node": "db2"}, env={}))
    with pytest.raises(ClusterStateError, match="db1 is the running primary"):
        check(topology, node, forced)
    # No other primary, but the node runs: it must be named to be stopped.
    alone = decide(cluster(), {"db1": STOPPED, "db2": STANDBY, "db3": STANDBY})
    node, forced = target_node(alone, request_from({"restore_node": "db2"}, env={}))
    with pytest.raises(ClusterStateError, match="refusing: db2 runs a PostgreSQL server"):
        check(alone, node, forced)
    # The primary itself, named: allowed (the whole cluster goes back in time).
    node, forced = target_node(topology, request_from({"restore_force_node": "db1"}, env={}))
    check(topology, node, forced)
    with pytest.raises(ConfigError, match="is not the restore's node"):
        target_node(topology, request_from({"restore_node": "db1", "restore_force_node": "db2"},
                                           env={}))
    # A stopped node with no running primary elsewhere needs no forcing.
    topology = decide(cluster(), {"db1": STOPPED, "db2": STANDBY, "db3": STANDBY})
    node, forced = target_node(topology, request_from({"restore_node": "db1"}, env={}))
    check(topology, node, forced)


class Inventory:
    def __init__(self, hosts: list) -> None:
        self.hosts = hosts

    def iter_activated_hosts(self) -> list:
        return self.hosts


def patroni_hosts(active: dict[str, bool]) -> list:
    hosts = [FakeHost(name, facts={HaServices: {"patroni": {"active": on}}},
                      data={"postgresql_version": 15, "postgresql_cluster": "main"})
             for name, on in active.items()]
    for h in hosts:
        h.state.inventory = Inventory(hosts)  # type: ignore[attr-defined]
    return hosts


def test_an_in_place_restore_under_patroni_needs_patroni_stopped_everywhere(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A replica's Patroni that ran during the restore would promote it: refused, naming
    where it runs and the way to do it; with Patroni stopped everywhere, and under the
    manual engine, nothing is refused here."""
    topology = decide(cluster(), {"db1": {}, "db2": {}, "db3": {}}, strict=False)
    hosts = patroni_hosts({"db1": False, "db2": True, "db3": False})
    monkeypatch.setattr(restore, "host", hosts[0])
    with pytest.raises(ClusterStateError, match=r"Patroni runs on db2\..*pgcluster stop"):
        restore.check_patroni(topology, "patroni")
    restore.check_patroni(topology, "manual")
    stopped = patroni_hosts({"db1": False, "db2": False, "db3": False})
    monkeypatch.setattr(restore, "host", stopped[0])
    restore.check_patroni(topology, "patroni")
