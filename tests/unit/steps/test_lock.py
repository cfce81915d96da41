"""The cluster-wide operation lock around a deploy: refused while another run holds it,
taken node by node when the run starts, released at the end or at the first failure, and
checked against the states the plan was made from."""

from __future__ import annotations

import shlex
from typing import Any

import pytest

from pgcluster.errors import ClusterStateError
from pgcluster.facts.lock import OperationLock
from pgcluster.facts.postgres import PgNode
from pgcluster.model.lock import LockRecord, new_record
from pgcluster.model.topology import decide
from pgcluster.steps import lock
from tests.unit.helpers import cluster

PRIMARY = {"running": True, "in_recovery": False, "data": True}
STANDBY = {"running": True, "in_recovery": True, "data": True}


class Node:
    """A node's lock file and PostgreSQL state, as the lock code reaches them."""

    def __init__(self, name: str, live: dict, state: FakeState):
        self.name, self.live, self.state, self.lock_text = name, live, state, ""

    def get_fact(self, fact: type, **kwargs: Any) -> Any:
        if fact is OperationLock:
            return LockRecord.parse(self.lock_text)
        assert fact is PgNode
        return self.live

    @property
    def data(self) -> Any:
        return type("Data", (dict,), {"dict": lambda s: dict(s)})()


class FakeState:
    def __init__(self) -> None:
        self.callback_handlers: list[Any] = []
        self.nodes: dict[str, Node] = {}
        self.inventory = self

    def iter_activated_hosts(self) -> list[Node]:
        return list(self.nodes.values())

    def add_callback_handler(self, handler: Any) -> None:
        self.callback_handlers.append(handler)

    def get_op_order(self) -> list[str]:
        return ["first", "last"]


def fake_run(state: Any, host: Node, command: str) -> tuple[bool, str]:
    """Enough of a shell for the lock's three commands."""
    words = shlex.split(command.replace(";", " ; ").replace("(", " ( ").replace(")", " ) "))
    if words[:2] == ["rm", "-f"]:
        host.lock_text = ""
        return True, ""
    if words[:3] == ["if", "grep", "-qxF"]:
        if f"{words[3]}\n" in host.lock_text:
            host.lock_text = ""
        return True, ""
    if host.lock_text:
        return True, host.lock_text
    host.lock_text = words[words.index("printf") + 2]
    return True, lock.ACQUIRED


@pytest.fixture
def state(monkeypatch: pytest.MonkeyPatch) -> FakeState:
    monkeypatch.setattr(lock, "_run", fake_run)
    monkeypatch.setattr(lock, "node_state", lambda host: host.live)
    s = FakeState()
    for name, live in (("db1", PRIMARY), ("db2", STANDBY), ("db3", STANDBY)):
        s.nodes[name] = Node(name, live, s)
    return s


def planned(state: FakeState):
    return decide(cluster(), {name: node.live for name, node in state.nodes.items()})


def test_the_lock_is_taken_on_every_node_and_released_after_the_last_step(
        state: FakeState) -> None:
    lock.hold(state, planned(state), "cluster deploy")  # type: ignore[arg-type]
    lock.hold(state, planned(state), "cluster deploy")  # type: ignore[arg-type]
    [handler] = state.callback_handlers
    handler.operation_start(state, "first")
    assert all("command=cluster deploy" in n.lock_text for n in state.nodes.values())
    handler.operation_end(state, "first")
    assert all(n.lock_text for n in state.nodes.values())
    handler.operation_end(state, "last")
    assert not any(n.lock_text for n in state.nodes.values())


def test_a_failed_step_releases_the_lock(state: FakeState) -> None:
    lock.hold(state, planned(state), "failover")  # type: ignore[arg-type]
    handler = state.callback_handlers[0]
    handler.operation_start(state, "first")
    handler.operation_host_error(state, state.nodes["db2"], "first")
    assert not any(n.lock_text for n in state.nodes.values())


def test_another_runs_lock_refuses_when_planning_and_when_starting(state: FakeState) -> None:
    other = new_record("ana@laptop", 7, "pgcluster switchover --to db2", "other-token")
    state.nodes["db2"].lock_text = other.to_text()
    with pytest.raises(ClusterStateError, match="db2 holds the operation lock of `pgcluster "
                                                "switchover --to db2` by ana@laptop"):
        lock.hold(state, planned(state), "failover")  # type: ignore[arg-type]
    # Planned before the other run took it: refused when this run starts, and what this
    # run had taken on the nodes before (db1) is given back; the other's lock stays.
    state.nodes["db2"].lock_text = ""
    lock.hold(state, planned(state), "failover")  # type: ignore[arg-type]
    state.nodes["db2"].lock_text = other.to_text()
    with pytest.raises(ClusterStateError, match="cluster is busy"):
        state.callback_handlers[0].operation_start(state, "first")
    assert state.nodes["db1"].lock_text == "" and "other-token" in state.nodes["db2"].lock_text


def test_break_lock_replaces_a_stale_lock(state: FakeState) -> None:
    stale = new_record("ana@laptop", 7, "pgcluster failover", "stale")
    state.nodes["db3"].lock_text = stale.to_text()
    lock.hold(state, planned(state), "rejoin", break_lock=True)  # type: ignore[arg-type]
    state.callback_handlers[0].operation_start(state, "first")
    assert "command=rejoin" in state.nodes["db3"].lock_text


def test_nothing_is_done_on_a_cluster_that_changed_after_planning(state: FakeState) -> None:
    lock.hold(state, planned(state), "switchover")  # type: ignore[arg-type]
    state.nodes["db2"].live = PRIMARY  # promoted by someone else meanwhile
    with pytest.raises(ClusterStateError, match="db2 in_recovery was True, is False"):
        state.callback_handlers[0].operation_start(state, "first")
    assert not any(n.lock_text for n in state.nodes.values())


def test_hosts_planned_in_parallel_register_one_lock(state: FakeState,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """pyinfra plans each host in its own greenlet, and reading a fact yields to the others."""
    import gevent

    real = Node.get_fact

    def yielding(self: Node, fact: type, **kwargs: Any) -> Any:
        gevent.sleep(0.01)
        return real(self, fact, **kwargs)

    monkeypatch.setattr(Node, "get_fact", yielding)
    jobs = [gevent.spawn(lock.hold, state, planned(state), "cluster deploy") for _ in range(3)]
    gevent.joinall(jobs, raise_error=True)
    assert len(state.callback_handlers) == 1
