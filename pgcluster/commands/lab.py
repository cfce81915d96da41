"""Lab commands: up (build + deploy), info (connection map), destroy."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from pgcluster.commands.common import add_change_options, changes, confirm, finished, typed
from pgcluster.control import secrets
from pgcluster.control.deploy import run_deploy, shown
from pgcluster.control.preflight import load_group_data
from pgcluster.lab.definition import Lab, load_lab
from pgcluster.lab.docker import docker_available, inspect
from pgcluster.lab.standins import STANDIN_INVENTORY
from pgcluster.model import scrape
from pgcluster.model.endpoints import PORT_KEYS, endpoints, multi_host


def cmd_up(args: argparse.Namespace) -> int:
    """Build the lab (if needed) and deploy the cluster on it."""
    for inventory, deploy_file, what in (("@local", "deploys/lab.py", "Lab"),
                                         (args.inventory, "deploys/cluster.py", "Cluster")):
        extra = ["--data", "break_lock=yes"] if args.break_lock and inventory != "@local" else []
        run = run_deploy(inventory, deploy_file, *extra, verbose=args.verbose,
                         command=typed(args))
        if not run.ok:
            return finished(run, what)
        print(f"{what}: {changes(run)} ({run.seconds:.1f}s); log: {shown(run.log)}")
    return cmd_info(args)


def connect_command(host: str, port: int | None, ca_file: Path, user: str = "admin") -> str:
    """The psql command line for a lab node: TLS, the server's certificate checked against
    the cluster CA and the address connected to."""
    port_part = f" port={port}" if port is not None else ""
    return (f'psql "host={host}{port_part} user={user} dbname=proyecto_db '
            f'sslmode=verify-full sslrootcert={secrets.shown(ca_file)}"')


def cmd_info(args: argparse.Namespace) -> int:
    """Print how to connect to each node of the lab."""
    lab = load_lab()
    standins = all(node.published_port is None for node in lab.nodes)
    # SSH stand-ins are deployed through their own inventory (and its TLS directory).
    inventory = STANDIN_INVENTORY if standins else args.inventory
    ca_file = secrets.inventory_dir("tls", inventory=Path(inventory).stem) / "ca.crt"
    print(f"\nLab '{lab.name}': network {lab.network} ({lab.subnet})")
    print(f"{'node':<22}{'role':<10}{'address':<15}connect from this machine")
    for node in lab.nodes:
        if node.published_port is None:  # reached at its own address, like a VM
            url = connect_command(node.address, None, ca_file)
        else:
            url = connect_command(lab.bind_address, node.published_port, ca_file)
        print(f"{node.name:<22}{node.role:<10}{node.address:<15}{url}")
    for node in lab.etcd:  # the `etcd` group: Patroni's DCS, no PostgreSQL
        print(f"{node.name:<22}{node.role:<10}{node.address:<15}(etcd only: no PostgreSQL)")
    if lab.proxy:
        print(f"{lab.proxy.name:<22}{lab.proxy.role:<10}{lab.proxy.address:<15}"
              "(HAProxy: the endpoints below)")
        _endpoints(lab, ca_file)
    if lab.monitor:
        data = load_group_data("all")
        print(f"{lab.monitor.name:<22}{lab.monitor.role:<10}{lab.monitor.address:<15}"
              "(Prometheus and Alertmanager: docs/monitoring.md)")
        prometheus = lab.published(int(data["prometheus_port"]))
        alertmanager = lab.published(int(data["alertmanager_port"]))
        base = f"http://{lab.bind_address}:{prometheus}"
        print(f"\nMetrics and alerts:\n  {'Prometheus':<36}{base}/"
              f"\n  {'The cluster (console page)':<36}{base}{scrape.CONSOLE_PATH}"
              f"\n  {'Alertmanager (API, amtool)':<36}http://{lab.bind_address}:{alertmanager}"
              "/api/v2/alerts")
    if standins:
        # No lab defaults apply to an SSH inventory.
        print("\nPasswords: those the deploy had (PGCLUSTER_*_PASSWORD, or "
              f"{secrets.shown(secrets.secrets_file(Path(inventory).stem))}).")
    else:
        print("\nLab passwords (documented defaults, this lab only): admin/admin123 "
              "(superuser), app/app123 (the application's role), replicator/replica123 "
              "(replication only).")
    print("TLS only: plain-text connections are refused; sslrootcert is the lab's CA.")
    print("Writes go to the primary; the standby and the read-only replica answer reads.")
    return 0


def _endpoints(lab: Lab, ca_file: Path) -> None:
    """What to give an application: the proxy's two addresses (and the direct ones), and
    libpq's multi-host strings for a client that wants no proxy."""
    data = load_group_data("all")
    ports = {key: lab.published(int(data[key])) or int(data[key]) for key in PORT_KEYS}
    user, database = data["app_user"], data["database_name"]
    print("\nEndpoints (whichever node is primary; app's password, TLS verify-full):")
    ca = secrets.shown(ca_file)
    for endpoint in endpoints(lab.bind_address, ports):
        print(f"  {endpoint.name:<36}psql '{endpoint.conninfo(user, database, ca)}'")
    stats = lab.published(int(data["proxy_stats_port"]))
    print(f"  {'HAProxy statistics':<36}http://{lab.bind_address}:{stats}/")
    hosts = [(lab.bind_address, n.published_port) for n in lab.nodes
             if n.published_port is not None]
    if hosts:
        print("Without the proxy (libpq tries each node in turn):")
        for attrs in ("read-write", "prefer-standby"):
            print(f"  psql '{multi_host(hosts, user, database, ca, attrs)}'")


