"""CLI commands, one module per concern; each exposes register(subparsers): the lab (lab),
the operator's commands (operate), the seed's menu (menu), backups (backup), restores
(restore), drills (drill) and the secrets files (secrets)."""
