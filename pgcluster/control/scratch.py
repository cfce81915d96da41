"""Where a restore outside the cluster goes: `pgcluster restore --scratch` and every
restore drill. An inventory with a `drill` host restores onto it (inventory/drill_host.py
reaches it as a one-node inventory of its own); the Docker lab without one onto its scratch
node (inventory/scratch.py, created on demand). Decided from the inventory file alone,
before any host is touched.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pgcluster.control.session import ALLOW_DOWN, inventory_cluster
from pgcluster.errors import ConfigError
from pgcluster.lab.definition import LabNode, load_lab
from pgcluster.model.cluster import Node

LAB_INVENTORY = "inventory/docker.py"
SCRATCH_INVENTORY = "inventory/scratch.py"
DRILL_HOST_INVENTORY = "inventory/drill_host.py"
# What inventory/drill_host.py reads: the inventory whose `drill` host it reaches.
DRILL_SOURCE = "PGCLUSTER_DRILL_INVENTORY"


@dataclass(frozen=True)
class ScratchTarget:
    """A restore target outside the cluster."""

    name: str  # its node name (what --force-node names, the drill row's node)
    where: Node | LabNode  # how this machine reaches its PostgreSQL (drill.reach)
    inventory: str  # the one-node inventory the restore deploy runs with
    env: dict[str, str] = field(default_factory=dict)  # what that inventory reads
    drill_host: bool = False  # the inventory's `drill` host (else the lab's scratch node)

    def describe(self) -> str:
        return (f"the drill host {self.name}" if self.drill_host
                else f"the scratch node {self.name}")


def no_target(inventory: str) -> str:
    return (f"{inventory} has no `drill` host and is not the Docker lab, so there is nowhere "
            "outside the cluster to restore onto: add a `drill` group with one host to it "
            "(Debian 12 with backup_root mounted as on the nodes; docs/drills.md), or restore "
            "onto a node of the cluster with --node NAME")


def scratch_target(inventory: str) -> ScratchTarget:
    """The inventory's `drill` host, else the lab's scratch node (ConfigError: neither)."""
    drill = inventory_cluster(inventory, ALLOW_DOWN).drill_host
    if drill is not None:
        return ScratchTarget(drill.name, drill, DRILL_HOST_INVENTORY, {DRILL_SOURCE: inventory},
                             drill_host=True)
    if inventory == LAB_INVENTORY:
        scratch = load_lab().scratch
        return ScratchTarget(scratch.name, scratch, SCRATCH_INVENTORY)
    raise ConfigError(no_target(inventory))
