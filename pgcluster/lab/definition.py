"""The Docker lab's definition (lab/<name>.toml): its network, volumes and nodes.

The lab is three systemd containers that behave like small VMs. Building it is
deploys/lab.py (pyinfra on @local); this module only describes it and checks it, so the
inventory, the CLI and the tests all read the same definition.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from pgcluster import LAB_DIR
from pgcluster.errors import ConfigError

DEFAULT_LAB = "seed"


@dataclass(frozen=True)
class LabNode:
    name: str
    role: str
    address: str
    data_volume: str
    # Port on bind_address of the control machine mapped to the node's 5432. None publishes
    # nothing: the node is then reached at its own address only, like a VM (lab/ssh.toml).
    published_port: int | None = None
    # The node this replica streams from instead of the primary (host data `upstream`:
    # cascading replication, docs/replicas.md). None: from the primary.
    upstream: str | None = None


@dataclass(frozen=True)
class Lab:
    name: str
    network: str
    subnet: str
    bind_address: str
    image: str
    base_image: str
    backups_volume: str
    nodes: tuple[LabNode, ...]
    source: str = DEFAULT_LAB  # what PGCLUSTER_LAB was set to (a name or a .toml path)
    scratch_address: str | None = None  # optional in the lab file; default: subnet .250
    scratch_port: int | None = None  # optional; default: the highest published port + 1
    # Optional [data] table: host data every node of this lab gets on top of group_data
    # (e.g. ha_engine = "patroni" in lab/patroni.toml). Checked like group_data.
    data: tuple[tuple[str, object], ...] = ()
    # Optional [[etcd]] tables: containers that run etcd only, the inventory's `etcd` group
    # (lab/etcd.toml). Each with role "etcd"; its data volume holds etcd's data.
    etcd: tuple[LabNode, ...] = ()
    # Optional [proxy] table: a container running HAProxy, the inventory's `proxy` group
    # (role "proxy", no volume), and the ports it publishes on bind_address: container port
    # (the group_data endpoint ports' defaults, 5000...) -> port on this machine.
    proxy: LabNode | None = None
    proxy_ports: tuple[tuple[int, int], ...] = ()
    # Optional [monitor] table: a container running Prometheus and Alertmanager, the
    # inventory's `monitor` group (role "monitor"; its volume holds their data), and the
    # ports it publishes on bind_address, as [proxy]'s (9090, 9093 -> ports here).
    monitor: LabNode | None = None
    monitor_ports: tuple[tuple[int, int], ...] = ()
    # Optional [objectstore] table: a container running SeaweedFS's S3 over HTTPS, the
    # inventory's `objectstore` group (role "objectstore"; its volume holds the objects):
    # pgBackRest's repo2, off the shared backups volume.
    objectstore: LabNode | None = None
    # Optional [drill] table: a container like a node (its own data volume, the backups
    # volume) outside the cluster, the inventory's `drill` group: restore drills restore
    # onto it as they would onto a VM of the user's (role "drill"; published_port optional).
    drill: LabNode | None = None

    @property
    def prefix(self) -> str:
        """The lab's name prefix, from its primary: postgresql-primary -> postgresql."""
        primary = self.node("primary").name
        return primary.rsplit("-", 1)[0] if "-" in primary else primary

    @property
    def scratch(self) -> LabNode:
        """A node outside the cluster for restores (`pgcluster restore --scratch`): same
        image, network and backups volume as the others, its own data volume. Created on
        demand by deploys/scratch.py, removed by `pgcluster destroy`."""
        address = self.scratch_address or str(ipaddress.ip_network(self.subnet).network_address
                                               + 250)
        # Published like the other nodes, next to them; a lab that publishes nothing (its
        # nodes reached at their own addresses, like VMs) publishes no scratch port either.
        ports = [n.published_port for n in self.nodes if n.published_port is not None]
        port = self.scratch_port or (max(ports) + 1 if ports else None)
        return LabNode(name=f"{self.prefix}-scratch", role="scratch", address=address,
                       published_port=port, data_volume=f"{self.prefix}-scratch-data")

    @property
    def gateway(self) -> str:
        """The lab network's gateway: where connections to the published ports come from."""
        return str(next(ipaddress.ip_network(self.subnet).hosts()))

    def host_data(self, node: LabNode) -> dict:
        """A lab node's host data for the inventories (cluster nodes, the drill host and the
        scratch node)."""
        return {
            "node_name": node.name,
            "node_address": node.address,
            "postgresql_port": 5432,  # the lab maps published_port -> 5432 in the container
            "published_port": node.published_port,
            # Who may log in with a password: only this machine. Its clients reach the nodes
            # through the ports published on its loopback, and Docker forwards those
            # connections from the lab network's gateway, so that one address is the lab's
            # only client network: any other container, even on the lab network, is refused
            # by pg_hba.conf (tests/integration/test_06_security.py shows it).
            "client_networks": [f"{self.gateway}/32"],
            # Clients on this machine connect to 127.0.0.1 (the published port) with
            # sslmode=verify-full: the certificate names that address too.
            "tls_extra_names": ["localhost", self.bind_address],
            **({"upstream": node.upstream} if node.upstream else {}),
            **dict(self.data),
        }

    def etcd_host_data(self, node: LabNode) -> dict:
        """An etcd-only container's host data (its name and address; the lab's [data])."""
        return {"node_name": node.name, "node_address": node.address, **dict(self.data)}

    def proxy_host_data(self, node: LabNode) -> dict:
        """The proxy container's host data: its statistics page listens on its own address,
        which Docker publishes on this machine's loopback only."""
        return {"node_name": node.name, "node_address": node.address,
                "proxy_stats_address": node.address, **dict(self.data)}

    def monitor_host_data(self, node: LabNode) -> dict:
        """The monitor container's host data: Prometheus and Alertmanager listen on its own
        address, which Docker publishes on this machine's loopback only."""
        return {"node_name": node.name, "node_address": node.address,
                "monitor_listen_address": node.address, **dict(self.data)}

    def objectstore_host_data(self, node: LabNode) -> dict:
        """The object store container's host data (its name and address; the lab's [data])."""
        return {"node_name": node.name, "node_address": node.address, **dict(self.data)}

    def published(self, container_port: int) -> int | None:
        """The port on bind_address where the proxy's or the monitor's container_port is
        published (their ports differ: 5000-5003 and 7000, 9090 and 9093)."""
        return {**dict(self.proxy_ports), **dict(self.monitor_ports)}.get(container_port)

    def ports_of(self, node: LabNode) -> tuple[tuple[int, int], ...]:
        """What a service container publishes: (its port, the port on bind_address)."""
        return {"proxy": self.proxy_ports, "monitor": self.monitor_ports}.get(node.role, ())

    @property
    def machines(self) -> tuple[LabNode, ...]:
        """Every container of the lab: the database nodes, the etcd-only hosts, the proxy,
        the monitor, the object store, the drill host."""
        return (*self.nodes, *self.etcd, *([self.proxy] if self.proxy else []),
                *([self.monitor] if self.monitor else []),
                *([self.objectstore] if self.objectstore else []),
                *([self.drill] if self.drill else []))

    @property
    def database_machines(self) -> tuple[LabNode, ...]:
        """The containers that run PostgreSQL: the nodes, and the drill host if any."""
        return (*self.nodes, *([self.drill] if self.drill else []))

    @property
    def containers(self) -> list[str]:
        return [n.name for n in self.machines]

    @property
    def volumes(self) -> list[str]:
        return [n.data_volume for n in self.machines if n.data_volume] + [self.backups_volume]

    def node(self, name_or_role: str) -> LabNode:
        for node in self.nodes:
            if name_or_role in (node.name, node.role):
                return node
        raise KeyError(name_or_role)


