"""The cluster-wide operation lock around a changing deploy (see pgcluster.model.lock).

Planning only reads: a lock another run holds refuses the deploy before anything is
planned further. The lock is taken when the run starts executing, on every node it
reaches, one node after the other in name order (two runs racing meet on the first node),
and the nodes' states are checked against those the plan was made from, so nothing is
done on a cluster that changed meanwhile. It is released when the last step ends, or when
a step fails (the run stops then). It is not an operation of the deploy, so a re-run that
changes nothing still reports zero changes.
"""

from __future__ import annotations

import getpass
import os
import shlex
import socket
import sys
import uuid
from dataclasses import dataclass, field

import gevent.lock
from pyinfra import logger
from pyinfra.api import Host, State, StringCommand
from pyinfra.api.arguments import CONNECTOR_ARGUMENT_KEYS, pop_global_arguments
from pyinfra.api.state import BaseStateCallback

from pgcluster.errors import ClusterStateError
from pgcluster.facts.lock import OperationLock
from pgcluster.facts.postgres import node_state
from pgcluster.model.lock import LOCK_FILE, LockRecord, new_record, refusal
from pgcluster.model.topology import Topology

ACQUIRED = "pgcluster-lock-acquired"


def _run(state: State, host: Host, command: str) -> tuple[bool, str]:
    """A shell command on the node with its connector arguments (sudo over SSH)."""
    arguments, _ = pop_global_arguments(state, host, {})
    connector_arguments = {key: value for key, value in arguments.items()
                           if key in CONNECTOR_ARGUMENT_KEYS}
    ok, output = host.run_shell_command(StringCommand(command), **connector_arguments)
    return ok, "\n".join(output.stdout_lines)


def this_run(command: str) -> LockRecord:
    """Who this run is: the CLI names the command and the token (PGCLUSTER_OPERATION_*);
    a plain pyinfra run names itself."""
    return new_record(
        holder=f"{getpass.getuser()}@{socket.gethostname()}", pid=os.getpid(),
        command=os.environ.get("PGCLUSTER_OPERATION_COMMAND") or command
        or " ".join(["pyinfra", *sys.argv[1:]]),
        token=os.environ.get("PGCLUSTER_OPERATION_TOKEN") or uuid.uuid4().hex)


@dataclass
class OperationLockHandler(BaseStateCallback):
    """Takes the lock when the first operation starts, releases it after the last one or
    at the first failure."""

    record: LockRecord
    topology: Topology
    break_lock: bool = False
    held: list[Host] = field(default_factory=list)
    last_op: str | None = None
    done: bool = False

    def operation_start(self, state: State, op_hash: str) -> None:  # type: ignore[override]
        if self.last_op is None:
            self.last_op = state.get_op_order()[-1]
            self.acquire(state)

    def operation_end(self, state: State, op_hash: str) -> None:  # type: ignore[override]
        if op_hash == self.last_op:
            self.release()

    def operation_host_error(self, state: State, host: Host, op_hash: str,  # type: ignore[override]
                             retry_count: int = 0, max_retries: int = 0) -> None:
        self.release()

    # ------------------------------------------------------------------------------

    def acquire(self, state: State) -> None:
        text = self.record.to_text()
        write = (f"install -d -m 0755 {shlex.quote(os.path.dirname(LOCK_FILE))} && "
                 f"if (set -C; printf %s {shlex.quote(text)} > {LOCK_FILE}) 2>/dev/null; "
                 f"then echo {ACQUIRED}; else cat {LOCK_FILE}; fi")
        for host in sorted(state.inventory.iter_activated_hosts(), key=lambda h: h.name):
            if self.break_lock:
                found = host.get_fact(OperationLock)
                if found and found.token != self.record.token:
                    logger.warning(f"pgcluster: {host.name}: breaking the operation lock of "
                                   f"{found.describe()}, as asked (break_lock)")
                    _run(state, host, f"rm -f {LOCK_FILE}")
            ok, out = _run(state, host, write)
            if ok and out.strip() == ACQUIRED:
                self.held.append(host)
                continue
            held = LockRecord.parse(out)
            if held is not None and held.token == self.record.token:
                self.held.append(host)
                continue
            self.release()
            raise ClusterStateError(refusal(host.name, held) if held else
                                    f"cannot take the operation lock on {host.name}: {out}")
        self._check_unchanged()

    def _check_unchanged(self) -> None:
        """The plan holds only for the states it was made from."""
        changed = []
        for host in self.held:
            if not self.topology.cluster.is_node(host.name):
                continue  # an etcd-only host runs no PostgreSQL
            planned = self.topology.live.get(host.name, {})
            now = node_state(host)
            for key in ("running", "in_recovery"):
                if bool(planned.get(key)) != bool(now.get(key)):
                    changed.append(f"{host.name} {key} was {bool(planned.get(key))}, "
                                   f"is {bool(now.get(key))}")
        if changed:
            self.release()
            raise ClusterStateError(
                "the cluster changed after this run was planned (" + "; ".join(changed)
                + "): nothing was done. Run the command again on the cluster as it is now.")

    def release(self) -> None:
        if self.done:
            return
        self.done = True
        remove = (f"if grep -qxF {shlex.quote('token=' + self.record.token)} {LOCK_FILE} "
                  f"2>/dev/null; then rm -f {LOCK_FILE}; fi")
        for host in self.held:
            _run(host.state, host, remove)
        self.held.clear()


_planning = gevent.lock.RLock()


def hold(state: State, topology: Topology, command: str, break_lock: bool = False) -> None:
    """Refuse now if another run holds the lock on a node this run reaches; take it when
    this run starts executing (once per run, whichever host's plan asks first: pyinfra
    plans the hosts in parallel greenlets, hence the lock around the check)."""
    with _planning:
        if any(isinstance(h, OperationLockHandler) for h in state.callback_handlers):
            return
        record = this_run(command)
        if not break_lock:
            for host in state.inventory.iter_activated_hosts():
                found = host.get_fact(OperationLock)
                if found is not None and found.token != record.token:
                    raise ClusterStateError(refusal(host.name, found))
        state.add_callback_handler(OperationLockHandler(record, topology, break_lock))
