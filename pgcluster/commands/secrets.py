"""`pgcluster secrets`: where an inventory's passwords and TLS files live; make them once."""

from __future__ import annotations

import argparse
from pathlib import Path

from pgcluster.control import secrets


def _inventory_name(args: argparse.Namespace) -> str:
    return Path(args.inventory).stem


def cmd_secrets_init(args: argparse.Namespace) -> int:
    """Generate a random password for every one the inventory's secrets file lacks (never
    replacing one it has), into secrets/<inventory>.env, mode 0600. The passwords are not
    printed: the deploy reads the file; read it yourself when you need one."""
    path = secrets.secrets_file(_inventory_name(args))
    added = secrets.generate(path, secrets.SECRET_KEYS)
    if added:
        print(f"{secrets.shown(path)}: generated {', '.join(added)} (mode 0600)")
    else:
        print(f"{secrets.shown(path)}: every password is already there; nothing changed")
    print("Environment variables (PGCLUSTER_..._PASSWORD) still win over this file.")
    return 0


def cmd_secrets_where(args: argparse.Namespace) -> int:
    """Where the inventory's secrets file and TLS files are on this machine."""
    name = _inventory_name(args)
    path = secrets.secrets_file(name)
    print(f"passwords: {secrets.shown(path)}" + ("" if path.is_file() else " (absent)"))
    tls = secrets.inventory_dir("tls", inventory=name)
    print(f"TLS:       {secrets.shown(tls)}/ (ca.crt: the CA clients trust)")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("secrets", help="the inventory's passwords and TLS files",
                            description=__doc__)
    actions = parser.add_subparsers(dest="secrets_command", required=True, metavar="ACTION")
    init = actions.add_parser("init", help="generate missing passwords once (0600 file)",
                              description=cmd_secrets_init.__doc__)
    init.set_defaults(func=cmd_secrets_init)
    where = actions.add_parser("where", help="where the passwords and TLS files are",
                               description=cmd_secrets_where.__doc__)
    where.set_defaults(func=cmd_secrets_where)
