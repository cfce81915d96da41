"""The restore command: its options become deploys/restore.py's parameters; contradictions
are refused."""

from __future__ import annotations

import pytest

from pgcluster.cli import build_parser
from pgcluster.commands import restore


def test_restore_options_become_the_deploy_parameters() -> None:
    args = build_parser().parse_args(["restore", "--time", "2026-01-31 14:05:00+00",
                                      "--backup", "20260125T020000Z", "--action", "pause"])
    assert args.func is restore.cmd_restore
    assert restore.deploy_env(args) == {
        "PGCLUSTER_RESTORE_BACKUP": "20260125T020000Z",
        "PGCLUSTER_RESTORE_TIME": "2026-01-31 14:05:00+00",
        "PGCLUSTER_RESTORE_TIMELINE": "latest",
        "PGCLUSTER_RESTORE_ACTION": "pause",
    }
    args = build_parser().parse_args(["restore", "--force-node", "db1", "--name", "true"])
    assert restore.deploy_env(args)["PGCLUSTER_RESTORE_NAME"] == "true"  # verbatim
    assert restore.deploy_env(args)["PGCLUSTER_RESTORE_FORCE_NODE"] == "db1"


@pytest.mark.parametrize("argv", [
    ["restore", "--time", "x", "--lsn", "0/1"],  # one target
    ["restore", "--scratch", "--node", "db1"],  # one place
    ["restore", "--action", "shutdown"],
])
def test_restore_rejects_contradictions(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        build_parser().parse_args(argv)
    assert caught.value.code == 2


def test_restore_outside_the_cluster_needs_the_lab_or_a_drill_host(capsys) -> None:
    from pgcluster.cli import main

    assert main(["--inventory", "inventory/production.py", "restore", "--time", "2026-01-01"]) \
        == 2
    assert ("inventory/production.py has no `drill` host and is not the Docker lab, so there "
            "is nowhere outside the cluster to restore onto") in capsys.readouterr().err
