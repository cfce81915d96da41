"""The backup and restore commands: parsing, help, and what they hand to the deploys."""

from __future__ import annotations

import pytest

from pgcluster.cli import build_parser
from pgcluster.commands import backup, lab, restore
from pgcluster.lab import load_lab


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


def test_restore_to_a_scratch_node_needs_the_lab(capsys) -> None:
    from pgcluster.cli import main

    assert main(["--inventory", "inventory/production.py", "restore", "--time", "2026-01-01"]) \
        == 2
    assert "scratch node exists only in the Docker lab" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["seed", "test", "bench"])
def test_each_lab_has_its_own_scratch_node(name: str) -> None:
    lab_def = load_lab(name)
    scratch = lab_def.scratch
    assert scratch.name == f"{lab_def.prefix}-scratch" and scratch.role == "scratch"
    assert scratch.name not in lab_def.containers
    assert scratch.published_port not in {n.published_port for n in lab_def.nodes}
    assert scratch.address not in {n.address for n in lab_def.nodes}


def test_destroy_can_remove_only_the_scratch_node() -> None:
    args = build_parser().parse_args(["destroy", "--scratch", "--yes"])
    assert args.func is lab.cmd_destroy and args.scratch


def test_a_lab_that_publishes_nothing_has_an_unpublished_scratch_node() -> None:
    lab_def = load_lab("ssh")  # nodes reached at their own addresses, like VMs
    assert all(n.published_port is None for n in lab_def.nodes)
    assert lab_def.scratch.published_port is None
    assert lab_def.scratch.name == "pgssh-scratch"
