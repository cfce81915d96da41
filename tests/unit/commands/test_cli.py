"""The command line: every command has help, parsing has no side effects, errors are plain."""

from __future__ import annotations

import os

import pytest

from pgcluster.cli import build_parser, main


def test_every_command_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        build_parser().parse_args(["--help"])
    assert caught.value.code == 0
    out = capsys.readouterr().out
    for command in ("up", "info", "destroy", "status", "monitor", "failover", "switchover",
                    "rejoin", "logs", "psql", "stop", "start", "menu", "drill"):
        assert command in out


def test_building_the_parser_changes_no_environment() -> None:
    before = dict(os.environ)
    build_parser()
    assert dict(os.environ) == before  # e.g. PGCLUSTER_ALLOW_DOWN must not leak to pyinfra runs


def test_operator_commands_parse() -> None:
    parser = build_parser()
    assert parser.parse_args(["failover", "--to", "standby", "--force", "--yes"]).to == "standby"
    assert parser.parse_args(["switchover", "--to", "postgresql-primary"]).to == (
        "postgresql-primary")
    assert parser.parse_args(["rejoin", "primary", "--reclone"]).reclone
    assert parser.parse_args(["monitor"]).interval == 10.0
    assert parser.parse_args(["logs", "standby", "-f"]).follow
    assert parser.parse_args(["stop", "readonly", "--containers"]).nodes == ["readonly"]
    with pytest.raises(SystemExit):
        parser.parse_args(["switchover"])  # --to is required


def test_destroy_options() -> None:
    args = build_parser().parse_args(["destroy", "--yes", "--keep-volumes"])
    assert args.yes and args.keep_volumes


def test_unknown_lab_is_a_clear_error(monkeypatch, capsys) -> None:
    monkeypatch.setenv("PGCLUSTER_LAB", "missing-lab")
    assert main(["info"]) == 2
    assert "no lab definition" in capsys.readouterr().err
