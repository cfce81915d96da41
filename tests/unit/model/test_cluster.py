"""Nodes and their names: the slot a node name gives."""

from __future__ import annotations

from pgcluster.model.cluster import slot_name


def test_slot_names_from_node_names() -> None:
    assert slot_name("postgresql-standby") == "postgresql_standby"
    assert slot_name("DB2.example.net") == "db2_example_net"
