"""pgcluster: a PostgreSQL 15 streaming-replication cluster as code, on pyinfra."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
TEMPLATES_DIR = REPO_ROOT / "templates"
GROUP_DATA_DIR = REPO_ROOT / "group_data"
LAB_DIR = REPO_ROOT / "lab"
