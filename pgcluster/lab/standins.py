"""SSH stand-ins for VMs and bare metal: lab nodes reached only over SSH, as a non-root
user with passwordless sudo, the way real servers are reached.

VMs cannot boot on every machine that runs the tests, so the suite builds a lab of systemd
containers (lab/ssh.toml, with deploys/lab.py like any lab), gives every node a login user
and a key made for the session, as a Vagrant box or cloud-init does for a VM, and from then
on reaches the nodes only through pyinfra's SSH connector and testinfra's SSH backend
(inventory/standins.py). Adding the user is the one step that goes through
`docker exec`: it plays the part of the machine's installer, not of the deploy.

    python -m pgcluster.lab.standins up     # build the stand-ins; prints how to deploy on them
    PGCLUSTER_LAB=ssh python -m pgcluster destroy --yes    # remove them
"""

from __future__ import annotations

import argparse
import os
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pgcluster import REPO_ROOT
from pgcluster.control.deploy import run_deploy
from pgcluster.errors import ConfigError
from pgcluster.lab.definition import Lab, load_lab

DEFAULT_LAB = "ssh"  # lab/ssh.toml: pgssh-* containers on 172.26.0.0/16
DEFAULT_USER = "deploy"  # like `vagrant` on a Vagrant box: not root, sudo without password
STANDIN_INVENTORY = "inventory/standins.py"

# Run as root in the container, with the user name as $1 and the public key on stdin.
# Idempotent: a re-run only rewrites the same key.
_ADD_LOGIN = r"""
set -eu
user="$1"
id -u "$user" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash "$user"
printf '%s ALL=(ALL) NOPASSWD:ALL\n' "$user" > "/etc/sudoers.d/90-pgcluster-$user"
chmod 0440 "/etc/sudoers.d/90-pgcluster-$user"
home=$(getent passwd "$user" | cut -d: -f6)
install -d -m 0700 -o "$user" -g "$user" "$home/.ssh"
cat > "$home/.ssh/authorized_keys"
chown "$user:$user" "$home/.ssh/authorized_keys"
chmod 0600 "$home/.ssh/authorized_keys"
systemctl is-active --quiet ssh || systemctl start ssh
"""


@dataclass(frozen=True)
class StandIns:
    """A built stand-in lab and how to log into it."""

    lab: Lab
    user: str
    key: Path  # private key on the control machine (0600); key.pub next to it
    source: str = DEFAULT_LAB  # the lab definition it was loaded from (a name or a path)

    @property
    def env(self) -> dict[str, str]:
        """What inventory/standins.py reads to describe these hosts."""
        return {"PGCLUSTER_SSH_LAB": self.source, "PGCLUSTER_SSH_KEY": str(self.key),
                "PGCLUSTER_SSH_USER": self.user}


def make_key(path: Path) -> Path:
    """An ed25519 key pair at path (0600) and path.pub, made once and reused."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = Ed25519PrivateKey.generate()
        private = key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.OpenSSH,
                                    serialization.NoEncryption())
        public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                               serialization.PublicFormat.OpenSSH)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(private)
        Path(f"{path}.pub").write_bytes(public + b" pgcluster-standin\n")
    return path


def add_login(lab: Lab, user: str, public_key: str) -> None:
    """Create the sudo user on every node (and the drill host) and authorise the key
    (through docker exec)."""
    for node in lab.database_machines:
        result = subprocess.run(["docker", "exec", "-i", node.name, "sh", "-c", _ADD_LOGIN,
                                 "sh", user], input=public_key, capture_output=True, text=True,
                                check=False)
        if result.returncode:
            raise ConfigError(f"cannot add the login {user} on {node.name}: "
                              f"{result.stderr.strip() or result.stdout.strip()}")


def wait_for_ssh(address: str, user: str, key: Path, timeout: float = 60) -> None:
    """Until `user` logs in with `key` and runs sudo without a password."""
    pkey = paramiko.Ed25519Key.from_private_key_file(str(key))
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        client = paramiko.SSHClient()
        # Stand-ins make new host keys at every boot; nothing is remembered about them.
        client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        try:
            client.connect(address, username=user, pkey=pkey, timeout=5, banner_timeout=5,
                           auth_timeout=5, allow_agent=False, look_for_keys=False)
            _, stdout, stderr = client.exec_command("sudo -n true", timeout=10)
            if stdout.channel.recv_exit_status() == 0:
                return
            last = stderr.read().decode(errors="replace").strip()
        except (paramiko.SSHException, OSError) as exc:
            last = exc
        finally:
            client.close()
        time.sleep(0.5)
    raise ConfigError(f"{user}@{address} is not reachable over SSH with sudo after "
                      f"{timeout:.0f}s: {last}")


def prepare(lab: Lab, key: Path, user: str = DEFAULT_USER, source: str | None = None
            ) -> StandIns:
    """Give the (running) lab's nodes the login `user` with `key`, and wait for SSH."""
    make_key(key)
    add_login(lab, user, Path(f"{key}.pub").read_text())
    for node in lab.database_machines:
        wait_for_ssh(node.address, user, key)
    return StandIns(lab, user, key, source or lab.name)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pgcluster.lab.standins", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["up"])
    parser.add_argument("--lab", default=DEFAULT_LAB, help="lab definition (default: ssh)")
    parser.add_argument("--user", default=DEFAULT_USER, help="login user (default: deploy)")
    args = parser.parse_args(argv)
    built = run_deploy("@local", "deploys/lab.py", env={"PGCLUSTER_LAB": args.lab})
    if not built.ok:
        print(f"building the stand-ins failed: see {built.log}")
        return 1
    lab = load_lab(args.lab)
    standins = prepare(lab, REPO_ROOT / "secrets" / f"{lab.name}-standins" / "id_ed25519",
                       args.user, args.lab)
    exports = " ".join(f"{k}={v}" for k, v in standins.env.items())
    print(f"\nStand-ins up: {', '.join(f'{n.name} ({n.address})' for n in lab.database_machines)}")
    print(f"Deploy over SSH:\n  {exports} PGCLUSTER_ADMIN_PASSWORD=... "
          f"PGCLUSTER_REPLICATION_PASSWORD=... PGCLUSTER_REWIND_PASSWORD=... "
          f"PGCLUSTER_APP_PASSWORD=... \\\n"
          f"    pyinfra -y {STANDIN_INVENTORY} "
          "deploys/cluster.py")
    print(f"Remove them: PGCLUSTER_LAB={args.lab} python -m pgcluster destroy --yes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
