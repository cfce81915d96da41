"""What a drill measured and whether it met its goals (pure: no clock, no database).

A failover or switchover drill runs the continuous writer (pgcluster.control.writer) while
it acts, then reads back which ids the new primary holds. From the writer's acknowledged
commits, those ids and the moments the drill noted (its events), this module computes the
figures people judge a cluster by: how long writes stopped, how many acknowledged commits
were lost, how long until every replica streamed again. Keeping it free of I/O lets the
same figures be tested here, printed by the CLI and written into reports.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise

Ack = tuple[int, float, str]  # (id, epoch seconds, via): the shape of Writer.acknowledged

# Event names the drill may note, in the order they happen; only "fault" is required.
FAULT, PROMOTED, RECOVERED, END = "fault", "promoted", "recovered", "end"
EVENTS = (FAULT, PROMOTED, RECOVERED, END)

# How far before the fault the outage may have begun: the old primary's last ack can
# land just before the drill notes the fault (as in Writer.outage_after).
OUTAGE_LOOKBACK = 1.0
LISTED_IDS = 10  # lost ids named in a reason; beyond that, a count


@dataclass(frozen=True)
class Measurements:
    """A drill's figures, in seconds unless the name says otherwise. None means the moment
    never came (no write after the fault, no recovery), which is not the same as zero."""

    commits: int  # acknowledged commits over the whole run
    lost: list[int]  # acknowledged ids absent from the new primary, sorted
    longest_gap: float  # the longest pause between consecutive acks over the run
    first_write_after_fault: float | None  # fault -> the new primary's first ack
    time_to_promoted: float | None  # fault -> "promoted" event
    time_to_recovered: float | None  # fault -> "recovered" event
    rate: float  # acks per second between the first and the last ack
    started_at: float | None  # epoch of the first ack: the origin of commit_series()


@dataclass(frozen=True)
class Goals:
    """The limits a drill must stay within (group_data: drill_max_rto_seconds,
    drill_max_lost_commits)."""

    max_rto_seconds: float
    max_lost_commits: int


@dataclass(frozen=True)
class Verdict:
    passed: bool
    reasons: list[str]  # one sentence per missed goal; empty when passed


def _times(acknowledged: Sequence[Ack]) -> list[float]:
    """Ack times in order: the writer appends in order, but a report built from a merged or
    reloaded record should not depend on it."""
    return sorted(at for _, at, _ in acknowledged)


def fault_time(events: Mapping[str, float]) -> float:
    """The moment the drill acted, which every figure is measured from; a drill that did
    not note it cannot be judged, so say so instead of guessing."""
    if FAULT not in events:
        raise ValueError(f"the drill's events have no {FAULT!r} moment "
                         f"(got: {', '.join(sorted(events)) or 'none'})")
    return events[FAULT]


def longest_gap(times: Sequence[float]) -> float:
    """The longest pause between consecutive acks (0 with fewer than two): the outage as
    an application would feel it, wherever in the run it happened."""
    return max((b - a for a, b in pairwise(sorted(times))), default=0.0)


def first_write_after(times: Sequence[float], fault: float) -> float | None:
    """When the new primary took its first write: the ack ending the longest pause that
    begins at most OUTAGE_LOOKBACK before the fault, as Writer.outage_after reads it. The
    first ack after the fault is not the answer, since the old primary may still acknowledge
    a commit or two after the drill acted. Two departures from the writer's reading, both
    where it would name a moment that is not the outage's end: pauses that ended before the
    fault are ignored, and when the writer was idle in the second before the fault the
    pause is taken to run from its last ack (or from the fault, with none before).
    None when nothing was acknowledged after the fault."""
    times = sorted(times)
    after = [t for t in times if t >= fault]
    if not after:
        return None
    before = [t for t in times if fault - OUTAGE_LOOKBACK <= t < fault]
    if not before:
        earlier = [t for t in times if t < fault]
        before = [earlier[-1] if earlier else fault]
    gaps = [(a, b) for a, b in pairwise(before + after) if b >= fault]
    return max(gaps, key=lambda gap: gap[1] - gap[0])[1]


def rate(times: Sequence[float]) -> float:
    """The writer's pace: intervals per second between the first and the last ack (0 when
    there is no span), so a steady 10 ms writer reads 100/s whatever the run's length."""
    times = sorted(times)
    if len(times) < 2 or times[-1] <= times[0]:
        return 0.0
    return (len(times) - 1) / (times[-1] - times[0])


