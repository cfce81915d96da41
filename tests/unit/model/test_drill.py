"""A drill's figures from the writer's record and its verdict against the goals
(pgcluster.model.drill)."""

from __future__ import annotations

import pytest

from pgcluster.control.writer import Writer
from pgcluster.model import drill
from pgcluster.model.drill import Goals, Measurements

FAULT = 1_000.0
GOALS = Goals(max_rto_seconds=10, max_lost_commits=0)


def steady(start: float, stop: float, via: str, first_id: int = 1,
           step: float = 0.01) -> list[drill.Ack]:
    """Acks every `step` seconds from start (inclusive) to stop (exclusive)."""
    count = round((stop - start) / step)
    return [(first_id + n, start + n * step, via) for n in range(count)]


def failover_run() -> list[drill.Ack]:
    """Acks every 10 ms from fault - 2 s on the old primary (port 5432), one more from it
    5 ms after the fault, then nothing until the new primary (5433) answers 6 s later."""
    acks = steady(FAULT - 2, FAULT, "5432")  # ids 1..200
    acks.append((201, FAULT + 0.005, "5432"))
    return acks + steady(FAULT + 6, FAULT + 8, "5433", first_id=202)  # ids 202..401


def measurements(**overrides: object) -> Measurements:
    figures = {"commits": 400, "lost": [], "longest_gap": 6.0, "first_write_after_fault": 6.0,
               "time_to_promoted": 5.0, "time_to_recovered": 9.0, "rate": 100.0,
               "started_at": FAULT - 2}
    return Measurements(**{**figures, **overrides})  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- figures


def test_a_failover_run_gives_its_outage_losses_and_pace() -> None:
    acks = failover_run()
    present = {i for i, _, _ in acks} - {199, 201, 200}
    events = {"fault": FAULT, "promoted": FAULT + 5.5, "recovered": FAULT + 9.25,
              "end": FAULT + 8}
    m = drill.measure(acks, present, events)
    assert m.commits == 401
    assert m.lost == [199, 200, 201]
    # The old primary's ack 5 ms after the fault is not the resumption: the new one's is.
    assert m.first_write_after_fault == pytest.approx(6.0)
    assert m.longest_gap == pytest.approx(5.995)
    assert m.time_to_promoted == pytest.approx(5.5)
    assert m.time_to_recovered == pytest.approx(9.25)
    assert m.started_at == FAULT - 2
    assert m.rate == pytest.approx(400 / 9.99)  # 400 intervals, ids 1 to 401


def test_the_first_write_after_the_fault_agrees_with_the_writer() -> None:
    writer = Writer("unused")
    writer.acknowledged = failover_run()
    _, resumed = writer.outage_after(FAULT)
    first = drill.first_write_after([at for _, at, _ in writer.acknowledged], FAULT)
    assert first == resumed == FAULT + 6


def test_a_five_second_gap_is_the_longest_wherever_it_falls() -> None:
    acks = steady(0, 10, "5432") + steady(15, 20, "5432", first_id=1001)
    assert drill.longest_gap([at for _, at, _ in acks]) == pytest.approx(5.01)
    # A fault in the middle of it: the outage ends when writes resume, 3 s later.
    assert drill.first_write_after([at for _, at, _ in acks], 12.0) == pytest.approx(15.0)


def test_a_pause_that_ended_before_the_fault_is_not_the_outage() -> None:
    # A 0.8 s hiccup that ended 0.2 s before the fault, then a 0.3 s outage after it.
    acks = [(n, at, "5432") for n, at in enumerate([99.0, 99.8, 99.81, 100.0, 100.3, 100.31])]
    assert drill.first_write_after([at for _, at, _ in acks], 100.0) == pytest.approx(100.3)
    writer = Writer("unused")
    writer.acknowledged = acks
    assert writer.outage_after(100.0) == (99.0, 99.8)  # the writer's reading ends before it


def test_the_writer_idle_before_the_fault_takes_the_first_ack_after_it() -> None:
    assert drill.first_write_after([90.0, 103.0, 103.01], 100.0) == 103.0
    assert drill.first_write_after([103.0], 100.0) == 103.0


def test_no_write_after_the_fault_and_no_record_at_all() -> None:
    m = drill.measure(steady(FAULT - 1, FAULT, "5432"), set(), {"fault": FAULT})
    assert m.first_write_after_fault is None and m.time_to_recovered is None
    assert m.lost == list(range(1, 101))
    empty = drill.measure([], set(), {"fault": FAULT})
    assert (empty.commits, empty.longest_gap, empty.rate, empty.started_at) == (0, 0.0, 0.0,
                                                                                 None)


def test_lost_ids_are_exact_sorted_and_unique() -> None:
    acks = [(5, 1.0, "a"), (3, 2.0, "a"), (9, 3.0, "b"), (3, 4.0, "b"), (7, 5.0, "b")]
    assert drill.lost_ids(acks, {5, 7}) == [3, 9]
    assert drill.lost_ids(acks, {3, 5, 7, 9, 11}) == []


def test_a_drill_without_a_fault_moment_is_refused() -> None:
    with pytest.raises(ValueError, match=r"no 'fault' moment.*promoted"):
        drill.measure(failover_run(), set(), {"promoted": FAULT})


def test_the_series_counts_acks_from_the_first_commit() -> None:
    acks = [(2, 10.5, "a"), (1, 10.0, "a"), (3, 13.0, "b")]
    assert drill.commit_series(acks) == [(0.0, 1), (0.5, 2), (3.0, 3)]
    assert drill.commit_series(acks, origin=9.0) == [(1.0, 1), (1.5, 2), (4.0, 3)]
    assert drill.commit_series([]) == []


# ---------------------------------------------------------------------------- verdict


def test_a_drill_within_its_goals_passes() -> None:
    result = drill.verdict(measurements(), GOALS)
    assert result.passed and result.reasons == []
    # At the limit still passes: the goal is "at most".
    assert drill.verdict(measurements(first_write_after_fault=10.0), GOALS).passed


def test_each_missed_goal_is_a_reason_naming_its_setting() -> None:
    result = drill.verdict(measurements(first_write_after_fault=14.23, lost=[41, 42, 43]),
                           GOALS)
    assert not result.passed
    assert result.reasons == [
        "first write 14.2 s after the fault, goal 10 s (drill_max_rto_seconds)",
        "3 acknowledged commits lost (ids 41, 42, 43), goal 0 (drill_max_lost_commits)"]


def test_losses_within_the_allowance_pass_and_long_lists_are_cut() -> None:
    assert drill.verdict(measurements(lost=[1, 2]), Goals(10, 2)).passed
    assert drill.verdict(measurements(lost=[7]), GOALS).reasons == [
        "1 acknowledged commit lost (ids 7), goal 0 (drill_max_lost_commits)"]
    reason, = drill.verdict(measurements(lost=list(range(1, 26))), GOALS).reasons
    assert "ids 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 and 15 more" in reason
    assert reason.startswith("25 acknowledged commits lost")


def test_no_write_after_the_fault_or_no_recovery_fails_and_says_so() -> None:
    result = drill.verdict(measurements(first_write_after_fault=None,
                                        time_to_recovered=None), Goals(2.5, 0))
    assert not result.passed
    assert result.reasons[0] == ("no write was acknowledged after the fault, goal a first "
                                 "write within 2.5 s (drill_max_rto_seconds)")
    assert result.reasons[1].startswith("recovery never happened")
