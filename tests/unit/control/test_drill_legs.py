"""control.drill's legs as bench/failover.py uses them, against fakes (no Docker, no
server): a fault the primary recovers from in place (the leg's target is the old primary),
and what a LegResult carries besides the measurements (the writer's record, whether the
rows were read back, when each node streamed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pgcluster.control import drill
from pgcluster.model.cluster import Cluster
from pgcluster.model.drill import FAULT, PROMOTED, RECOVERED
from tests.unit.fakes import Clock
from tests.unit.helpers import three_nodes


class Timeline:
    """Who is primary and who streams from whom, from which moment on."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.primary: list[tuple[float, str | None]] = [(0.0, "db1")]
        self.streams: list[tuple[float, dict[str, set[str]]]] = [(0.0, {"db1": {"db2", "db3"}})]

    def later(self, seconds: float, primary: str | None = "", streams: dict | None = None
              ) -> None:
        at = self.clock.now + seconds
        if primary != "":
            self.primary.append((at, primary))
        if streams is not None:
            self.streams.append((at, streams))

    def primary_at(self, moment: float) -> str | None:
        return [who for since, who in sorted(self.primary, key=lambda p: p[0])
                if since <= moment][-1]

    def streaming_at(self, moment: float) -> dict[str, set[str]]:
        return [s for since, s in sorted(self.streams, key=lambda p: p[0]) if since <= moment][-1]


class Writer:
    """Acknowledges a commit every 0.1 s while there is a primary; fails otherwise."""

    def __init__(self, timeline: Timeline) -> None:
        self.timeline, self.dsn = timeline, "dsn"
        self.started: float | None = None
        self.stopped: float | None = None

    def start(self, prepare: bool = True) -> Writer:
        self.started = self.timeline.clock.now
        return self

    def stop(self) -> None:
        self.stopped = self.timeline.clock.now

    def _attempts(self) -> list[tuple[int, float, str | None]]:
        assert self.started is not None
        end, found, moment, n = self.stopped or self.timeline.clock.now, [], self.started, 0
        while moment <= end:
            n += 1
            found.append((n, moment, self.timeline.primary_at(moment)))
            moment += 0.1
        return found

    @property
    def acknowledged(self) -> list[tuple[int, float, str]]:
        return [(n, at, "5432") for n, at, who in self._attempts() if who is not None]

    @property
    def failures(self) -> int:
        return sum(who is None for _, _, who in self._attempts())


class Probe:
    def __init__(self, timeline: Timeline) -> None:
        self.timeline = timeline

    def is_primary(self, name: str) -> bool | None:
        who = self.timeline.primary_at(self.timeline.clock.now)
        return None if who is None and name == "db1" else who == name

    def streaming(self, name: str) -> set[str] | None:
        return set(self.timeline.streaming_at(self.timeline.clock.now).get(name, set()))


class Now:
    """The fault run at once: the fakes schedule what it causes on the timeline."""

    def __init__(self, action) -> None:
        self.problem, self.done = action(), True

    def join(self, timeout: float) -> bool:
        return True


@pytest.fixture()
def setup(monkeypatch, tmp_path: Path):
    clock = Clock()
    timeline = Timeline(clock)
    monkeypatch.setattr(drill, "time", clock)
    monkeypatch.setattr(drill, "Background", Now)
    writers: list[Writer] = []

    def writer(self, primary: str) -> Writer:
        writers.append(Writer(timeline))
        return writers[-1]

    monkeypatch.setattr(drill.Drills, "writer", writer)
    present: list[set[int] | None] = []
    monkeypatch.setattr(drill.Drills, "present", lambda self, dsn: present[0] if present else
                        {i for i, _, _ in writers[-1].acknowledged})
    nodes = three_nodes()
    reach = drill.Reach("inventory/docker.py", Cluster.from_entries(nodes), nodes[0].data)
    drills = drill.Drills(reach, drill.Options(duration=12, rate=10, report_dir=tmp_path),
                          status=lambda: None, say=lambda text: None, probe=Probe(timeline))
    return drills, timeline, present


def restart_in_place(timeline: Timeline):
    """The postmaster killed: down 0.5 s after the fault, the primary again at 2.5 s, the
    replicas streaming from it again at 3.0 s (all of them anew)."""
    def action() -> None:
        timeline.later(0.5, primary=None, streams={})
        timeline.later(2.5, primary="db1")
        timeline.later(3.0, streams={"db1": {"db2", "db3"}})
    return action


def test_a_fault_recovered_from_in_place_counts_only_once_the_primary_went_down(setup,
                                                                               tmp_path):
    drills, timeline, _ = setup
    leg = drill.Leg("failover", "db1", "db1", restart_in_place(timeline), tmp_path,
                    "postmaster killed")
    result = drills.leg(leg)
    fault = result.events[FAULT]
    assert result.new_primary == "db1"
    assert result.events[PROMOTED] - fault == pytest.approx(2.5, abs=drill.POLL + 0.01)
    assert result.events[RECOVERED] - fault == pytest.approx(3.0, abs=drill.POLL + 0.01)
    assert result.measurements.first_write_after_fault == pytest.approx(2.5, abs=0.11)
    assert result.streaming["db3"] >= fault + 3.0  # the new receivers, not the old ones
    assert result.verdict.passed, result.verdict.reasons
    assert result.failures > 0 and result.read_back
    assert result.acknowledged[0][0] == 1


def test_a_fault_in_place_that_never_took_the_primary_down_says_so(setup, tmp_path,
                                                                  monkeypatch):
    drills, _, _ = setup
    monkeypatch.setattr(drill, "PROMOTION_WAIT", 5.0)
    result = drills.leg(drill.Leg("failover", "db1", "db1", lambda: None, tmp_path, "noop"))
    assert result.new_primary is None
    assert "db1 did not stop being the primary within 5 s of the fault" in \
        result.verdict.reasons


def test_a_failover_leg_records_when_each_node_streamed_and_what_was_read_back(setup,
                                                                               tmp_path):
    drills, timeline, present = setup

    def stop() -> None:
        timeline.later(0.2, primary=None, streams={})
        timeline.later(2.0, primary="db2")
        timeline.later(4.0, streams={"db2": {"db3"}})

    present.append(None)  # the rows cannot be read back
    result = drills.leg(drill.Leg("failover", "db1", None, stop, tmp_path, "stop db1"))
    fault = result.events[FAULT]
    assert result.new_primary == "db2"
    assert set(result.streaming) == {"db3"}
    assert result.streaming["db3"] - fault == pytest.approx(4.0, abs=drill.POLL + 0.01)
    assert result.read_back is False
    assert any("could not be read back" in r for r in result.verdict.reasons)
    assert len(result.acknowledged) == result.measurements.commits


def test_the_switchover_leg_runs_the_drill_s_switchover_command(setup, tmp_path):
    drills, _, _ = setup
    ran = []

    def command(inventory: str, *argv: str, timeout: float, verbose: bool):
        ran.append(argv)
        return drill.CommandRun("pgcluster " + " ".join(argv), 0, 1.0)

    drills._command = command
    leg = drills.switchover_leg("db1", "db2", tmp_path, "there")
    assert (leg.drill, leg.old, leg.target, leg.title) == ("switchover", "db1", "db2", "there")
    assert leg.action() is None
    assert ran == [("switchover", "--to", "db2", "--yes")]
