"""only_if: a step planned on every host that acts only where it applies."""

from __future__ import annotations

from pyinfra.api import operation


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
