"""`python -m pgcluster <command>`: operate the cluster and its Docker lab.

Each command lives in pgcluster/commands/<module>.py and registers itself with
`register(subparsers)`. Commands that change the cluster run a pyinfra deploy
(`run_deploy`), so `pyinfra INVENTORY deploys/<name>.py` does the same thing.
"""

from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import sys
from collections.abc import Sequence

from pgcluster import REPO_ROOT
from pgcluster.errors import ClusterStateError, ConfigError

# Modules under pgcluster/commands/, in the order their commands appear in --help.
COMMAND_MODULES = ["lab", "operate", "menu", "backup", "restore", "secrets"]


def run_deploy(inventory: str, deploy: str, *pyinfra_args: str,
               env: dict[str, str] | None = None) -> int:
    """Run `pyinfra -y INVENTORY DEPLOY [ARGS]` from the repository root; its exit code."""
    full_env = {**os.environ, "PYINFRA_PROGRESS": os.environ.get("PYINFRA_PROGRESS", "off"),
                **(env or {})}
    command = [sys.executable, "-m", "pyinfra", "-y", *pyinfra_args, inventory, deploy]
    return subprocess.run(command, cwd=REPO_ROOT, env=full_env, check=False).returncode


def confirm(question: str, assume_yes: bool) -> bool:
    """Ask before a change; --yes answers for the user. Never assumes yes without a TTY."""
    if assume_yes:
        return True
    if not sys.stdin.isatty():
        print(f"{question} -> refusing without confirmation: pass --yes", file=sys.stderr)
        return False
    return input(f"{question} [y/N] ").strip().lower() in ("y", "yes", "s", "si", "sí")


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
