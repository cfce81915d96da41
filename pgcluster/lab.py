"""The Docker lab: its definition (lab/<name>.toml) and the few Docker queries around it.

The lab is three systemd containers that behave like small VMs. Building it is
deploys/lab.py (pyinfra on @local); this module only describes it and checks it, so the
inventory, the CLI and the tests all read the same definition.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
import tomllib
from dataclasses import dataclass
from pathlib import Path

from pgcluster import LAB_DIR
from pgcluster.errors import ConfigError

DEFAULT_LAB = "seed"
DATA_MOUNT = "/var/lib/postgresql"  # Debian's home of every cluster's data directory
BACKUPS_MOUNT = "/backups"


@dataclass(frozen=True)
class LabNode:
    name: str
    role: str
    address: str
    data_volume: str
    # Port on bind_address of the control machine mapped to the node's 5432. None publishes
    # nothing: the node is then reached at its own address only, like a VM (lab/ssh.toml).
    published_port: int | None = None


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
        """A lab node's host data for the inventories (cluster nodes and the scratch node)."""
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
        }

    @property
    def containers(self) -> list[str]:
        return [n.name for n in self.nodes]

    @property
    def volumes(self) -> list[str]:
        return [n.data_volume for n in self.nodes] + [self.backups_volume]

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
        source=lab_selector(name),
    )
    _check(lab, path)
    return lab


def _check(lab: Lab, path: Path) -> None:
    problems = []
    try:
        subnet = ipaddress.ip_network(lab.subnet)
    except ValueError as exc:
        raise ConfigError(f"{path}: subnet {lab.subnet!r} is not a network ({exc})") from exc
    if not any(node.role == "primary" for node in lab.nodes):
        raise ConfigError(f"{path}: no node has role = \"primary\"")
    for node in (*lab.nodes, lab.scratch):
        if ipaddress.ip_address(node.address) not in subnet:
            problems.append(f"{path}: {node.name} address {node.address} is outside {subnet}")
        if ipaddress.ip_address(node.address) == next(subnet.hosts()):
            problems.append(f"{path}: {node.name} uses {node.address}, the network's gateway")
    if problems:
        raise ConfigError(problems)


# ------------------------------------------------------------------------------ Docker


def docker_available() -> bool:
    if not shutil.which("docker"):
        return False
    result = subprocess.run(["docker", "info"], capture_output=True, text=True, check=False)
    return result.returncode == 0


def inspect(kind: str, name: str) -> dict | None:
    """`docker <kind> inspect <name>` as a dict, or None when there is no such object."""
    result = subprocess.run(
        ["docker", kind, "inspect", name], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        return None
    return json.loads(result.stdout)[0]


def container_status(name: str) -> str | None:
    info = inspect("container", name)
    return info["State"]["Status"] if info else None


def require_running(lab: Lab, nodes: tuple[LabNode, ...] | None = None,
                    build: str | None = None) -> None:
    """Stop before pyinfra connects when a lab container is missing or stopped, naming the
    command that creates or starts it, instead of failing host by host."""
    build = build or ("make cluster" if lab.name == DEFAULT_LAB else (
        f"PGCLUSTER_LAB={lab.name} pyinfra -y @local deploys/lab.py"
    ))
    if not docker_available():
        raise ConfigError(
            "Docker is not reachable (`docker info` fails): start the Docker engine, then "
            f"build the lab with `{build}`"
        )
    problems = []
    for node in nodes or lab.nodes:
        status = container_status(node.name)
        if status is None:
            problems.append(f"lab container {node.name} does not exist: create it with `{build}`")
        elif status != "running":
            problems.append(
                f"lab container {node.name} is {status}, not running: start the lab with "
                f"`{build}` (or PGCLUSTER_ALLOW_DOWN=1 to treat stopped nodes as unreachable)"
            )
    if problems:
        raise ConfigError(problems)


def cgroup_version() -> str:
    result = subprocess.run(
        ["docker", "info", "--format", "{{.CgroupVersion}}"],
        capture_output=True, text=True, check=False,
    )
    return result.stdout.strip() or "1"


def run_arguments(lab: Lab, node: LabNode, cgroup: str) -> list[str]:
    """`docker run` arguments for a node that boots systemd like a small VM."""
    args = [
        "docker", "run", "--detach",
        "--name", node.name,
        "--hostname", node.name,
        "--network", lab.network,
        "--ip", node.address,
        *(["--publish", f"{lab.bind_address}:{node.published_port}:5432"]
          if node.published_port is not None else []),
        "--volume", f"{node.data_volume}:{DATA_MOUNT}",
        "--volume", f"{lab.backups_volume}:{BACKUPS_MOUNT}",
        "--label", f"pgcluster.lab={lab.name}",
        "--label", f"pgcluster.role={node.role}",
        # systemd needs to mount its cgroup tree and a private /run; --privileged is neither
        # needed nor available everywhere.
        "--cap-add", "SYS_ADMIN",
        "--tmpfs", "/run", "--tmpfs", "/run/lock",
        "--stop-signal", "SIGRTMIN+3",
        "--stop-timeout", "60",  # give PostgreSQL a clean shutdown
        # Without this Docker restarts nothing after a reboot of the machine.
        "--restart", "unless-stopped",
    ]
    if cgroup == "2":
        args += ["--cgroupns", "host", "--volume", "/sys/fs/cgroup:/sys/fs/cgroup:rw"]
    else:
        args += ["--volume", "/sys/fs/cgroup:/sys/fs/cgroup:ro"]
    return [*args, lab.image, "/sbin/init"]
