"""A drill's report on disk: `<drill>.json` for machines, `<drill>.md` for people and
`<drill>.png`, the acknowledged commits over time, where an outage is a flat stretch.

The figures come from pgcluster.model.drill (failover, switchover) or, for a restore drill,
from a plain dict with a `passed` flag and the `differing_tables`; this module only lays
them out. Everything written is deterministic for the same input (sorted JSON keys, no
timestamps in the PNG), so two reports diff cleanly and tests compare them exactly.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from pgcluster.model.drill import (
    FAULT,
    PROMOTED,
    RECOVERED,
    Goals,
    Measurements,
    Verdict,
    goal_seconds,
    listed,
    seconds,
)

DRILLS = ("failover", "switchover", "restore")
REPORTS = Path("drills")  # relative to where the command runs, one directory per run

# Units of Measurements' fields, written next to the figures in the JSON.
UNITS = {"commits": "commits", "lost": "ids", "longest_gap": "s",
         "first_write_after_fault": "s", "time_to_promoted": "s", "time_to_recovered": "s",
         "rate": "commits/s", "started_at": "epoch s"}
# The events the chart marks, with their label and colour; others are only listed.
MARKED = ((FAULT, "fault", "tab:red"), (PROMOTED, "promoted", "tab:orange"),
          (RECOVERED, "recovered", "tab:green"))


@dataclass(frozen=True)
class Row:
    """One line of the figures table: what it is, its value with its unit, its goal."""

    figure: str
    value: str
    goal: str = ""


def default_report_dir(now: datetime | float) -> Path:
    """drills/20261207T140000Z/: UTC, so runs sort by name and no two machines' clocks
    disagree about the zone. A naive datetime is refused: its zone would be a guess."""
    if isinstance(now, datetime):
        if now.tzinfo is None:
            raise ValueError("default_report_dir needs an aware datetime (e.g. datetime.now(UTC))")
        moment = now.astimezone(UTC)
    else:
        moment = datetime.fromtimestamp(now, tz=UTC)
    return REPORTS / moment.strftime("%Y%m%dT%H%M%SZ")


def _check_drill(drill: str) -> None:
    if drill not in DRILLS:  # the name becomes file names: accept only known ones
        raise ValueError(f"unknown drill {drill!r}: expected one of {', '.join(DRILLS)}")


def restore_verdict(result: Mapping[str, Any]) -> Verdict:
    """A restore drill's verdict from its result dict: its own `reasons` if it gave any,
    else one naming the tables whose rows differ after the restore."""
    passed = bool(result["passed"])
    reasons = list(result.get("reasons") or [])
    tables = list(result.get("differing_tables") or [])
    if not reasons and tables:
        noun = "table differs" if len(tables) == 1 else "tables differ"
        reasons = [f"{len(tables)} {noun} after the restore: {', '.join(tables)}"]
    if not passed and not reasons:
        reasons = ["the restore drill failed without saying why"]
    return Verdict(passed=passed, reasons=[] if passed else reasons)


def _verdict(result: Measurements | Mapping[str, Any], verdict: Verdict | None) -> Verdict:
    if verdict is not None:
        return verdict
    if isinstance(result, Measurements):
        raise ValueError("a failover or switchover report needs its Verdict "
                         "(pgcluster.model.drill.verdict)")
    return restore_verdict(result)


def _word(verdict: Verdict) -> str:
    return "PASSED" if verdict.passed else "FAILED"


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat(timespec="milliseconds")


def _ordered(events: Mapping[str, float]) -> list[tuple[str, float]]:
    return sorted(events.items(), key=lambda item: (item[1], item[0]))


def _or_dash(value: float | None) -> str:
    return "-" if value is None else seconds(value)


def measurement_rows(m: Measurements, goals: Goals | None) -> list[Row]:
    """The figures people judge a failover by, goals first, each with its unit."""
    rto = lost = ""
    if goals is not None:
        rto = f"≤ {goal_seconds(goals.max_rto_seconds)} (`drill_max_rto_seconds`)"
        lost = f"≤ {goals.max_lost_commits} (`drill_max_lost_commits`)"
    lost_value = f"{len(m.lost)}" + (f" (ids {listed(m.lost)})" if m.lost else "")
    first = ("never" if m.first_write_after_fault is None
             else seconds(m.first_write_after_fault))
    recovered = "never" if m.time_to_recovered is None else seconds(m.time_to_recovered)
    return [
        Row("First write after the fault", first, rto),
        Row("Acknowledged commits lost", lost_value, lost),
        Row("Replicas streaming again, after the fault", recovered, "required"),
        Row("Promotion seen, after the fault", _or_dash(m.time_to_promoted)),
        Row("Longest pause between commits", seconds(m.longest_gap)),
        Row("Acknowledged commits", str(m.commits)),
        Row("Commit rate", f"{m.rate:.1f} commits/s"),
    ]


def _value(key: str, value: Any) -> str:
    """A restore result's value as people read it: lists joined (an item that carries its
    own `description`, such as a differing table with its rows, by that), seconds with a
    unit."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        if any(isinstance(v, Mapping) and "description" in v for v in value):
            return "; ".join(str(v.get("description", v)) for v in value)
        return ", ".join(map(str, value)) or "none"
    if isinstance(value, int | float) and key.endswith(("_s", "_seconds")):
        return seconds(value)
    return str(value)


