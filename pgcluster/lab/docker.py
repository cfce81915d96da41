"""Docker queries about the lab, from the control machine: is the engine there, what is a
container's state, which cgroup version, how a node's container is run, and whether the
node image was built from the current lab/Dockerfile."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess

from pgcluster import LAB_DIR
from pgcluster.errors import ConfigError
from pgcluster.lab.definition import DEFAULT_LAB, Lab, LabNode

BACKUPS_MOUNT = "/backups"
DATA_MOUNT = "/var/lib/postgresql"  # Debian's home of every cluster's data directory
ETCD_MOUNT = "/var/lib/etcd"  # an etcd-only container's volume: etcd_data_dir is below it
MONITOR_MOUNT = "/var/lib/prometheus"  # the monitor's volume: Prometheus' and Alertmanager's data
OBJECTSTORE_MOUNT = "/var/lib/seaweedfs"  # the object store's volume: SeaweedFS's data

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
    for node in nodes or lab.machines:
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


def _volumes(lab: Lab, node: LabNode) -> list[str]:
    """A node's data and the shared backups; an etcd host's data; the proxy: none, and its
    endpoints published on the loopback; the monitor: Prometheus' and Alertmanager's data,
    and their ports published on the loopback."""
    published = [arg for inside, outside in lab.ports_of(node)
                 for arg in ("--publish", f"{lab.bind_address}:{outside}:{inside}")]
    if node.role == "proxy":
        return published
    if node.role == "monitor":
        return ["--volume", f"{node.data_volume}:{MONITOR_MOUNT}", *published]
    if node.role == "etcd":
        return ["--volume", f"{node.data_volume}:{ETCD_MOUNT}"]
    if node.role == "objectstore":
        return ["--volume", f"{node.data_volume}:{OBJECTSTORE_MOUNT}"]
    return ["--volume", f"{node.data_volume}:{DATA_MOUNT}",
            "--volume", f"{lab.backups_volume}:{BACKUPS_MOUNT}"]


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
        *_volumes(lab, node),
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


def dockerfile_digest() -> str:
    return hashlib.sha256((LAB_DIR / "Dockerfile").read_bytes()).hexdigest()[:16]


def node_image_current(image: str) -> bool:
    """Whether the node image exists and was built from the current lab/Dockerfile."""
    info = inspect("image", image) or {}
    labels = (info.get("Config") or {}).get("Labels") or {}
    return labels.get("pgcluster.dockerfile") == dockerfile_digest()
