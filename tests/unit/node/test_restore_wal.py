"""restore-wal, PostgreSQL's restore_command: the archive first, then the incremental
backups' copies, newest first; a missing file is a quiet failure."""

from __future__ import annotations

import gzip

from tests.unit.node.conftest import FakeNode


def test_restore_wal_falls_back_to_the_newest_incremental_copy(node: FakeNode) -> None:
    (node.archive / "A").write_bytes(b"from the archive")
    for day, content in (("20260101", b"older copy"), ("20260102", b"newer copy")):
        (node.incr / day).mkdir(parents=True)
        (node.incr / day / "B.gz").write_bytes(gzip.compress(content))

    def fetch(name: str) -> tuple[int, bytes | None]:
        out = node.root / "out"
        out.unlink(missing_ok=True)
        rc = node.run("restore-wal", name, str(out)).returncode
        return rc, out.read_bytes() if out.exists() else None

    assert fetch("A") == (0, b"from the archive")
    assert fetch("B") == (0, b"newer copy")
    assert fetch("C")[0] == 1


def test_a_missing_file_is_a_quiet_failure(node: FakeNode) -> None:
    result = node.run("restore-wal", "00000002.history", str(node.root / "out"))
    assert (result.returncode, result.stdout, result.stderr) == (1, "", "")
