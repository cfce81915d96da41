"""Build the Docker lab on the control machine (pyinfra @local): base image, node image,
network, volumes and the three systemd containers.

Re-running leaves existing containers and volumes alone; a stopped container is started.
Nothing here ever removes anything: that is `pgcluster destroy`, on request only.
"""

from __future__ import annotations

from pyinfra.api import deploy

from pgcluster.lab.definition import Lab, load_lab
from pgcluster.operations.lab import base_image, container, network, node_image, volume


@deploy("Build the Docker lab")
def build(lab: Lab | None = None) -> None:
    lab = lab or load_lab()
    base_image(name=f"Base image {lab.base_image}", image=lab.base_image)
    node_image(name=f"Node image {lab.image}", image=lab.image)
    network(name=f"Network {lab.network} ({lab.subnet})", network_name=lab.network,
            subnet=lab.subnet)
    for name in lab.volumes:
        volume(name=f"Volume {name}", volume_name=name)
    for node in lab.machines:
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
