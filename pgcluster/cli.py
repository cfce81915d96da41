"""`python -m pgcluster <command>`: operate the cluster and its Docker lab."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Sequence

from pgcluster import REPO_ROOT
from pgcluster.errors import ConfigError
from pgcluster.lab import Lab, docker_available, inspect, load_lab

PYINFRA = [sys.executable, "-m", "pyinfra"]


def _pyinfra(*args: str) -> int:
    env = {**os.environ, "PYINFRA_PROGRESS": os.environ.get("PYINFRA_PROGRESS", "off")}
    return subprocess.run([*PYINFRA, "-y", *args], cwd=REPO_ROOT, env=env, check=False).returncode


def cmd_up(args: argparse.Namespace) -> int:
    """Build the lab (if needed) and deploy the cluster on it."""
    for step in (["@local", "deploys/lab.py"], [args.inventory, "deploys/cluster.py"]):
        code = _pyinfra(*step)
        if code:
            return code
    return cmd_info(args)


def cmd_info(args: argparse.Namespace) -> int:
    """Print how to connect to each node of the lab."""
    lab = load_lab()
    print(f"\nLab '{lab.name}': network {lab.network} ({lab.subnet})")
    print(f"{'node':<22}{'role':<10}{'address':<15}{'connect from this machine'}")
    for node in lab.nodes:
        url = f"psql -h {lab.bind_address} -p {node.published_port} -U admin -d proyecto_db"
        print(f"{node.name:<22}{node.role:<10}{node.address:<15}{url}")
    print("\nLab passwords (documented defaults): admin/admin123, replicator/replica123.")
    print("Writes go to the primary; the standby and the read-only replica answer reads.")
    return 0


def _owned(kind: str, name: str, lab: Lab) -> tuple[bool, str]:
    info = inspect(kind, name)
    if info is None:
        return False, "absent"
    labels = (info.get("Config") or {}).get("Labels") if kind == "container" else info.get("Labels")
    labels = labels or {}
    if kind == "container" and labels.get("pgcluster.lab") != lab.name:
        return False, "not created by pgcluster for this lab (no pgcluster.lab label): left alone"
    if kind == "volume" and "pgcluster.lab" not in labels:
        return False, "not created by pgcluster (no pgcluster.lab label): left alone"
    return True, "will be removed"


def cmd_destroy(args: argparse.Namespace) -> int:
    """Remove the lab's containers, network and (unless --keep-volumes) volumes."""
    lab = load_lab()
    if not docker_available():
        print("Docker is not reachable: nothing to destroy.", file=sys.stderr)
        return 1
    plan: list[tuple[str, str]] = []
    print(f"Lab '{lab.name}':")
    objects = [("container", c) for c in lab.containers] + [("network", lab.network)]
    if not args.keep_volumes:
        objects += [("volume", v) for v in lab.volumes]
    for kind, name in objects:
        if kind == "network":
            ok, why = (inspect("network", name) is not None, "will be removed")
            why = why if ok else "absent"
        else:
            ok, why = _owned(kind, name, lab)
        print(f"  {kind:<10}{name:<28}{why}")
        if ok:
            plan.append((kind, name))
    if args.keep_volumes:
        print(f"  volumes kept: {', '.join(lab.volumes)}")
    elif any(kind == "volume" for kind, _ in plan):
        print("  Volumes hold the databases and the backups: their data is lost for good.")
    if not plan:
        print("Nothing to remove.")
        return 0
    if not args.yes:
        if not sys.stdin.isatty():
            print("Refusing without confirmation: pass --yes (or YES=1 make destroy).",
                  file=sys.stderr)
            return 1
        if input("Remove these? [y/N] ").strip().lower() not in ("y", "yes", "s", "si", "sí"):
            print("Nothing removed.")
            return 1
    failures = 0
    for kind, name in plan:
        command = {"container": ["docker", "rm", "--force", "--volumes"],
                   "network": ["docker", "network", "rm"],
                   "volume": ["docker", "volume", "rm"]}[kind]
        result = subprocess.run([*command, name], capture_output=True, text=True, check=False)
        if result.returncode:
            failures += 1
            print(f"  failed to remove {kind} {name}: {result.stderr.strip()}", file=sys.stderr)
        else:
            print(f"  removed {kind} {name}")
    return 1 if failures else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pgcluster",
        description="Build and operate a PostgreSQL 15 streaming-replication cluster.",
    )
    parser.add_argument("--inventory", default="inventory/docker.py",
                        help="pyinfra inventory file (default: inventory/docker.py)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = sub.add_parser("up", help="build the Docker lab and deploy the cluster")
    up.set_defaults(func=cmd_up)
    info = sub.add_parser("info", help="how to connect to each node of the lab")
    info.set_defaults(func=cmd_info)
    destroy = sub.add_parser("destroy", help="remove the lab's containers, network and volumes")
    destroy.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    destroy.add_argument("--keep-volumes", action="store_true",
                         help="keep the data and backup volumes")
    destroy.set_defaults(func=cmd_destroy)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
