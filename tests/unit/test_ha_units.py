"""Pieces of the failover machinery that need no Docker: connection strings, the
split-brain tolerance of `stop`, synchronous replication rendering, scripts, status text."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from pgcluster.errors import ClusterStateError
from pgcluster.render import context, render
from pgcluster.replication import conninfo_quote, primary_conninfo, rewind_conninfo
from pgcluster.status import NodeStatus, Report, certificate_findings
from pgcluster.status import render as render_status
from pgcluster.topology import decide
from tests.unit.helpers import ALL, SECRETS, cluster

PRIMARY = {"running": True, "in_recovery": False, "data": True, "standby_signal": False}


def test_primary_conninfo_names_the_replica_and_uses_the_password_file() -> None:
    c = cluster()
    text = primary_conninfo(c.node("db1"), c.node("db2"), {**ALL, **SECRETS})
    assert text == ("host=10.0.0.1 port=5432 user=replicator "
                    "passfile=/var/lib/postgresql/.pgpass application_name=db2 connect_timeout=5"
                    " sslmode=verify-full sslrootcert=/etc/postgresql/15/main/tls/ca.crt"
                    " channel_binding=require")
    assert "s3cret" not in text


def test_rewind_conninfo_uses_the_rewind_role_on_database_postgres() -> None:
    c = cluster()
    text = rewind_conninfo(c.node("db2"), {**ALL, **SECRETS})
    assert "user=rewinder" in text and "dbname=postgres" in text and "host=10.0.0.2" in text


def test_conninfo_quoting() -> None:
    assert conninfo_quote("plain") == "plain"
    assert conninfo_quote("two words") == "'two words'"
    assert conninfo_quote("it's") == "'it\\'s'"


def test_stop_tolerates_split_brain_but_nothing_else_does() -> None:
    live = {"db1": PRIMARY, "db2": PRIMARY, "db3": {}}
    with pytest.raises(ClusterStateError):
        decide(cluster(), live)
    topology = decide(cluster(), live, strict=False)
    assert topology.primary.host == "db1" and "split brain" in topology.notes[0]


def conf_for(node: str, **data) -> str:
    c = cluster(**data)
    return render("postgresql/postgresql.conf.j2",
                  context({**ALL, **SECRETS, **data}, c.node(node), c))


def test_synchronous_replication_is_off_by_default() -> None:
    assert "synchronous_standby_names = ''" in conf_for("db1")


def test_synchronous_standbys_exclude_the_node_itself() -> None:
    data = {"synchronous_standbys": ["db2", "db1"]}
    assert "synchronous_standby_names = 'FIRST 1 (\"db2\")'" in conf_for("db1", **data)
    assert "synchronous_standby_names = 'FIRST 1 (\"db1\")'" in conf_for("db2", **data)
    assert "synchronous_commit = on" in conf_for("db1", **data)


@pytest.mark.parametrize("script", ["start-guard", "rejoin-replica"])
def test_ha_scripts_are_valid_bash(tmp_path: Path, script: str) -> None:
    c = cluster()
    path = tmp_path / script
    path.write_text(render(f"scripts/{script}.j2", context({**ALL, **SECRETS}, c.node("db2"), c)))
    subprocess.run(["bash", "-n", str(path)], check=True)


def test_start_guard_asks_every_other_node() -> None:
    c = cluster()
    text = render("scripts/start-guard.j2", context({**ALL, **SECRETS}, c.node("db2"), c))
    assert "10.0.0.1:5432 10.0.0.3:5432" in text and "10.0.0.2:5432" not in text
    assert "IDENTIFY_SYSTEM" in text and "rejoin db2" in text


def test_status_text_flags_problems() -> None:
    nodes = [NodeStatus("db1", "primary", "10.0.0.1", 5432, None, True, running=True,
                        role="PRIMARY", timeline=2, current_lsn="0/3000060"),
             NodeStatus("db2", "standby", "10.0.0.2", 5432, None, False)]
    report = Report(healthy=False, issues=["db2 is unreachable"], primary="db1", nodes=nodes,
                    replication=[], archiver=None, last_backup=None, collected_at=0)
    text = render_status(report)
    assert "db1" in text and "PRIMARY" in text and "UNREACHABLE" in text
    assert text.rstrip().endswith("- db2 is unreachable")
    assert report.as_dict()["nodes"][1]["reachable"] is False


def test_certificates_expired_are_issues_and_near_expiry_warnings() -> None:
    def node(name: str, days: int | None) -> NodeStatus:
        return NodeStatus(name, "standby", "10.0.0.9", 5432, None, True, running=True,
                          certificate_expires="2027-01-01T00:00:00+00:00",
                          certificate_days_left=days)

    nodes = [node("fresh", 364), node("soon", 12), node("edge", 30), node("gone", -1),
             node("unknown", None)]
    issues, warnings = certificate_findings(nodes, renew_days=30)
    assert len(issues) == 1 and issues[0].startswith("gone: its TLS certificate expired")
    assert [w.split(":")[0] for w in warnings] == ["soon", "edge"]
    assert "next deploy run renews it" in warnings[0]
    report = Report(healthy=True, issues=[], primary=None, nodes=nodes[:2], replication=[],
                    archiver=None, last_backup=None, collected_at=0, warnings=warnings[:1])
    text = render_status(report)
    assert "TLS certificates expire in: fresh 364 d, soon 12 d" in text
    assert text.rstrip().endswith(warnings[0]) and "HEALTHY" in text


def test_synchronous_names_parsing() -> None:
    from pgcluster.promotion import synchronous_names

    assert synchronous_names("") == []
    assert synchronous_names('FIRST 1 ("pg-standby", "pg-primary")') == ["pg-standby",
                                                                           "pg-primary"]
    assert synchronous_names("ANY 1 (a, b)") == ["a", "b"]
    assert synchronous_names("a, b") == ["a", "b"]
