from __future__ import annotations

import pytest

from pgcluster.cli import build_parser, main


def test_every_command_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        build_parser().parse_args(["--help"])
    assert caught.value.code == 0
    out = capsys.readouterr().out
    for command in ("up", "info", "destroy"):
        assert command in out


def test_destroy_options() -> None:
    args = build_parser().parse_args(["destroy", "--yes", "--keep-volumes"])
    assert args.yes and args.keep_volumes


def test_unknown_lab_is_a_clear_error(monkeypatch, capsys) -> None:
    monkeypatch.setenv("PGCLUSTER_LAB", "missing-lab")
    assert main(["info"]) == 2
    assert "no lab definition" in capsys.readouterr().err
