"""Jobs run now on a node, their output streamed to the operator: a backup script
(deploys/backup.py) or a restore (deploys/restore.py). Actions, not states: always a change.
"""

from __future__ import annotations

import shlex

from pyinfra import host
from pyinfra.api import FunctionCommand, Host, State, StringCommand, operation
from pyinfra.api.arguments import CONNECTOR_ARGUMENT_KEYS, pop_global_arguments

from pgcluster.facts.postgres import node_state
from pgcluster.model.layout import SCRIPTS_DIR, Layout
from pgcluster.operations.conditional import refuse


def _run_and_show(state: State, host: Host, command: str, timeout: int | None = None) -> bool:
    """Run a job on the node with its output streamed to the pyinfra output (stderr), with
    the host's connector arguments as an operation's command gets them (`_sudo` for an SSH
    user that is not root, ...): the scripts need root or postgres."""
    arguments, _ = pop_global_arguments(state, host, {"_timeout": timeout})
    connector_arguments = {key: value for key, value in arguments.items()
                           if key in CONNECTOR_ARGUMENT_KEYS}
    ok, _output = host.run_shell_command(StringCommand(command), print_output=True,
                                         **connector_arguments)
    return ok


@operation(is_idempotent=False)
def run_job(command: str, timeout: int | None = None):
    """Run a backup script now (an action: always a change), showing what it says."""
    yield FunctionCommand(_run_and_show, (command, timeout), {})


@operation(is_idempotent=False)
def restore_backup(layout: Layout, backup: str, target_args: list[str], timeline: str,
                   action: str, force: bool, port: int = 5432, timeout: int | None = None):
    """Restore a full backup into this node's data directory (restore-backup) and roll it
    forward. A running server is refused unless force (the user named this node)."""
    node = node_state(host)
    if node.get("running") and not force:
        yield from refuse(host,
            f"refusing: {host.name} runs a PostgreSQL server; name it explicitly "
            "(--force-node) to stop it and restore (its data directory is moved aside)"
        )
        return
    command = " ".join(shlex.quote(part) for part in [
        f"{SCRIPTS_DIR}/restore-backup", backup, *target_args, "--timeline", timeline,
        "--action", action, *(["--force"] if force else []),
    ])
    yield FunctionCommand(_run_and_show, (command, timeout), {})