def lost_ids(acknowledged: Sequence[Ack], present: Collection[int]) -> list[int]:
    """Acknowledged ids the new primary does not hold: commits the cluster promised and
    then forgot. Sorted, each once, so reports compare across runs."""
    found = set(present)
    return sorted({i for i, _, _ in acknowledged if i not in found})


def _since(events: Mapping[str, float], name: str, fault: float) -> float | None:
    return events[name] - fault if name in events else None


def measure(acknowledged: Sequence[Ack], present: Collection[int],
            events: Mapping[str, float]) -> Measurements:
    """Every figure of a failover or switchover drill from what the writer and the drill
    recorded (acknowledged: Writer.acknowledged; present: the ids on the new primary)."""
    fault = fault_time(events)
    times = _times(acknowledged)
    first = first_write_after(times, fault)
    return Measurements(
        commits=len(times),
        lost=lost_ids(acknowledged, present),
        longest_gap=longest_gap(times),
        first_write_after_fault=None if first is None else first - fault,
        time_to_promoted=_since(events, PROMOTED, fault),
        time_to_recovered=_since(events, RECOVERED, fault),
        rate=rate(times),
        started_at=times[0] if times else None,
    )


def commit_series(acknowledged: Sequence[Ack],
                  origin: float | None = None) -> list[tuple[float, int]]:
    """(seconds since origin, acknowledged so far) per ack, for the chart: a flat stretch
    is the outage. origin defaults to the first ack (Measurements.started_at)."""
    times = _times(acknowledged)
    if not times:
        return []
    start = times[0] if origin is None else origin
    return [(at - start, n) for n, at in enumerate(times, start=1)]


def seconds(value: float) -> str:
    """14.23 -> '14.2 s'; goals keep their own precision ('10 s', '2.5 s')."""
    return f"{value:.1f} s"


def goal_seconds(value: float) -> str:
    return f"{value:g} s"


def listed(ids: Sequence[int], limit: int = LISTED_IDS) -> str:
    """'41, 42, 43', or the first `limit` and how many more, so one reason stays a line."""
    shown = ", ".join(map(str, ids[:limit]))
    return shown if len(ids) <= limit else f"{shown} and {len(ids) - limit} more"


def verdict(measurements: Measurements, goals: Goals) -> Verdict:
    """Pass only if writes resumed within the RTO goal, no more commits were lost than
    allowed and the replicas streamed again. Each reason names the group_data setting that
    holds the goal, so whoever reads a failed drill knows what was asked and where."""
    m, reasons = measurements, []
    if m.first_write_after_fault is None:
        reasons.append("no write was acknowledged after the fault, goal a first write "
                       f"within {goal_seconds(goals.max_rto_seconds)} "
                       "(drill_max_rto_seconds)")
    elif m.first_write_after_fault > goals.max_rto_seconds:
        reasons.append(f"first write {seconds(m.first_write_after_fault)} after the fault, "
                       f"goal {goal_seconds(goals.max_rto_seconds)} (drill_max_rto_seconds)")
    if len(m.lost) > goals.max_lost_commits:
        noun = "commit" if len(m.lost) == 1 else "commits"
        reasons.append(f"{len(m.lost)} acknowledged {noun} lost (ids {listed(m.lost)}), "
                       f"goal {goals.max_lost_commits} (drill_max_lost_commits)")
    if m.time_to_recovered is None:
        reasons.append("recovery never happened: not every replica streamed from the new "
                       "primary again before the drill ended")
    return Verdict(passed=not reasons, reasons=reasons)
