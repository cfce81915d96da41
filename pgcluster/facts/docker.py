"""Docker objects on the control machine (pyinfra @local), for building the lab."""

from __future__ import annotations

import json
import shlex

from pyinfra.api import FactBase


class DockerObject(FactBase):
    """`docker <kind> inspect` of one object, or None when it does not exist."""

    def command(self, kind: str, object_name: str) -> str:
        name = shlex.quote(object_name)
        return f"docker {kind} inspect --format '{{{{json .}}}}' {name} 2>/dev/null || true"

    def process(self, output: list[str]) -> dict | None:
        text = "\n".join(output).strip()
        return json.loads(text) if text else None

    def default(self) -> None:
        return None
