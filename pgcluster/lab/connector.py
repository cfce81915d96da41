"""The `@lab/NAME` pyinfra connector: Docker lab nodes reached like VMs.

pyinfra's own `@docker/NAME` connector starts a stopped container and then commits and
removes it at the end of the run, and runs a missing name as an image. A lab node must
behave like a server instead: a running container is reached with `docker exec`; a stopped
or missing one is simply an unreachable host. This connector never starts, commits or
removes anything. It is registered as an entry point (pyproject.toml), installed with
`pip install -r requirements.txt`.
"""

from __future__ import annotations

from pyinfra.api.exceptions import ConnectError, InventoryError
from pyinfra.connectors.docker import DockerConnector
from typing_extensions import override

from pgcluster.lab.docker import container_status


class LabConnector(DockerConnector):
    @override
    @staticmethod
    def make_names_data(name=None):
        if not name:
            raise InventoryError("@lab needs a container name: @lab/postgresql-primary")
        yield (f"@lab/{name}", {"docker_identifier": name}, ["@lab"])

    @override
    def connect(self) -> None:
        self.local.connect()
        name = self.data["docker_identifier"]
        status = container_status(name)
        if status != "running":
            raise ConnectError(
                f"lab container {name} is {status or 'missing'}: start the lab with "
                "`pyinfra -y @local deploys/lab.py` (or `make cluster`)"
            )
        self.container_id = name
        self.no_stop = True

    @override
    def disconnect(self) -> None:
        """Leave the container exactly as it is."""
