"""The lab commands: what destroy may remove."""

from __future__ import annotations

from pgcluster.cli import build_parser
from pgcluster.commands import lab


def test_destroy_can_remove_only_the_scratch_node() -> None:
    args = build_parser().parse_args(["destroy", "--scratch", "--yes"])
    assert args.func is lab.cmd_destroy and args.scratch
