"""`pgcluster menu`: the seed's administration menu (comandos.ps1), over the same commands."""

from __future__ import annotations

import argparse

# (label, command line; NODE is asked for)
ENTRIES = [
    ("Levantar clúster completo / build and deploy the cluster", ["up"]),
    ("Ver estado del clúster / status", ["status"]),
    ("Monitoreo en tiempo real / live monitor", ["monitor"]),
    ("Ejecutar failover manual / failover", ["failover"]),
    ("Crear backup completo / full backup", ["backup", "full"]),
    ("Crear backup incremental / incremental backup", ["backup", "incr"]),
    ("Ver logs de un nodo / node logs", ["logs", "NODE"]),
    ("Conectar a un nodo (psql) / psql", ["psql", "NODE"]),
    ("Configurar replicación (reincorporar un nodo) / rejoin a node", ["rejoin", "NODE"]),
    ("Detener clúster / stop", ["stop"]),
    ("Limpiar todo / destroy the lab", ["destroy"]),
]


def cmd_menu(args: argparse.Namespace) -> int:
    """An interactive menu mirroring the seed report's, for those who prefer it."""
    from pgcluster.cli import main

    while True:
        print("\n=== pgcluster: menú de administración ===")
        for number, (label, _) in enumerate(ENTRIES, start=1):
            print(f"{number:>3}. {label}")
        print("  0. Salir / quit")
        try:
            choice = input("Opción: ").strip()
        except (EOFError, KeyboardInterrupt):
            print()
            return 0
        if choice in ("0", "q", ""):
            return 0
        if not choice.isdigit() or not 1 <= int(choice) <= len(ENTRIES):
            print(f"Opción no válida: {choice!r}")
            continue
        command = list(ENTRIES[int(choice) - 1][1])
        if "NODE" in command:
            node = input("Nodo (primary, standby, readonly o nombre): ").strip() or "primary"
            command[command.index("NODE")] = node
        code = main(["--inventory", args.inventory, *command])
        print(f"\n[{' '.join(command)}: código de salida {code}]")


def register(sub: argparse._SubParsersAction) -> None:
    menu = sub.add_parser("menu", help="interactive menu, as in the seed report",
                          description=cmd_menu.__doc__)
    menu.set_defaults(func=cmd_menu)
