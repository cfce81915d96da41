"""The Docker lab's parts on the control machine (pyinfra @local): base image, node image,
network, volumes and systemd containers; each created only when missing, never removed."""

from __future__ import annotations

import shlex

from pyinfra import host, logger
from pyinfra.api import operation
from pyinfra.api.exceptions import OperationError

from pgcluster import LAB_DIR
from pgcluster.facts.docker import DockerObject
from pgcluster.lab.definition import Lab, LabNode
from pgcluster.lab.docker import cgroup_version, dockerfile_digest, run_arguments


@operation()
def base_image(image: str):
    if host.get_fact(DockerObject, kind="image", object_name=image):
        return
    yield f"{shlex.quote(str(LAB_DIR / 'build-base-image.sh'))} {shlex.quote(image)}"


@operation()
def node_image(image: str):
    """The node image, rebuilt when lab/Dockerfile changes (containers keep theirs)."""
    digest = dockerfile_digest()
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
