"""The status report as text, and which certificate findings are issues or warnings."""

from __future__ import annotations

from dataclasses import asdict

from pgcluster.control.status import NodeStatus, Report, certificate_findings, patroni_findings
from pgcluster.control.status import format_report as render_status
from pgcluster.model.patroni import parse_members

PRIMARY = {"running": True, "in_recovery": False, "data": True, "standby_signal": False}


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


MEMBERS = """[{"Cluster": "pgcluster", "Member": "db1", "Host": "10.0.0.1", "Role": "Leader",
  "State": "running", "TL": 3},
 {"Cluster": "pgcluster", "Member": "db2", "Host": "10.0.0.2", "Role": "Replica",
  "State": "streaming", "TL": 3, "Lag in MB": 0},
 {"Cluster": "pgcluster", "Member": "db3", "Host": "10.0.0.3", "Role": "Replica",
  "State": "streaming", "TL": 3, "Lag in MB": 0, "Tags": {"nofailover": true}}]"""


def test_patroni_agreeing_with_postgresql_adds_nothing_and_is_shown() -> None:
    view = parse_members(MEMBERS)
    assert patroni_findings(view, "db1", 1024 * 1024) == []
    report = Report(healthy=True, issues=[], primary="db1", nodes=[], replication=[],
                    archiver=None, last_backup=None, collected_at=0, engine="patroni",
                    patroni=[asdict(m) for m in view.members])
    text = render_status(report)
    assert "PATRONI MEMBER" in text
    assert [line.split()[:3] for line in text.splitlines() if line.startswith("db")] == [
        ["db1", "leader", "running"], ["db2", "replica", "streaming"],
        ["db3", "replica", "streaming"]]
    assert "nofailover" in text


def test_a_leader_that_is_not_the_writer_is_an_issue() -> None:
    found = patroni_findings(parse_members(MEMBERS), "db2", None)
    assert found == ["Patroni's leader is db1 but db2 accepts writes"]
    stopped = parse_members(MEMBERS.replace('"State": "streaming", "TL": 3, "Lag in MB": 0}',
                                            '"State": "stopped"}'))
    assert any("db2 is stopped" in f for f in patroni_findings(stopped, "db1", None))
