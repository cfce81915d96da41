"""LSNs and WAL segment file names."""

from __future__ import annotations

import pytest

from pgcluster.model.wal import format_lsn, parse_lsn, wal_file_name


def test_lsn_and_wal_file_names() -> None:
    assert parse_lsn("0/7000028") == 0x7000028
    assert format_lsn(parse_lsn("1A/FF000028")) == "1A/FF000028"
    assert wal_file_name(1, "0/7000028") == "000000010000000000000007"
    assert wal_file_name(2, "1/0") == "000000020000000100000000"
    with pytest.raises(ValueError):
        parse_lsn("7000028")
