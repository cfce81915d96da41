"""Build the Docker lab on the control machine (pyinfra @local): base image, node image,
network, volumes and the three systemd containers.

Re-running leaves existing containers and volumes alone; a stopped container is started.
Nothing here ever removes anything: that is `pgcluster destroy`, on request only.
"""

from __future__ import annotations

import hashlib
import json
import shlex

from pyinfra import host, logger
from pyinfra.api import FactBase, deploy, operation
from pyinfra.api.exceptions import OperationError

from pgcluster import LAB_DIR
from pgcluster.lab import Lab, LabNode, cgroup_version, inspect, load_lab, run_arguments


class DockerObject(FactBase):
    """`docker <kind> inspect` of one object, or None when it does not exist."""

    def command(self, kind: str, object_name: str) -> str:
        name = shlex.quote(object_name)
        return f"docker {kind} inspect --format '{{{{json .}}}}' {name} 2>/dev/null || true"

    def process(self, output: list[str]) -> dict | None:
        text = "\n".join(output).strip()
        return json.loads(text) if text else None

    def default(self) -> None:
        return None


def _dockerfile_digest() -> str:
    return hashlib.sha256((LAB_DIR / "Dockerfile").read_bytes()).hexdigest()[:16]


def node_image_current(image: str) -> bool:
    """Whether the node image exists and was built from the current lab/Dockerfile."""
    info = inspect("image", image) or {}
    labels = (info.get("Config") or {}).get("Labels") or {}
    return labels.get("pgcluster.dockerfile") == _dockerfile_digest()


@operation()
def base_image(image: str):
    if host.get_fact(DockerObject, kind="image", object_name=image):
        return
    yield f"{shlex.quote(str(LAB_DIR / 'build-base-image.sh'))} {shlex.quote(image)}"


@operation()
def node_image(image: str):
    """The node image, rebuilt when lab/Dockerfile changes (containers keep theirs)."""
    digest = _dockerfile_digest()
    info = host.get_fact(DockerObject, kind="image", object_name=image)
    labels = ((info or {}).get("Config") or {}).get("Labels") or {}
    if labels.get("pgcluster.dockerfile") == digest:
        return
    yield (
        f"docker build --quiet --label pgcluster.dockerfile={digest} "
        f"--tag {shlex.quote(image)} {shlex.quote(str(LAB_DIR))}"
    )


@operation()
def network(network_name: str, subnet: str):
    info = host.get_fact(DockerObject, kind="network", object_name=network_name)
    if info:
        subnets = [c.get("Subnet") for c in (info.get("IPAM") or {}).get("Config") or []]
        if subnet not in subnets:
            raise OperationError(
                f"Docker network {network_name} exists with subnet(s) {subnets}, not {subnet}: "
                "remove it (`docker network rm`) or choose another name/subnet in the lab file"
            )
        return
    yield f"docker network create --driver bridge --subnet {subnet} {shlex.quote(network_name)}"


@operation()
def volume(volume_name: str):
    if host.get_fact(DockerObject, kind="volume", object_name=volume_name):
        return
    yield f"docker volume create --label pgcluster.lab=1 {shlex.quote(volume_name)}"


@operation()
def container(lab: Lab, node: LabNode):
    """The node's container exists and runs, booted (systemd reached running)."""
    info = host.get_fact(DockerObject, kind="container", object_name=node.name)
    if info is None:
        yield " ".join(shlex.quote(a) for a in run_arguments(lab, node, cgroup_version()))
    elif not info["State"]["Running"]:
        yield f"docker start {shlex.quote(node.name)}"
    else:
        _warn_if_different(info, lab, node)
        return
    # systemd must have finished booting before the cluster deploy execs into the node.
    yield (
        f"timeout 120 sh -c 'until docker exec {shlex.quote(node.name)} "
        "systemctl is-system-running 2>/dev/null | grep -Eq \"^(running|degraded)$\"; "
        "do sleep 0.5; done'"
    )


def _warn_if_different(info: dict, lab: Lab, node: LabNode) -> None:
    networks = (info.get("NetworkSettings") or {}).get("Networks") or {}
    address = (networks.get(lab.network) or {}).get("IPAddress")
    if address != node.address:
        logger.warning(
            f"lab container {node.name} exists with address {address} on {lab.network}, "
            f"not {node.address}: left as it is (destroy and rebuild the lab to change it)"
        )


@deploy("Build the Docker lab")
def build(lab: Lab | None = None) -> None:
    lab = lab or load_lab()
    base_image(name=f"Base image {lab.base_image}", image=lab.base_image)
    node_image(name=f"Node image {lab.image}", image=lab.image)
    network(name=f"Network {lab.network} ({lab.subnet})", network_name=lab.network,
            subnet=lab.subnet)
    for name in lab.volumes:
        volume(name=f"Volume {name}", volume_name=name)
    for node in lab.nodes:
        published = (f", {lab.bind_address}:{node.published_port}"
                     if node.published_port is not None else "")
        container(name=f"Container {node.name} ({node.role}, {node.address}{published})",
                  lab=lab, node=node)


@deploy("Create the lab's scratch node")
def scratch(lab: Lab | None = None) -> None:
    """A node outside the cluster to restore backups onto (inventory/scratch.py reaches it):
    same image, network and backups volume, its own data volume. Left alone if it exists."""
    lab = lab or load_lab()
    node = lab.scratch
    volume(name=f"Volume {node.data_volume}", volume_name=node.data_volume)
    published = (f", {lab.bind_address}:{node.published_port}"
                 if node.published_port is not None else "")
    container(name=f"Container {node.name} (scratch, {node.address}{published})", lab=lab,
              node=node)
