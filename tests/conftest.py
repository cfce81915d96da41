"""Shared test helpers: the repository root and running pyinfra as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def run_pyinfra(*args: str, env: dict | None = None, json_output: bool = False,
                timeout: int = 900) -> subprocess.CompletedProcess:
    """`pyinfra -y ARGS` from the repository root, as `make` runs it."""
    full_env = {**os.environ, "PYINFRA_PROGRESS": "off", **(env or {})}
    command = [sys.executable, "-m", "pyinfra", "-y", *(["--json"] if json_output else []), *args]
    return subprocess.run(command, cwd=REPO, env=full_env, capture_output=True, text=True,
                          timeout=timeout, check=False)


def totals(result: subprocess.CompletedProcess) -> dict:
    """The results totals of a `pyinfra --json` run (changed operations are 'success')."""
    return json.loads(result.stdout)["results"]["totals"]


def changed(result: subprocess.CompletedProcess) -> list[str]:
    """The operations of a `pyinfra --json` run that changed something, with their hosts:
    what to show when a run should have changed nothing."""
    return [f"{op['name']}: {', '.join(op['success'])}"
            for op in json.loads(result.stdout)["results"]["operations"] if op["success"]]
