"""`python -m pgcluster <command>`: operate the cluster and its Docker lab.

Each command lives in pgcluster/commands/<module>.py and registers itself with
`register(subparsers)`. Commands that change the cluster run a pyinfra deploy
(pgcluster.control.deploy), so `pyinfra INVENTORY deploys/<name>.py` does the same thing.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from pgcluster.errors import ClusterStateError, ConfigError

# Modules under pgcluster/commands/, in the order their commands appear in --help.
COMMAND_MODULES = ["lab", "operate", "menu", "backup", "restore", "drill", "secrets"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pgcluster",
        description="Build and operate a PostgreSQL 15 streaming-replication cluster.",
    )
    parser.add_argument("--inventory", default="inventory/docker.py",
                        help="pyinfra inventory file (default: inventory/docker.py)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        importlib.import_module(f"pgcluster.commands.{module}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, ClusterStateError) as exc:
        print(exc, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
