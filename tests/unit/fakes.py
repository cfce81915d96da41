"""A stand-in for pyinfra's `host` inside an operation: facts in, commands out, as pyinfra
tests its own operations. Facts are answered from a table keyed by fact class (or by
(fact class, key-argument) for facts asked with different arguments)."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from pgcluster.facts.postgres import PgNode


class FakeData(dict):
    def dict(self) -> dict[str, Any]:
        return dict(self)


@dataclass
class FakeState:
    is_executing: bool = False


@dataclass
class FakeInventory:
    hosts: dict[str, FakeHost] = field(default_factory=dict)

    def get_host(self, name: str) -> FakeHost:
        return self.hosts[name]


class FakeHost:
    def __init__(self, name: str = "db1", facts: dict[Any, Any] | None = None,
                 data: dict[str, Any] | None = None, state: FakeState | None = None,
                 inventory: FakeInventory | None = None):
        self.name = name
        self.facts = facts or {}
        self.data = FakeData(data or {})
        self.state = state or FakeState()
        self.inventory = inventory or FakeInventory()
        self.inventory.hosts.setdefault(name, self)
        self.noops: list[str] = []

    def get_fact(self, fact: type, **kwargs: Any) -> Any:
        for key in (fact, *((fact, str(v)) for v in kwargs.values())):
            if key in self.facts:
                return self.facts[key]
        if fact is PgNode:
            return {}
        raise KeyError(f"the test gave no answer for {fact.__name__}({kwargs})")

    def noop(self, description: str) -> None:
        self.noops.append(description)

    def get_temp_filename(self, dest: str) -> str:
        return f"/tmp/pyinfra-{abs(hash(dest))}"


def run_operation(monkeypatch: pytest.MonkeyPatch, module: Any, host: FakeHost, op: Any,
                  **kwargs: Any) -> list[Any]:
    """The commands `op` yields on `host` (module: where the operation reads `host` from)."""
    monkeypatch.setattr(module, "host", host)
    return list(op._inner(**kwargs))


def text(commands: Iterator[Any] | list[Any]) -> str:
    return "\n".join(c if isinstance(c, str) else str(getattr(c, "bits", c)) for c in commands)


def sql(commands: Iterator[Any] | list[Any]) -> list[str]:
    """The SQL each psql_command among `commands` runs (its -c argument, unquoted)."""
    found = []
    for command in text(commands).splitlines():
        for match in re.finditer(r"-c ((?:'[^']*'|\"[^\"]*\"|[^\s)'\"])+)", command):
            found.append(shlex.split(match.group(1))[0])
    return found


class Clock:
    """time.time/monotonic/sleep for control.drill: sleeping moves the clock, so a drill's
    waits and timestamps run in no time."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def time(self) -> float:
        return self.now

    monotonic = time

    def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 0.0)