def lab_selector(name: str | None = None) -> str:
    return name or os.environ.get("PGCLUSTER_LAB") or DEFAULT_LAB


def lab_path(name: str | None = None) -> Path:
    path = Path(lab_selector(name))
    if path.suffix != ".toml":
        path = LAB_DIR / f"{path}.toml"
    return path


def load_lab(name: str | None = None) -> Lab:
    """Read a lab definition: PGCLUSTER_LAB names lab/<name>.toml or a path; default seed."""
    path = lab_path(name)
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in LAB_DIR.glob("*.toml")))
        raise ConfigError(f"no lab definition at {path}: set PGCLUSTER_LAB to one of {known}")
    raw = tomllib.loads(path.read_text())
    lab = Lab(
        name=path.stem,
        network=raw["network"],
        subnet=raw["subnet"],
        bind_address=raw.get("bind_address", "127.0.0.1"),
        image=raw["image"],
        base_image=raw["base_image"],
        backups_volume=raw["backups_volume"],
        nodes=tuple(LabNode(**node) for node in raw["nodes"]),
        scratch_address=raw.get("scratch_address"),
        scratch_port=raw.get("scratch_port"),
        data=tuple(sorted(raw.get("data", {}).items())),
        source=lab_selector(name),
        etcd=tuple(LabNode(**{"role": "etcd", **node}) for node in raw.get("etcd", [])),
        proxy=_proxy(raw.get("proxy")),
        proxy_ports=_ports(raw.get("proxy")),
        monitor=_monitor(raw.get("monitor")),
        monitor_ports=_ports(raw.get("monitor")),
        objectstore=_objectstore(raw.get("objectstore")),
        drill=_drill(raw.get("drill")),
    )
    _check(lab, path)
    return lab


