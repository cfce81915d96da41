"""archive-wal, PostgreSQL's archive_command: an atomic copy into the archive that never
overwrites an archived segment."""

from __future__ import annotations

from tests.unit.node.conftest import FakeNode


def test_archive_command_copies_then_refuses_different_content(node: FakeNode) -> None:
    segment = node.root / "000000010000000000000001"
    segment.write_bytes(b"wal-one" * 1000)
    archived = node.archive / segment.name

    first = node.run("archive-wal", str(segment), segment.name)
    assert first.returncode == 0, first.stderr
    assert archived.read_bytes() == segment.read_bytes()

    again = node.run("archive-wal", str(segment), segment.name)
    assert again.returncode == 0, "an identical re-push must succeed"

    segment.write_bytes(b"different" * 1000)
    clash = node.run("archive-wal", str(segment), segment.name)
    assert clash.returncode == 1
    assert "refusing to overwrite" in clash.stderr
    assert archived.read_bytes() == b"wal-one" * 1000
    assert sorted(p.name for p in archived.parent.iterdir()) == [segment.name]


def test_archive_command_fails_when_the_archive_is_missing(node: FakeNode) -> None:
    node.archive.rmdir()
    segment = node.root / "000000010000000000000002"
    segment.write_bytes(b"x")
    result = node.run("archive-wal", str(segment), segment.name)
    assert result.returncode != 0


def test_archive_command_leaves_no_temporary_file_when_the_copy_fails(node: FakeNode) -> None:
    result = node.run("archive-wal", str(node.root / "missing"), "000000010000000000000003")
    assert result.returncode != 0
    assert list(node.archive.iterdir()) == []
