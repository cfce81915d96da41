"""Overrides for the Docker lab (inventory/docker.py): lab-only conveniences.

The passwords below are the lab's documented defaults (the seed's, and four of
pgcluster's own). They are public, so they apply to this inventory only: validation refuses
them for every other one (allow_lab_default_passwords). The environment, or
secrets/docker.env, still wins, so the lab can run with real secrets too.
"""

from pgcluster.control.secrets import secret

admin_password = secret("admin_password", default="admin123")  # lab default (seed)
replication_password = secret("replication_password", default="replica123")  # lab default
rewind_password = secret("rewind_password", default="rewind123")  # lab default
app_password = secret("app_password", default="app123")  # lab default
patroni_rest_password = secret("patroni_rest_password", default="patroni123")  # lab default
monitor_password = secret("monitor_password", default="monitor123")  # lab default
# The lab's object store (postgresql-objectstore) and pgBackRest's repo2 passphrase
pgbackrest_s3_key = secret("pgbackrest_s3_key", default="pgcluster")  # lab default
pgbackrest_s3_key_secret = secret("pgbackrest_s3_key_secret", default="objectstore123")  # lab
pgbackrest_cipher_pass = secret("pgbackrest_cipher_pass", default="cipher123")  # lab default
allow_lab_default_passwords = True  # the values above are accepted here, and only here

shared_buffers = "64MB"  # three nodes share one laptop
max_slot_wal_keep_size = "1GB"  # the lab's disk is the laptop's disk
