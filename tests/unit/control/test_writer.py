"""The drill writer's reading of its own record (pgcluster.control.writer)."""

from __future__ import annotations

from pgcluster.control.writer import Writer


def test_the_outage_is_the_longest_pause_not_the_first_ack_after_the_fault() -> None:
    writer = Writer("unused")
    # Acks every 10 ms; one more from the old primary just after the fault at t = 100;
    # then nothing until the new primary answers at 121.5.
    writer.acknowledged = [(i, 99.0 + i / 100, "5000") for i in range(101)]
    writer.acknowledged += [(200, 100.005, "5000"), (201, 121.5, "5000"),
                            (202, 121.51, "5000")]
    assert writer.first_ack_after(100.0) == 100.0  # the old primary's: not the resumption
    assert writer.outage_after(100.0) == (100.005, 121.5)
    assert Writer("unused").outage_after(100.0) is None
