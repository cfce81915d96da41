"""Overrides for the Docker lab (inventory/docker.py): lab-only conveniences.

The seed's passwords are the documented lab defaults. They apply to this inventory only;
every other inventory must supply its own (see group_data/all.py). Environment variables
still win, so the lab can run with real secrets too.
"""

from os import environ

admin_password = environ.get("PGCLUSTER_ADMIN_PASSWORD", "admin123")  # lab default (seed)
replication_password = environ.get("PGCLUSTER_REPLICATION_PASSWORD", "replica123")  # lab default
rewind_password = environ.get("PGCLUSTER_REWIND_PASSWORD", "rewind123")  # lab default

shared_buffers = "64MB"  # three nodes share one laptop
max_slot_wal_keep_size = "1GB"  # the lab's disk is the laptop's disk
