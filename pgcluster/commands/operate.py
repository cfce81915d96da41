"""Operator commands: status, monitor, failover, switchover, rejoin, remove, logs, psql,
stop, start.

Read-only commands use a control.session.Session; commands that change the cluster run the
deploys in deploys/ (so `pyinfra INVENTORY deploys/failover.py ...` does the same), limited
to the hosts that answer, so a lost node never fails the run, and print a short result
(the whole log goes to a file under state/, -v streams it).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time

from pgcluster.commands.common import (
    ALLOW_DOWN,
    add_change_options,
    changes,
    confirm,
    deploy,
    finished,
    reachable,
    report,
)
from pgcluster.control.deploy import DeployRun, shown
from pgcluster.control.session import Session
from pgcluster.control.status import Report, format_report, require_single_primary
from pgcluster.lab.docker import container_status
from pgcluster.model.layout import Layout


def topology_line(status: Report) -> str:
    """The cluster after a change, in one line."""
    primary = next((n for n in status.nodes if n.role == "PRIMARY"), None)
    if primary is None:
        return "no primary is running"
    streams = [r for r in status.replication if r["state"] == "streaming"]
    streaming = {r["application_name"] for r in streams}
    others = [n for n in status.nodes if n is not primary and n.name not in streaming]
    shown = sorted(r["application_name"] if r.get("source") in (None, primary.name)
                   else f"{r['application_name']} (via {r['source']})" for r in streams)
    text = f"{primary.name} is the primary (timeline {primary.timeline or '?'})"
    text += f"; streaming from it: {', '.join(shown) or 'nothing'}"
    if others:
        text += "; " + ", ".join(f"{n.name} {n.role.lower()}" for n in others)
    return text


def _connection_map(status: Report) -> None:
    print("\nConnection map:")
    for node in status.nodes:
        where = (f"127.0.0.1:{node.published_port}" if node.published_port
                 else f"{node.address}:{node.port}")
        note = {"PRIMARY": "read/write", "STANDBY": "read-only, promotable",
                "READONLY": "read-only"}.get(node.role, node.role.lower())
        print(f"  {node.name:<22}{node.role:<12}{where:<22}{note}")


def _result(args: argparse.Namespace, run: DeployRun, what: str, detail: str = "") -> int:
    """The short result of a change: what it did, the topology now, how long it took,
    where the whole log is; on failure, why."""
    if not run.ok:
        return finished(run, what)
    after, _ = report(args.inventory)
    print(f"{what} done in {run.seconds:.1f}s{': ' + detail if detail else ''}")
    print(f"  now: {topology_line(after)}")
    print(f"  log: {shown(run.log)}")
    _connection_map(after)
    return 0


# ------------------------------------------------------------------------- status


def cmd_status(args: argparse.Namespace) -> int:
    """Per node: reachable, role, timeline, LSNs; per replica: lag in bytes and time;
    slots, archiver, last backup. Exit code 1 when anything is unhealthy."""
    status, _ = report(args.inventory)
    if args.json:
        print(json.dumps(status.as_dict(), indent=2, default=str))
    else:
        print(format_report(status))
    return 0 if status.healthy else 1


def cmd_monitor(args: argparse.Namespace) -> int:
    """The status view, refreshed every --interval seconds until Ctrl-C."""
    try:
        while True:
            started = time.monotonic()
            status, _ = report(args.inventory)
            sys.stdout.write("\033[2J\033[H")
            print(f"pgcluster monitor  {time.strftime('%Y-%m-%d %H:%M:%S')}  "
                  f"(every {args.interval}s, Ctrl-C to stop)\n")
            print(format_report(status), flush=True)
            if args.count and args.count <= 1:
                return 0 if status.healthy else 1
            args.count = args.count - 1 if args.count else 0
            time.sleep(max(0.0, args.interval - (time.monotonic() - started)))
    except KeyboardInterrupt:
        print()
        return 0


# ---------------------------------------------------------------- failover & friends


def cmd_failover(args: argparse.Namespace) -> int:
    """Promote the standby when the primary is lost, and re-point the read-only replica.
    Refuses while the primary still accepts writes, unless --force (which stops it); refuses
    a primary that is only unreachable, and a target too far behind (see docs)."""
    if args.yes:
        # No status round first: every second counts while the primary is down, and the
        # deploy makes the same refusals (split brain, a primary still taking writes).
        hosts = reachable(args.inventory)
    else:
        before, hosts = report(args.inventory)
        require_single_primary(before)
        print(format_report(before))
        target = args.to or "the most advanced standby"
        if not confirm(f"\nFail over: promote {target}?", args.yes):
            return 1
    data = {"force": "yes"} if args.force else {}
    if args.to:
        data["failover_target"] = args.to
    run = deploy(args, "deploys/failover.py", data, hosts)
    evidence = [line.split("pgcluster: failover to ", 1)[1]
                for line in run.lines(r"pgcluster: failover to ")] if run.ok else []
    return _result(args, run, "Failover", evidence[-1] if evidence else "")


def cmd_switchover(args: argparse.Namespace) -> int:
    """Planned change of primary with no data loss; the old primary becomes a standby."""
    data = {"switchover_target": args.to, **({"force": "yes"} if args.force else {})}
    if args.yes:
        # Nothing to show before asking: straight to the deploy, which reads the topology
        # and refuses two primaries itself before any host is touched (about 1.5 s less
        # between the command and the switch).
        run = deploy(args, "deploys/switchover.py", data, reachable(args.inventory))
        return _result(args, run, "Switchover", f"to {args.to}")
    before, hosts = report(args.inventory)
    require_single_primary(before)
    if not confirm(f"Switch over: make {args.to} the primary and {before.primary} a standby?",
                   args.yes):
        return 1
    run = deploy(args, "deploys/switchover.py", data, hosts)
    return _result(args, run, "Switchover", f"{before.primary} -> {args.to}")


REJOIN_METHODS = (("cloning afresh", "a fresh base backup (--reclone)"),
                  ("pg_rewind done", "pg_rewind"),
                  ("re-pointing it online", "re-pointed online"),
                  ("pointing it at the primary and starting it", "pointed and started"),
                  ("no data directory: cloning it", "a fresh base backup"))


def cmd_rejoin(args: argparse.Namespace) -> int:
    """Bring a failed node (typically the old primary) back as a standby, with pg_rewind;
    --reclone allows a fresh base backup if rewinding cannot work (old data kept aside)."""
    with Session(args.inventory, env=ALLOW_DOWN) as session:
        node = session.cluster.find(args.node)
        container = session.data(node).get("docker_identifier")
    if container and container_status(str(container)) != "running":
        if not confirm(f"{node.name}'s container is stopped. Start it? (its PostgreSQL stays "
                       "down while another node is primary on a newer timeline)", args.yes):
            return 1
        subprocess.run(["docker", "start", str(container)], check=True, capture_output=True)
        _wait_booted(str(container))
    before, hosts = report(args.inventory)
    require_single_primary(before)
    if not confirm(f"Rejoin {node.name} as a standby of {before.primary}?", args.yes):
        return 1
    data = {"rejoin_node": node.name, **({"allow_reclone": "yes"} if args.reclone else {})}
    run = deploy(args, "deploys/rejoin.py", data, hosts)
    if not run.ok:
        print(f"\nIf pg_rewind could not rejoin {node.name}, run again with --reclone "
              "(its current data directory is kept aside, never deleted).", file=sys.stderr)
        return finished(run, "Rejoin")
    log = "\n".join(run.lines(r"rejoin-replica\["))
    how = next((method for marker, method in REJOIN_METHODS if marker in log),
               "already streaming" if not run.changed else "rejoined")
    return _result(args, run, "Rejoin", f"{node.name} follows {before.primary} ({how})")


def cmd_remove(args: argparse.Namespace) -> int:
    """Retire a node: stop it for good (its data directory is kept), drop its replication
    slot, and configure the others as if it had left the inventory (pg_hba.conf, the start
    guard's peers, HAProxy and Prometheus); then delete it from the inventory."""
    with Session(args.inventory, env=ALLOW_DOWN) as session:
        node = session.cluster.find(args.node)
    before, hosts = report(args.inventory)
    require_single_primary(before)
    if not confirm(f"Remove {node.name} ({node.host}) from the cluster of {args.inventory}? "
                   "Its PostgreSQL is stopped and disabled (its data directory is kept) and "
                   "the other nodes stop expecting it.", args.yes):
        return 1
    run = deploy(args, "deploys/remove.py", {"remove_node": node.name}, hosts)
    if not run.ok:
        return finished(run, "Remove")
    others = [h for h in hosts if h != node.host]
    rest = deploy(args, "deploys/cluster.py", {"removed_node": node.name}, others)
    if not rest.ok:
        print(f"\n{node.name} is stopped and its slot dropped, but configuring the other "
              f"nodes without it failed: fix the cause, then run `pgcluster remove "
              f"{node.name}` again.", file=sys.stderr)
        return finished(rest, "Remove")
    code = _result(args, rest, "Remove", f"{node.name} is stopped and disabled, its slot "
                   "dropped, the other nodes configured without it")
    print(f"\nNow delete {node.host} from the inventory ({args.inventory}); until then a "
          f"deploy would start {node.name} again. Its data directory is still on it: delete "
          "it yourself when you no longer want it (in the lab: remove the node from the "
          "lab file, then `docker rm -f` its container and its volume).")
    return code


def _wait_booted(container: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = subprocess.run(["docker", "exec", container, "systemctl", "is-system-running"],
                                capture_output=True, text=True, check=False)
        if result.stdout.strip() in ("running", "degraded"):
            return
        time.sleep(0.5)


# ----------------------------------------------------------------- service control


def cmd_stop(args: argparse.Namespace) -> int:
    """Stop PostgreSQL on the whole cluster (primary first) or on the named nodes;
    --containers also stops the lab's containers afterwards."""
    return _service(args, "stop")


def cmd_start(args: argparse.Namespace) -> int:
    """Start the lab's stopped containers, then PostgreSQL on the cluster or named nodes
    (the replicas first: the primary's start guard asks them). A fenced old primary stays
    down: rejoin it."""
    return _service(args, "start")


def _service(args: argparse.Namespace, action: str) -> int:
    with Session(args.inventory, env=ALLOW_DOWN) as session:
        nodes = [session.cluster.find(n) for n in args.nodes] or list(session.cluster.nodes)
        containers = {n.name: session.data(n).get("docker_identifier") for n in nodes}
    if action == "start":
        for container in containers.values():
            if container and container_status(str(container)) != "running":
                print(f"starting container {container}")
                subprocess.run(["docker", "start", str(container)], check=True,
                               capture_output=True)
                _wait_booted(str(container))
    data = {"service_action": action, "service_nodes": ",".join(n.name for n in nodes)}
    if action == "start" and getattr(args, "as_primary", False):
        data["start_as_primary"] = "yes"
    run = deploy(args, "deploys/service.py", data, reachable(args.inventory))
    if not run.ok:
        return finished(run, f"{action.capitalize()}")
    names = ", ".join(n.name for n in nodes)
    print(f"{action.capitalize()} PostgreSQL on {names}: {changes(run)} ({run.seconds:.1f}s); "
          f"log: {shown(run.log)}")
    if action == "stop" and args.containers:
        for container in filter(None, containers.values()):
            subprocess.run(["docker", "stop", str(container)], check=False, capture_output=True)
            print(f"stopped container {container}")
    return 0


# -------------------------------------------------------------------- logs and psql


def cmd_logs(args: argparse.Namespace) -> int:
    """The node's PostgreSQL log (last --lines lines; -f follows it); under Patroni, the
    journal of its patroni unit, which holds PostgreSQL's output and Patroni's."""
    with Session(args.inventory, env=ALLOW_DOWN) as session:
        node = session.cluster.find(args.node)
        if not session.reachable(node):
            print(f"{node.name} is unreachable", file=sys.stderr)
            return 1
        log = Layout.from_data(session.data(node)).log_file
        # Under Patroni, PostgreSQL's output is Patroni's (pg_ctl started by it): its
        # journal holds both, in order. Debian's unit writes the log file.
        lines, follow = int(args.lines), args.follow
        command = (f"if systemctl is-active --quiet patroni; then journalctl --no-pager -q "
                   f"-u patroni -n {lines}{' -f' if follow else ''}; "
                   f"else tail -n {lines} {'-F ' if follow else ''}{log}; fi")
        if args.follow:
            try:
                session.host(node).run_shell_command(command, print_output=True)
            except KeyboardInterrupt:
                return 0
            return 0
        ok, out, err = session.run(node, command)
        print(out or err)
        return 0 if ok else 1


def cmd_psql(args: argparse.Namespace) -> int:
    """psql on a node as the postgres OS user (-c runs one command; otherwise interactive)."""
    with Session(args.inventory, env=ALLOW_DOWN) as session:
        node = session.cluster.find(args.node)
        data = session.data(node)
        if args.command:
            ok, out, err = session.run(
                node, f"cd / && runuser -u postgres -- psql -X -p {node.port} "
                      f"-d {shlex.quote(args.database)} -c {shlex.quote(args.command)}")
            print(out if ok else err)
            return 0 if ok else 1
    psql = ["runuser", "-u", "postgres", "--", "psql", "-p", str(node.port), "-d", args.database]
    if data.get("docker_identifier"):
        os.execvp("docker", ["docker", "exec", "-it", str(data["docker_identifier"]), *psql])
    ssh = ["ssh", "-t"]
    if data.get("ssh_port"):
        ssh += ["-p", str(data["ssh_port"])]
    if data.get("ssh_key"):
        ssh += ["-i", str(data["ssh_key"])]
    target = str(data.get("ssh_hostname") or node.address)
    if data.get("ssh_user"):
        target = f"{data['ssh_user']}@{target}"
    os.execvp("ssh", [*ssh, target, "sudo", *psql])
    return 1  # not reached


# ----------------------------------------------------------------------- register


def register(sub: argparse._SubParsersAction) -> None:
    def add(name: str, func, help_text: str) -> argparse.ArgumentParser:
        parser = sub.add_parser(name, help=help_text, description=func.__doc__)
        parser.set_defaults(func=func)
        return parser

    status = add("status", cmd_status, "roles, lag, slots, archiver; exit 1 if unhealthy")
    status.add_argument("--json", action="store_true", help="machine-readable output")

    monitor = add("monitor", cmd_monitor, "status, refreshed every N seconds")
    monitor.add_argument("--interval", type=float, default=10.0,
                         help="seconds between refreshes (default 10, as in the seed)")
    monitor.add_argument("--count", type=int, default=0, help="stop after N refreshes")

    failover = add("failover", cmd_failover, "promote the standby when the primary is lost")
    failover.add_argument("--to", metavar="NODE", help="standby to promote (default: most "
                          "advanced promotable standby)")
    failover.add_argument("--force", action="store_true",
                          help="fail over even if the primary accepts writes (it is stopped)")
    failover.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    add_change_options(failover)

    switchover = add("switchover", cmd_switchover, "planned primary change, no data loss")
    switchover.add_argument("--to", metavar="NODE", required=True, help="the new primary")
    switchover.add_argument("--force", action="store_true",
                            help="skip the lag and long-transaction gates")
    switchover.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    add_change_options(switchover)

    rejoin = add("rejoin", cmd_rejoin, "bring a failed node back as a standby (pg_rewind)")
    rejoin.add_argument("node", metavar="NODE", help="node name or role")
    rejoin.add_argument("--reclone", action="store_true",
                        help="allow a fresh base backup if pg_rewind cannot work")
    rejoin.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    add_change_options(rejoin)

    remove = add("remove", cmd_remove, "retire a node: stop it, drop its slot, the others "
                 "forget it (then delete it from the inventory)")
    remove.add_argument("node", metavar="NODE", help="node name")
    remove.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    add_change_options(remove)

    logs = add("logs", cmd_logs, "a node's PostgreSQL log")
    logs.add_argument("node", metavar="NODE", help="node name or role")
    logs.add_argument("-f", "--follow", action="store_true", help="follow the log")
    logs.add_argument("-n", "--lines", type=int, default=50, help="lines to show (default 50)")

    psql = add("psql", cmd_psql, "psql on a node as postgres")
    psql.add_argument("node", metavar="NODE", help="node name or role")
    psql.add_argument("-d", "--database", default="proyecto_db", help="database (proyecto_db)")
    psql.add_argument("-c", "--command", help="run one command and exit")

    for name, func, text in (("stop", cmd_stop, "stop PostgreSQL (cluster or nodes)"),
                             ("start", cmd_start, "start PostgreSQL (cluster or nodes)")):
        parser = add(name, func, text)
        parser.add_argument("nodes", metavar="NODE", nargs="*", help="default: every node")
        add_change_options(parser)
        if name == "stop":
            parser.add_argument("--containers", action="store_true",
                                help="lab: also stop the containers")
        else:
            parser.add_argument("--as-primary", action="store_true",
                                help="start the named node as a primary although its start "
                                     "guard could not confirm that no other node is one "
                                     "(no peer answered): deliberately, once")
