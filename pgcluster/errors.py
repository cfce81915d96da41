"""Errors that stop a run before any host is touched."""

from pyinfra.api.exceptions import PyinfraError


class ConfigError(PyinfraError):
    """The inventory or group data is wrong; the message says what and how to fix it.

    Subclassing PyinfraError makes the pyinfra CLI print the message plainly, without a
    traceback, whether it is raised from an inventory file or a deploy file.
    """

    def __init__(self, problems: str | list[str]):
        if isinstance(problems, str):
            problems = [problems]
        self.problems = list(problems)
        super().__init__("\n".join(["pgcluster cannot continue:", *(f"  - {p}" for p in problems)]))


class ClusterStateError(PyinfraError):
    """The live cluster is in a state where changing it would risk data (e.g. split brain)."""
