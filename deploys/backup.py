"""Take a backup now, on the node that is the primary right now.

    pyinfra -y inventory/docker.py deploys/backup.py                          # a full backup
    pyinfra -y inventory/docker.py deploys/backup.py --data backup_kind=incr  # or verify, retention
    pyinfra -y inventory/docker.py deploys/backup.py --data backup_kind=verify \
        --data backup_name=20260131T020000Z

PGCLUSTER_BACKUP_KIND and PGCLUSTER_BACKUP_NAME do the same as --data. The scripts are the
ones cron runs (backup-full, backup-incr, backup-verify, backup-retention).
"""

from pgcluster.steps import backups, live

if live.database_node():  # an etcd-only host (the `etcd` group's) holds no backup
    topology = live.topology()
    backups.now(topology, *backups.requested_kind())
