"""A drill's report on disk: JSON that round-trips its figures, Markdown with the verdict
and the chart, and a PNG matplotlib can read back (pgcluster.control.drill_report)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import matplotlib.image
import pytest

from pgcluster.control import drill_report
from pgcluster.model import drill
from pgcluster.model.drill import Goals, Measurements

FAULT = 1_796_652_000.0  # 2026-12-07T14:00:00Z
EVENTS = {"fault": FAULT, "promoted": FAULT + 12.5, "recovered": FAULT + 20.0,
          "end": FAULT + 25.0}
GOALS = Goals(max_rto_seconds=10, max_lost_commits=0)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def acknowledged() -> list[drill.Ack]:
    """Acks every 50 ms for 5 s before the fault (ids 1-100), a 14.2 s outage, then 50 ms
    again for 10 s on the new primary (ids 101-300)."""
    old = [(n + 1, FAULT - 5 + n * 0.05, "5432") for n in range(100)]
    new = [(n + 101, FAULT + 14.2 + n * 0.05, "5433") for n in range(200)]
    return old + new


@pytest.fixture()
def failed() -> tuple[Measurements, drill.Verdict, list[tuple[float, int]]]:
    acks = acknowledged()
    present = {i for i, _, _ in acks} - {41, 42, 43}
    m = drill.measure(acks, present, EVENTS)
    return m, drill.verdict(m, GOALS), drill.commit_series(acks)


def test_the_default_directory_is_named_after_the_utc_time() -> None:
    madrid = timezone(timedelta(hours=1))
    now = datetime(2026, 12, 7, 15, 0, 0, tzinfo=madrid)
    assert drill_report.default_report_dir(now) == Path("drills/20261207T140000Z")
    assert drill_report.default_report_dir(FAULT) == Path("drills/20261207T140000Z")
    with pytest.raises(ValueError, match="aware"):
        drill_report.default_report_dir(datetime(2026, 12, 7, 14, 0))


def test_a_failover_report_writes_three_files(tmp_path: Path, failed) -> None:
    m, verdict, series = failed
    paths = drill_report.write_report(tmp_path / "run", "failover", m, verdict, EVENTS,
                                      series, GOALS)
    assert [p.name for p in paths] == ["failover.json", "failover.md", "failover.png"]
    assert all(p.parent == tmp_path / "run" and p.stat().st_size for p in paths)


def test_the_json_round_trips_every_figure(tmp_path: Path, failed) -> None:
    m, verdict, series = failed
    drill_report.write_report(tmp_path, "failover", m, verdict, EVENTS, series, GOALS)
    text = (tmp_path / "failover.json").read_text()
    data = json.loads(text)
    assert Measurements(**data["figures"]) == m
    assert data["figures"]["lost"] == [41, 42, 43]
    assert data["figures"]["first_write_after_fault"] == pytest.approx(14.2)
    assert data["passed"] is False and data["reasons"] == verdict.reasons
    assert data["goals"] == {"drill_max_rto_seconds": 10, "drill_max_lost_commits": 0}
    assert data["units"]["longest_gap"] == "s"
    assert data["events"]["fault"] == {"at": "2026-12-07T14:00:00.000+00:00",
                                       "epoch": FAULT, "since_fault": 0.0}
    assert data["events"]["recovered"]["since_fault"] == pytest.approx(20.0)
    assert text == json.dumps(data, indent=2, sort_keys=True) + "\n"  # sorted keys


def test_the_markdown_shows_the_verdict_figures_goals_and_chart(tmp_path: Path,
                                                                failed) -> None:
    m, verdict, series = failed
    drill_report.write_report(tmp_path, "failover", m, verdict, EVENTS, series, GOALS)
    text = (tmp_path / "failover.md").read_text()
    assert text.startswith("# Failover drill\n\n**Verdict: FAILED**\n")
    assert "- first write 14.2 s after the fault, goal 10 s (drill_max_rto_seconds)" in text
    assert "| First write after the fault | 14.2 s | ≤ 10 s (`drill_max_rto_seconds`) |" in text
    assert "| Acknowledged commits lost | 3 (ids 41, 42, 43) | ≤ 0" in text
    assert "| recovered | 2026-12-07T14:00:20.000+00:00 | 20.0 s |" in text
    assert "](failover.png)" in text.splitlines()[-1]


def test_the_png_is_a_real_chart(tmp_path: Path, failed) -> None:
    m, verdict, series = failed
    drill_report.write_report(tmp_path, "failover", m, verdict, EVENTS, series, GOALS)
    png = tmp_path / "failover.png"
    assert png.read_bytes().startswith(PNG_SIGNATURE)
    pixels = matplotlib.image.imread(png)
    height, width = pixels.shape[:2]
    assert width >= 600 and height >= 300
    assert pixels.std() > 0.01  # not a blank canvas


def test_reports_are_deterministic(tmp_path: Path, failed) -> None:
    m, verdict, series = failed
    one = drill_report.write_report(tmp_path / "a", "switchover", m, verdict, EVENTS, series)
    two = drill_report.write_report(tmp_path / "b", "switchover", m, verdict, EVENTS, series)
    assert [p.read_bytes() for p in one] == [p.read_bytes() for p in two]


def test_a_passed_drill_says_so(tmp_path: Path) -> None:
    acks = [(n + 1, FAULT - 1 + n * 0.1, "5432") for n in range(10)]
    acks += [(n + 11, FAULT + 2 + n * 0.1, "5433") for n in range(10)]
    m = drill.measure(acks, {i for i, _, _ in acks}, EVENTS)
    verdict = drill.verdict(m, GOALS)
    assert verdict.passed
    drill_report.write_report(tmp_path, "switchover", m, verdict, EVENTS,
                              drill.commit_series(acks), GOALS)
    assert "**Verdict: PASSED**" in (tmp_path / "switchover.md").read_text()
    assert "Why:" not in (tmp_path / "switchover.md").read_text()
    text = drill_report.summary("switchover", m, verdict, GOALS)
    assert text.splitlines()[0] == "Switchover drill: PASSED"
    assert "first write 2.0 s after the fault (goal 10 s), 0 commits lost (goal 0)" in text


def test_the_summary_lists_the_reasons(failed) -> None:
    m, verdict, _ = failed
    lines = drill_report.summary("failover", m, verdict, GOALS).splitlines()
    assert lines[0] == "Failover drill: FAILED"
    assert lines[-2:] == [f"  - {reason}" for reason in verdict.reasons]
    assert len(lines) == 5


def test_a_restore_report_takes_a_dict_and_draws_no_chart(tmp_path: Path) -> None:
    result = {"passed": False, "differing_tables": ["proyecto.clientes", "proyecto.pedidos"],
              "duration_s": 42.25, "backup": "20261207T130000"}
    events = {"start": FAULT, "end": FAULT + 42.25}
    paths = drill_report.write_report(tmp_path, "restore", result, None, events)
    assert [p.name for p in paths] == ["restore.json", "restore.md"]
    data = json.loads(paths[0].read_text())
    assert data["passed"] is False
    assert data["reasons"] == ["2 tables differ after the restore: proyecto.clientes, "
                               "proyecto.pedidos"]
    assert data["figures"]["differing_tables"] == result["differing_tables"]
    assert data["events"]["end"]["since_fault"] is None
    text = paths[1].read_text()
    assert "**Verdict: FAILED**" in text and "| Duration | 42.2 s |  |" in text
    assert ".png)" not in text
    assert "2 tables differ" in drill_report.summary("restore", result)
    ok = drill_report.restore_verdict({"passed": True, "differing_tables": []})
    assert ok.passed and ok.reasons == []


def test_unknown_drills_and_missing_verdicts_are_refused(tmp_path: Path, failed) -> None:
    m, verdict, series = failed
    with pytest.raises(ValueError, match=r"unknown drill '\.\./x'"):
        drill_report.write_report(tmp_path, "../x", m, verdict, EVENTS, series)
    with pytest.raises(ValueError, match="needs its Verdict"):
        drill_report.write_report(tmp_path, "failover", m, None, EVENTS, series)
    assert not list(tmp_path.iterdir())


def test_the_origin_is_the_first_commit_so_events_land_where_they_happened() -> None:
    m = drill.measure(acknowledged(), set(), EVENTS)
    assert drill_report._origin(m, EVENTS) == FAULT - 5
    assert drill_report._origin({"passed": True}, {"start": 7.0, "end": 9.0}) == 7.0
    assert datetime.fromtimestamp(FAULT, tz=UTC).isoformat() == "2026-12-07T14:00:00+00:00"
