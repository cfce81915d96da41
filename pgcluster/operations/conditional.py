"""How operations decide: only_if plans a step on every host that acts only where it
applies; refuse stops a step with a message."""

from __future__ import annotations

import shlex
from collections.abc import Iterator

from pyinfra.api import Host, operation
from pyinfra.api.exceptions import OperationError


@operation()
def only_if(condition: bool, op, **kwargs):
    """Run `op` where `condition` holds (decided when planning) and nothing elsewhere,
    while every host still gets this step in its sequence.

    pyinfra orders operations with a DAG built from each host's own sequence; a step that
    only some hosts have can be scheduled after a later step of another host. Role-specific
    steps go through here so that, for example, a replica's clone can never run before the
    primary's server is started and its slot exists.
    """
    if condition:
        yield from op._inner(**kwargs)


def refuse(target: Host, message: str) -> Iterator[str]:
    """Refuse this step on `target` (the operation's host): while planning, an
    OperationError (nothing has run yet); while executing, a command that fails with the
    message. pyinfra treats an exception raised then as a crash of the whole run, not as a
    failed step: the run would stop without its failure handling (the operation lock's
    release among it)."""
    if target.state.is_executing:
        yield f"echo {shlex.quote(message)} >&2; exit 1"
        return
    raise OperationError(message)
