"""Load an inventory file as the pyinfra CLI does, without connecting to any host."""

from __future__ import annotations

from pyinfra.api import Inventory, State
from pyinfra.context import ctx_state
from pyinfra_cli.inventory import make_inventory

from tests.conftest import REPO


def load_inventory(path: str) -> Inventory:
    """pyinfra's own reading of an inventory file and group_data/ (the file validates itself
    on the way, as on `pyinfra INVENTORY DEPLOY`); nothing is connected."""
    ctx_state.set(State())
    return make_inventory(str(REPO / path), cwd=str(REPO))