def _proxy(raw: dict | None) -> LabNode | None:
    if raw is None:
        return None
    return LabNode(name=raw["name"], role="proxy", address=raw["address"], data_volume="")


def _monitor(raw: dict | None) -> LabNode | None:
    if raw is None:
        return None
    return LabNode(name=raw["name"], role="monitor", address=raw["address"],
                   data_volume=raw["data_volume"])


def _objectstore(raw: dict | None) -> LabNode | None:
    if raw is None:
        return None
    return LabNode(name=raw["name"], role="objectstore", address=raw["address"],
                   data_volume=raw["data_volume"])


def _drill(raw: dict | None) -> LabNode | None:
    if raw is None:
        return None
    return LabNode(name=raw["name"], role="drill", address=raw["address"],
                   data_volume=raw["data_volume"], published_port=raw.get("published_port"))


def _ports(raw: dict | None) -> tuple[tuple[int, int], ...]:
    return tuple(sorted((int(k), int(v)) for k, v in (raw or {}).get("ports", {}).items()))


def _check(lab: Lab, path: Path) -> None:
    problems = []
    try:
        subnet = ipaddress.ip_network(lab.subnet)
    except ValueError as exc:
        raise ConfigError(f"{path}: subnet {lab.subnet!r} is not a network ({exc})") from exc
    if not any(node.role == "primary" for node in lab.nodes):
        raise ConfigError(f"{path}: no node has role = \"primary\"")
    if any(node.role != "etcd" for node in lab.etcd):
        problems.append(f"{path}: an [[etcd]] container's role is \"etcd\" (or left out)")
    names = [node.name for node in lab.machines]
    for name in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"{path}: two containers are named {name}")
    for node in (*lab.machines, lab.scratch):
        if ipaddress.ip_address(node.address) not in subnet:
            problems.append(f"{path}: {node.name} address {node.address} is outside {subnet}")
        if ipaddress.ip_address(node.address) == next(subnet.hosts()):
            problems.append(f"{path}: {node.name} uses {node.address}, the network's gateway")
    if problems:
        raise ConfigError(problems)
