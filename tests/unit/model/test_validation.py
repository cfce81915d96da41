"""Validation: every bad inventory or data value is caught with a message that says what
is wrong and how to fix it."""

from __future__ import annotations

import pytest

from pgcluster.control.preflight import validate_inventory
from pgcluster.model import validation
from tests.unit.helpers import SCHEMA, entry, three_nodes


def problems(entries) -> list[str]:
    return validation.problems(entries, SCHEMA)


def only_problem(entries) -> str:
    found = problems(entries)
    assert len(found) == 1, found
    return found[0]


def test_the_three_node_inventory_is_valid() -> None:
    cluster = validate_inventory(three_nodes())
    assert [n.role for n in cluster.nodes] == ["primary", "standby", "readonly"]


def test_no_primary() -> None:
    message = only_problem([entry("db2", "standby"), entry("db3", "readonly")])
    assert "no primary" in message and "group `primary`" in message


def test_two_primaries() -> None:
    message = only_problem([entry("db1", "primary"), entry("db2", "primary")])
    assert "more than one primary (db1, db2)" in message
    assert "`standby` or `readonly`" in message


def test_unknown_role() -> None:
    entries = [*three_nodes(), entry("db4", None, node_role="witness")]
    message = only_problem(entries)
    assert "unknown role 'witness'" in message and "primary, standby, readonly" in message


def test_host_without_role() -> None:
    message = only_problem([*three_nodes(), entry("db4", None)])
    assert "host db4 has no role" in message


def test_host_in_two_role_groups() -> None:
    from pgcluster.model.cluster import HostEntry

    nodes = three_nodes()
    nodes[2] = HostEntry("db3", ("standby", "readonly"), nodes[2].data)
    assert "several role groups (standby, readonly)" in only_problem(nodes)


@pytest.mark.parametrize("bad_name", ["x" * 64, "   "])
def test_node_name_that_is_not_a_valid_slot_name(bad_name: str) -> None:
    nodes = three_nodes()
    nodes[1] = entry("db2", "standby", node_address="10.0.0.2", node_name=bad_name)
    message = " ".join(problems(nodes))
    assert "replication slot name" in message and "`node_name`" in message


def test_node_names_colliding_once_normalised() -> None:
    # - becomes _ in the slot name, the only normalisation a valid node name needs (a name
    # such as pg.replica, which needs more, is refused itself: see below).
    nodes = three_nodes()
    nodes[1] = entry("db2", "standby", node_address="10.0.0.2", node_name="pg-replica")
    nodes[2] = entry("db3", "readonly", node_address="10.0.0.3", node_name="pg_replica")
    message = only_problem(nodes)
    assert "share the replication slot name 'pg_replica'" in message


@pytest.mark.parametrize("bad_name", ["pg.replica", "DB2", "2db", "db 2", "db2;"])
def test_node_name_that_needs_more_than_dashes_normalised(bad_name: str) -> None:
    nodes = three_nodes()
    nodes[1] = entry("db2", "standby", node_address="10.0.0.2", node_name=bad_name)
    message = only_problem(nodes)
    assert f"node_name = {bad_name!r} on db2 is not a valid node name" in message
    assert "a lower-case letter, then lower-case letters, digits, _ or -" in message


def test_inventory_name_used_as_node_name_must_be_valid() -> None:
    nodes = three_nodes()
    nodes[2] = entry("db3.example.net", "readonly", node_address="10.0.0.3")
    message = only_problem(nodes)
    assert "host db3.example.net has no node_name" in message
    assert "'db3.example.net', which is not valid" in message and "`node_name`" in message


def test_two_nodes_publishing_the_same_port() -> None:
    nodes = [
        entry("db1", "primary", node_address="10.0.0.1", published_port=5432),
        entry("db2", "standby", node_address="10.0.0.2", published_port=5432),
        entry("db3", "readonly", node_address="10.0.0.3", published_port=5434),
    ]
    message = only_problem(nodes)
    assert "db2" in message and "both publish port 5432" in message
    assert "`published_port`" in message


def test_port_out_of_range() -> None:
    nodes = three_nodes()
    nodes[0] = entry("db1", "primary", node_address="10.0.0.1", postgresql_port=70000)
    assert "postgresql_port = 70000" in only_problem(nodes)


@pytest.mark.parametrize("version", [14, 16, "15"])
def test_unsupported_postgresql_version(version) -> None:
    message = only_problem(three_nodes(postgresql_version=version))
    assert f"postgresql_version = {version!r} is not supported" in message
    assert "postgresql_version = 15" in message


def test_wal_level_minimal_cannot_replicate() -> None:
    found = problems(three_nodes(wal_level="minimal"))
    assert len(found) == 3 and all("wal_level = 'minimal'" in p for p in found)


def test_too_few_wal_senders_for_the_replicas() -> None:
    found = problems(three_nodes(max_wal_senders=2))
    assert found and "max_wal_senders = 2" in found[0] and "at least 4" in found[0]


def test_unsafe_identifiers_in_data() -> None:
    found = problems(three_nodes(database_schema="proyecto; drop table x"))
    assert found and "database_schema" in found[0] and "identifier" in found[0]
