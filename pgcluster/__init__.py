"""pgcluster: a PostgreSQL 15 streaming-replication cluster as code, on pyinfra."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
TEMPLATES_DIR = REPO_ROOT / "templates"
NODE_DIR = REPO_ROOT / "pgcluster" / "node"  # the node scripts, installed as they are
GROUP_DATA_DIR = REPO_ROOT / "group_data"
LAB_DIR = REPO_ROOT / "lab"
