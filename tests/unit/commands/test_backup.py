"""The backup commands: parsing, help, and what they hand to deploys/backup.py."""

from __future__ import annotations

import pytest

from pgcluster.cli import build_parser
from pgcluster.commands import backup


@pytest.mark.parametrize("argv", [["backup"], ["restore"], *(
    ["backup", job] for job in ("full", "incr", "verify", "retention", "list"))])
def test_every_backup_command_has_help(argv: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as caught:
        build_parser().parse_args([*argv, "--help"])
    assert caught.value.code == 0
    assert capsys.readouterr().out.startswith("usage: pgcluster")


def test_backup_jobs() -> None:
    parser = build_parser()
    args = parser.parse_args(["backup", "full"])
    assert (args.func, args.kind) == (backup.cmd_run, "full")
    args = parser.parse_args(["backup", "verify", "20260131T020000Z"])
    assert (args.kind, args.backup) == ("verify", "20260131T020000Z")
    assert parser.parse_args(["backup", "verify"]).backup == "latest"
    args = parser.parse_args(["backup", "list", "--json"])
    assert args.func is backup.cmd_list and args.json
    with pytest.raises(SystemExit):
        parser.parse_args(["backup"])


@pytest.mark.parametrize("argv", [["backup", "verify", "$(reboot)"],
                                  ["restore", "--backup", "../full/x"]])
def test_a_bad_backup_name_stops_at_the_command_line(argv: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as caught:
        build_parser().parse_args(argv)
    assert caught.value.code == 2
    assert "is not a backup name" in capsys.readouterr().err
