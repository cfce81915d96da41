"""Reach the inventory's hosts from the CLI, outside a deploy, through pyinfra's own
connectors (docker exec for the lab, SSH for VMs), so every command works on every target.

    with Session("inventory/docker.py") as session:
        for node in session.cluster.nodes:
            print(node.name, session.fact(node, PgNode))

Read-only commands (status, monitor, lists) use a Session; commands that change the
cluster run pyinfra deploys (see pgcluster.control.deploy.run_deploy), so they also work as
`pyinfra INVENTORY deploys/<command>.py`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import gevent
from pyinfra.api import Config, FactBase, Host, State
from pyinfra.api.arguments import CONNECTOR_ARGUMENT_KEYS, pop_global_arguments
from pyinfra.api.connect import connect_all, disconnect_all
from pyinfra.context import ctx_config, ctx_inventory, ctx_state
from pyinfra_cli.inventory import make_inventory

from pgcluster import REPO_ROOT
from pgcluster.facts.postgres import PgQuery, node_state
from pgcluster.model.cluster import Cluster, Node, ServiceHost
from pgcluster.model.layout import Layout
from pgcluster.model.topology import Topology, decide

T = TypeVar("T")
# For inventory/docker.py: a stopped lab node is an unreachable host, not a refusal.
ALLOW_DOWN = {"PGCLUSTER_ALLOW_DOWN": "1"}


def read_inventory(inventory: str, env: Mapping[str, str] | None = None) -> State:
    """pyinfra's state for an inventory file read with its group data (and `env` in the
    environment meanwhile), before any host is connected to."""
    path = Path(inventory)
    if not path.is_absolute():
        path = REPO_ROOT / path
    state = State(check_for_changes=False)
    state.cwd = str(REPO_ROOT)
    ctx_state.set(state)
    config = Config()
    ctx_config.set(config)
    old_cwd = os.getcwd()
    env = dict(env or {})
    old_env = {key: os.environ.get(key) for key in env}
    os.chdir(REPO_ROOT)  # group_data/ is found relative to the working directory
    os.environ.update(env)
    try:
        made = make_inventory(str(path), cwd=str(REPO_ROOT))
    finally:
        os.chdir(old_cwd)
        for key, value in old_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    ctx_inventory.set(made)
    state.init(made, config)
    return state


def inventory_cluster(inventory: str, env: Mapping[str, str] | None = None) -> Cluster:
    """The cluster an inventory describes (nodes, service hosts, the drill host), without
    connecting to any host: for choices made before anything is touched."""
    return Cluster.from_inventory(read_inventory(inventory, env).inventory)


class Session:
    def __init__(self, inventory: str = "inventory/docker.py",
                 env: dict[str, str] | None = None):
        self.inventory_path = inventory
        self.env = env or {}  # environment the inventory file is read with
        self.state: State | None = None

    def __enter__(self) -> Session:
        state = read_inventory(self.inventory_path, self.env)
        connect_all(state)
        self.state = state
        self.cluster: Cluster = Cluster.from_inventory(state.inventory)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.state is not None:
            disconnect_all(self.state)

    # -------------------------------------------------------------------------- hosts

    def host(self, node: Node | ServiceHost | str) -> Host:
        assert self.state is not None
        name = node.host if isinstance(node, Node | ServiceHost) else self.cluster.find(node).host
        return self.state.inventory.get_host(name)

    def reachable(self, node: Node | ServiceHost) -> bool:
        return self.host(node) in self.state.activated_hosts

    def data(self, node: Node | ServiceHost) -> dict[str, Any]:
        return self.host(node).data.dict()

    def layout(self, node: Node) -> Layout:
        return Layout.from_data(self.data(node))

    def gather(self, func: Callable[[Node], T], nodes: list[Node] | None = None) -> dict[str, T]:
        """func(node) for every reachable node, in parallel; keyed by node name."""
        nodes = [n for n in (nodes or list(self.cluster.nodes)) if self.reachable(n)]
        jobs = {node.name: gevent.spawn(func, node) for node in nodes}
        gevent.joinall(list(jobs.values()))
        return {name: job.get() for name, job in jobs.items()}

    # ----------------------------------------------------------------------- commands

    def run(self, node: Node | ServiceHost, command: str, timeout: int | None = None
            ) -> tuple[bool, str, str]:
        """Run a shell command on the node as pyinfra runs an operation's or a fact's: with
        the host's own connector arguments from its data (`_sudo` for an SSH user that is
        not root, `_sudo_password`, `_su_user`, ...), which Host.run_shell_command alone
        would drop. So a command runs as root in the lab and through sudo on a VM."""
        host = self.host(node)
        arguments, _ = pop_global_arguments(self.state, host, {"_timeout": timeout})
        connector_arguments = {key: value for key, value in arguments.items()
                               if key in CONNECTOR_ARGUMENT_KEYS}
        ok, output = host.run_shell_command(command, **connector_arguments)
        return ok, "\n".join(output.stdout_lines), "\n".join(output.stderr_lines)

    def node_state(self, node: Node) -> dict[str, Any]:
        return node_state(self.host(node))

    def fact(self, node: Node, fact: type[FactBase], **arguments: Any) -> Any:
        return self.host(node).get_fact(fact, **arguments)

    def query(self, node: Node, sql: str, database: str = "postgres") -> list[list[str]] | None:
        """Rows as strings, or None when the server is down (as the postgres OS user)."""
        return self.host(node).get_fact(PgQuery, sql=sql, database=database, port=node.port)

    def topology(self) -> Topology:
        live = self.gather(self.node_state)
        return decide(self.cluster, {self.cluster.find(k).host: v for k, v in live.items()})
