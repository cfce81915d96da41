"""What the benchmark scripts share: running a command against their lab, and saving the
figures with when and where they were measured."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


class Bench:
    """Commands run from the repository root with PGCLUSTER_LAB set to the bench's lab, so
    neither the seed lab nor the test lab is touched."""

    def __init__(self, lab: str):
        self.env = {**os.environ, "PGCLUSTER_LAB": lab, "PYINFRA_PROGRESS": "off"}

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run a command; a failure ends the benchmark with its output."""
        result = subprocess.run(list(args), cwd=REPO, env=self.env, capture_output=True,
                                text=True, check=False)
        if check and result.returncode:
            sys.exit(f"failed: {' '.join(args)}\n{result.stdout[-2000:]}\n"
                     f"{result.stderr[-3000:]}")
        return result

    def timed(self, *args: str) -> tuple[float, subprocess.CompletedProcess]:
        start = time.monotonic()
        result = self.run(*args)
        return time.monotonic() - start, result

    def pyinfra(self, *args: str) -> tuple[float, subprocess.CompletedProcess]:
        """`pyinfra -y ARGS`, timed."""
        return self.timed(sys.executable, "-m", "pyinfra", "-y", *args)

    def pgcluster(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.run(sys.executable, "-m", "pgcluster", *args, check=check)

    def destroy(self) -> None:
        self.pgcluster("destroy", "--yes", check=False)

    def node_sh(self, container: str, script: str, user: str = "root") -> str:
        """A bash script inside a lab container, as root or another user; its stdout."""
        command = ["docker", "exec", container]
        if user != "root":
            command += ["runuser", "-u", user, "--"]
        return self.run(*command, "bash", "-c", script).stdout.strip()

    def subnet_free(self, subnet: str, network: str) -> bool:
        """Whether no Docker network but the bench's own uses the bench lab's subnet."""
        from pgcluster.lab.docker import inspect

        for name in self.run("docker", "network", "ls", "--format", "{{.Name}}").stdout.split():
            if name == network:
                continue
            info = inspect("network", name) or {}
            if subnet in [c.get("Subnet") for c in (info.get("IPAM") or {}).get("Config") or []]:
                return False
        return True


def save(path: Path, benchmark: str, figures: dict[str, Any]) -> dict[str, Any]:
    """Write the figures to bench/results/<path> and print them, stamped with the time and
    the machine; returns what was written."""
    stamped = {"benchmark": benchmark, "when": datetime.now(UTC).isoformat(timespec="seconds"),
               "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
               **figures}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(stamped, indent=2) + "\n")
    print(json.dumps(stamped, indent=2))
    return stamped
