"""Sizes as people read them: the one byte formatter of the CLI's output."""

from __future__ import annotations


def human_bytes(size: int | float | str | None) -> str:
    """1536 -> '1.5 KiB'; None (unknown) -> '-'."""
    if size in (None, ""):
        return "-"
    value = float(size)  # type: ignore[arg-type]
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"
