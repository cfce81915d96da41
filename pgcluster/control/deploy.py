"""Run a pyinfra deploy from the CLI, as a user would type it."""

from __future__ import annotations

import os
import subprocess
import sys

from pgcluster import REPO_ROOT


def run_deploy(inventory: str, deploy: str, *pyinfra_args: str,
               env: dict[str, str] | None = None) -> int:
    """Run `pyinfra -y INVENTORY DEPLOY [ARGS]` from the repository root; its exit code."""
    full_env = {**os.environ, "PYINFRA_PROGRESS": os.environ.get("PYINFRA_PROGRESS", "off"),
                **(env or {})}
    command = [sys.executable, "-m", "pyinfra", "-y", *pyinfra_args, inventory, deploy]
    return subprocess.run(command, cwd=REPO_ROOT, env=full_env, check=False).returncode