def _label(key: str) -> str:
    """duration_s -> 'Duration': the unit goes with the value, not the name."""
    for suffix in ("_seconds", "_s"):
        key = key.removesuffix(suffix)
    return key.replace("_", " ").capitalize()


def restore_rows(result: Mapping[str, Any]) -> list[Row]:
    return [Row(_label(key), _value(key, value))
            for key, value in sorted(result.items()) if key not in ("passed", "reasons")]


def _figures(result: Measurements | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(result, Measurements):
        return asdict(result)
    return {k: v for k, v in result.items() if k not in ("passed", "reasons")}


def report_data(drill: str, result: Measurements | Mapping[str, Any], verdict: Verdict,
                events: Mapping[str, float], goals: Goals | None = None) -> dict[str, Any]:
    """The JSON report: every figure under the name it has in code (a Measurements can be
    rebuilt from `figures`), the events as UTC ISO times and as seconds since the fault
    (None without a fault), the verdict and its reasons."""
    fault = events.get(FAULT)
    data: dict[str, Any] = {
        "drill": drill,
        "passed": verdict.passed,
        "reasons": list(verdict.reasons),
        "figures": _figures(result),
        "events": {name: {"at": _iso(at), "epoch": at,
                          "since_fault": None if fault is None else at - fault}
                   for name, at in events.items()},
    }
    if isinstance(result, Measurements):
        data["units"] = dict(UNITS)
        data["goals"] = None if goals is None else {
            "drill_max_rto_seconds": goals.max_rto_seconds,
            "drill_max_lost_commits": goals.max_lost_commits}
    return data


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def markdown(drill: str, rows: Sequence[Row], verdict: Verdict, events: Mapping[str, float],
             image: str | None) -> str:
    """The report for people: title, verdict, figures with goals, reasons, events, chart."""
    fault = events.get(FAULT)
    lines = [f"# {drill.capitalize()} drill", "", f"**Verdict: {_word(verdict)}**", ""]
    if verdict.reasons:
        lines += ["Why:", "", *(f"- {reason}" for reason in verdict.reasons), ""]
    lines += ["| Figure | Value | Goal |", "|---|---|---|"]
    lines += [f"| {_cell(r.figure)} | {_cell(r.value)} | {_cell(r.goal)} |" for r in rows]
    if events:
        lines += ["", "| Event | Time (UTC) | After the fault |", "|---|---|---|"]
        lines += [f"| {name} | {_iso(at)} | "
                  f"{'-' if fault is None else seconds(at - fault)} |"
                  for name, at in _ordered(events)]
    if image:
        lines += ["", f"![Acknowledged commits over time, {drill} drill]({image})"]
    return "\n".join(lines) + "\n"


def _origin(result: Measurements | Mapping[str, Any], events: Mapping[str, float]) -> float:
    """The epoch of the series' zero (its first ack), so events land where they happened;
    without one, the fault or the earliest event."""
    start = (result.started_at if isinstance(result, Measurements)
             else result.get("started_at"))
    if start is not None:
        return float(start)
    return events.get(FAULT, min(events.values(), default=0.0))


def chart(path: Path, drill: str, verdict: Verdict, events: Mapping[str, float],
          series: Sequence[tuple[float, int]], origin: float) -> Path:
    """Cumulative acknowledged commits over time, with the fault, the promotion and the
    recovery marked: an outage is the flat stretch after the fault line. Drawn on the Agg
    canvas directly (no pyplot, no display, no global backend switch)."""
    figure = Figure(figsize=(9, 4.5), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    if series:
        xs, ys = zip(*series, strict=True)
        axes.step(xs, ys, where="post", color="tab:blue", label="acknowledged commits")
    else:
        axes.text(0.5, 0.5, "no acknowledged commits", transform=axes.transAxes,
                  ha="center", va="center", color="grey")
    fault = events.get(FAULT)
    for name, label, colour in MARKED:
        if name not in events:
            continue
        x = events[name] - origin
        if name != FAULT and fault is not None:
            label = f"{label} +{seconds(events[name] - fault)}"
        axes.axvline(x, color=colour, linestyle="--", linewidth=1)
        axes.text(x, 0.98, f" {label}", transform=axes.get_xaxis_transform(), rotation=90,
                  va="top", ha="right", color=colour, fontsize=9,
                  bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1})
    axes.set_xlabel("time since the first acknowledged commit (s)")
    axes.set_ylabel("acknowledged commits (cumulative)")
    axes.set_title(f"{drill.capitalize()} drill: {_word(verdict)}")
    axes.set_ylim(bottom=0)
    axes.grid(True, alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, format="png", metadata={"Software": None})
    return path


def write_report(directory: Path | str, drill: str, result: Measurements | Mapping[str, Any],
                 verdict: Verdict | None, events: Mapping[str, float],
                 series: Sequence[tuple[float, int]] = (),
                 goals: Goals | None = None) -> list[Path]:
    """Write <drill>.json, <drill>.md and <drill>.png into `directory` (made if missing)
    and return their paths. A restore drill (result: a dict, verdict None: derived from
    it) gets no chart unless a series is given, since no writer ran."""
    _check_drill(drill)
    final = _verdict(result, verdict)
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    image = None
    if isinstance(result, Measurements) or series:
        png = chart(folder / f"{drill}.png", drill, final, events, series,
                    _origin(result, events))
        image = png.name
        written.append(png)
    data = report_data(drill, result, final, events, goals)
    json_path = folder / f"{drill}.json"
    json_path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    rows = (measurement_rows(result, goals) if isinstance(result, Measurements)
            else restore_rows(result))
    md_path = folder / f"{drill}.md"
    md_path.write_text(markdown(drill, rows, final, events, image))
    return [json_path, md_path, *written]


def summary(drill: str, result: Measurements | Mapping[str, Any],
            verdict: Verdict | None = None, goals: Goals | None = None) -> str:
    """A few lines for the screen: the verdict, the figures that decide it, the reasons."""
    _check_drill(drill)
    final = _verdict(result, verdict)
    lines = [f"{drill.capitalize()} drill: {_word(final)}"]
    if isinstance(result, Measurements):
        first = ("no write after the fault" if result.first_write_after_fault is None
                 else f"first write {seconds(result.first_write_after_fault)} after the fault")
        lost = f"{len(result.lost)} {'commit' if len(result.lost) == 1 else 'commits'} lost"
        if goals is not None:
            first += f" (goal {goal_seconds(goals.max_rto_seconds)})"
            lost += f" (goal {goals.max_lost_commits})"
        recovered = ("replicas never streamed again" if result.time_to_recovered is None
                     else f"replicas streaming after {seconds(result.time_to_recovered)}")
        lines += [f"  {first}, {lost}",
                  f"  longest pause {seconds(result.longest_gap)}, {recovered}, "
                  f"{result.commits} commits at {result.rate:.1f}/s"]
    else:
        lines += [f"  {row.figure.lower()}: {row.value}" for row in restore_rows(result)]
    lines += [f"  - {reason}" for reason in final.reasons]
    return "\n".join(lines)
