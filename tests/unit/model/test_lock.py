"""The operation lock's record: written and read back, sanitised, described with its age."""

from __future__ import annotations

from pgcluster.model.lock import LockRecord, new_record, refusal


def test_a_record_round_trips_and_cannot_smuggle_lines_or_quotes() -> None:
    record = new_record("root@ctl", 4242, "pgcluster failover --to x\nevil='1'", "t0k3n",
                        now=1_800_000_000)
    text = record.to_text()
    assert text.count("\n") == 5 and "'" not in text
    back = LockRecord.parse(text)
    assert back == LockRecord("root@ctl", 4242, "pgcluster failover --to x_evil=_1_",
                              "2027-01-15T08:00:00+00:00", "t0k3n")
    assert LockRecord.parse("") is None and LockRecord.parse("holder=x\n") is None


def test_the_refusal_names_the_holder_the_command_and_the_way_out() -> None:
    record = new_record("ana@laptop", 99, "pgcluster switchover --to b", "t", now=1000)
    message = refusal("db2", record, now=1042)
    assert "db2 holds the operation lock of `pgcluster switchover --to b` by ana@laptop" in message
    assert "(pid 99) since 1970-01-01T00:16:40+00:00, 42s ago" in message
    assert "--break-lock" in message and "break_lock=yes" in message
