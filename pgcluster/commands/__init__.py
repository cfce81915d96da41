"""CLI commands, one module per concern; each exposes register(subparsers)."""
