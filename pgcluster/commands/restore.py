"""restore: a full backup plus archived WAL outside the cluster (the default: the
inventory's `drill` host, else the lab's scratch node) or onto a node named with --node, to
the end of the archive or to a time, LSN or restore point. Runs deploys/scratch.py (the
lab's scratch node only) and deploys/restore.py, then prints the point the node reached."""

from __future__ import annotations

import argparse

from pgcluster.commands.common import (
    add_change_options,
    backup_name,
    confirm,
    deploy,
    finished,
    reachable,
    reachable_session,
)
from pgcluster.control.deploy import run_deploy, shown
from pgcluster.control.scratch import ScratchTarget, scratch_target
from pgcluster.errors import ConfigError


def deploy_env(args: argparse.Namespace) -> dict[str, str]:
    """The restore's parameters for deploys/restore.py, as PGCLUSTER_RESTORE_* variables
    (the environment passes them verbatim; --data would turn 'true' or '12' into values)."""
    values = {"backup": args.backup, "time": args.time, "lsn": args.lsn, "name": args.name,
              "timeline": args.timeline, "action": args.action, "node": args.node,
              "force_node": args.force_node}
    return {f"PGCLUSTER_RESTORE_{key.upper()}": str(value) for key, value in values.items()
            if value not in (None, "")}


def report(inventory: str, node_name: str | None, env: dict[str, str] | None = None) -> None:
    """Print what the node says it reached (restore-backup's last-restore file)."""
    with reachable_session(inventory, env) as session:
        node = session.cluster.find(node_name) if node_name else session.cluster.nodes[0]
        log_dir = session.data(node)["backup_log_dir"]
        ok, out, _ = session.run(node, f"cat {log_dir}/last-restore")
    if not ok:
        return
    info = dict(line.partition("=")[::2] for line in out.splitlines() if "=" in line)
    print(f"\nRestored {info.get('backup')} ({info.get('label')}) onto {info.get('node')}:")
    print(f"  target:            {info.get('target')} (timeline {info.get('timeline_requested')})")
    print(f"  reached:           LSN {info.get('reached_lsn')} on timeline "
          f"{info.get('reached_timeline')}")
    print(f"  last transaction:  {info.get('last_transaction') or 'none replayed'}")
    print(f"  PostgreSQL says:   {info.get('postgresql_says') or '-'}")
    print(f"  now:               {info.get('outcome')}")
    if info.get("previous_data"):
        print(f"  previous data:     {info.get('previous_data')} (kept; remove it when done)")
    print(f"  took:              {info.get('total_seconds')} s (unpack "
          f"{info.get('unpack_seconds')} s, recovery {info.get('recovery_seconds')} s)")


def cmd_restore(args: argparse.Namespace) -> int:
    """Restore a full backup and the archived WAL onto a node, to a chosen point."""
    named = args.node or args.force_node
    target = scratch_target(args.inventory) if args.scratch or not named else _outside(
        args.inventory, named)
    env: dict[str, str] = {}
    if target is not None:
        name = target.name
        if named and named != name:
            raise ConfigError(f"--scratch restores onto {target.describe()}, not {named}")
        if target.drill_host:
            print(f"Restoring onto {target.describe()} (outside the cluster).")
        else:
            print(f"Restoring onto {target.describe()} (created if missing).")
            made = run_deploy("@local", "deploys/scratch.py", verbose=args.verbose)
            if not made.ok:
                return finished(made, "creating the scratch node")
        inventory, hosts, env = target.inventory, None, target.env
        args.node = None  # the one-node inventory's only node
    else:
        inventory = args.inventory
        node = args.node or args.force_node
        question = (f"Restore a backup onto {node}? Its server is stopped"
                    if args.force_node else f"Restore a backup onto {node}?")
        question += (" and its data directory moved aside (kept as "
                     "<data>.before-restore-<time>, never deleted).")
        if not confirm(question, args.yes):
            return 1
        name = node
        # A stopped lab node is left out (right after a failover the old primary is).
        hosts = reachable(inventory)
    run = deploy(args, "deploys/restore.py", hosts=hosts, inventory=inventory,
                 env={**deploy_env(args), **env})
    if not run.ok:
        return finished(run, "restore")
    report(inventory, None if target else name, env)
    print(f"  log:               {shown(run.log)}")
    return 0


def _outside(inventory: str, named: str) -> ScratchTarget | None:
    """The scratch node or the drill host when --node or --force-node names it: that is a
    restore outside the cluster too (the restore drill names it to force it)."""
    try:
        found = scratch_target(inventory)
    except ConfigError:
        return None
    return found if named == found.name else None


def register(sub: argparse._SubParsersAction) -> None:
    restore = sub.add_parser(
        "restore", help="restore a full backup + archived WAL, to a point in time",
        description=cmd_restore.__doc__ + " By default outside the cluster: onto the "
        "inventory's `drill` host, or the lab's scratch node (<lab>-scratch); --node restores "
        "onto a node of the inventory. "
        "A node with a running server is refused unless named again with --force-node. The "
        "previous data directory is moved aside, never deleted.",
        epilog="examples:  pgcluster restore --time '2026-01-31 14:05:00+00'   |   "
               "pgcluster restore --backup 20260125T020000Z --lsn 0/5000060   |   "
               "pgcluster restore --node postgresql-primary --force-node postgresql-primary",
    )
    target = restore.add_mutually_exclusive_group()
    target.add_argument("--time", help="recover to this time (ISO 8601; without an offset: "
                        "the cluster's timezone)")
    target.add_argument("--lsn", help="recover to this WAL location (like 0/5000060)")
    target.add_argument("--name", help="recover to this restore point "
                        "(pg_create_restore_point)")
    restore.add_argument("--backup", default="latest", type=backup_name,
                         help="full backup to start from: full/<timestamp> or its label "
                         "(default: the newest one that ended before the target)")
    restore.add_argument("--timeline", default="latest",
                         help="timeline to follow: latest (default), current or an ID")
    restore.add_argument("--action", choices=("promote", "pause"), default="promote",
                         help="at the target: promote (default) or pause to inspect first")
    where = restore.add_mutually_exclusive_group()
    where.add_argument("--scratch", action="store_true",
                       help="outside the cluster (the default): the inventory's `drill` "
                       "host, else the lab's scratch node")
    where.add_argument("--node", help="onto this node of the inventory (name or role)")
    restore.add_argument("--force-node", metavar="NODE",
                         help="name the node again to allow stopping its running server")
    restore.add_argument("--yes", action="store_true",
                         help="do not ask before restoring onto an inventory node")
    add_change_options(restore)
    restore.set_defaults(func=cmd_restore)
