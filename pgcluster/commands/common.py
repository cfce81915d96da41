"""What the CLI's commands share: asking before a change."""

from __future__ import annotations

import sys


def confirm(question: str, assume_yes: bool) -> bool:
    """Ask before a change; --yes answers for the user. Never assumes yes without a TTY."""
    if assume_yes:
        return True
    if not sys.stdin.isatty():
        print(f"{question} -> refusing without confirmation: pass --yes", file=sys.stderr)
        return False
    return input(f"{question} [y/N] ").strip().lower() in ("y", "yes", "s", "si", "sí")