def _removal(kind: str, name: str, lab: Lab) -> tuple[bool, str]:
    """Whether pgcluster may remove this object, and what the user is told about it."""
    info = inspect(kind, name)
    if info is None:
        return False, "absent"
    if kind == "container":
        labels = (info.get("Config") or {}).get("Labels") or {}
        if labels.get("pgcluster.lab") != lab.name:
            return False, "not created by pgcluster for this lab (no pgcluster.lab label): kept"
    if kind == "volume" and "pgcluster.lab" not in (info.get("Labels") or {}):
        return False, "not created by pgcluster (no pgcluster.lab label): kept"
    return True, "will be removed"


def cmd_destroy(args: argparse.Namespace) -> int:
    """Remove the lab's containers, network and (unless --keep-volumes) volumes."""
    lab = load_lab()
    if not docker_available():
        print("Docker is not reachable: nothing to destroy.", file=sys.stderr)
        return 1
    scratch = lab.scratch  # created only by restores (deploys/scratch.py); absent is fine
    if args.scratch:
        objects = [("container", scratch.name), ("volume", scratch.data_volume)]
    else:
        objects = [("container", c) for c in [*lab.containers, scratch.name]]
        objects += [("network", lab.network)]
        if not args.keep_volumes:
            objects += [("volume", v) for v in [*lab.volumes, scratch.data_volume]]
    print(f"Lab '{lab.name}':")
    plan = []
    for kind, name in objects:
        allowed, why = _removal(kind, name, lab)
        print(f"  {kind:<10}{name:<28}{why}")
        if allowed:
            plan.append((kind, name))
    if args.keep_volumes and not args.scratch:
        print(f"  volumes kept: {', '.join(lab.volumes)}")
    elif any(kind == "volume" for kind, _ in plan):
        print("  The volumes hold the databases and the backups: their data is lost for good.")
    if not plan:
        print("Nothing to remove.")
        return 0
    if not confirm("Remove these?", args.yes):
        print("Nothing removed.")
        return 1
    removers = {"container": ["docker", "rm", "--force", "--volumes"],
                "network": ["docker", "network", "rm"], "volume": ["docker", "volume", "rm"]}
    failures = 0
    for kind, name in plan:
        result = subprocess.run([*removers[kind], name], capture_output=True, text=True,
                                check=False)
        if result.returncode:
            failures += 1
            print(f"  failed to remove {kind} {name}: {result.stderr.strip()}", file=sys.stderr)
        else:
            print(f"  removed {kind} {name}")
    return 1 if failures else 0


def register(sub: argparse._SubParsersAction) -> None:
    up = sub.add_parser("up", help="build the Docker lab and deploy the cluster",
                        description=cmd_up.__doc__)
    add_change_options(up)
    up.set_defaults(func=cmd_up)
    info = sub.add_parser("info", help="how to connect to each node of the lab",
                          description=cmd_info.__doc__)
    info.set_defaults(func=cmd_info)
    destroy = sub.add_parser("destroy", help="remove the lab's containers, network and volumes",
                             description=cmd_destroy.__doc__ + " Lab only; asks first.")
    destroy.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    destroy.add_argument("--keep-volumes", action="store_true",
                         help="keep the data and backup volumes")
    destroy.add_argument("--scratch", action="store_true",
                         help="remove only the scratch node restores use, and its volume")
    destroy.set_defaults(func=cmd_destroy)
