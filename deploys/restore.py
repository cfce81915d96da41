"""Restore a full backup plus archived WAL onto one node.

    pyinfra -y inventory/scratch.py deploys/restore.py --data restore_time='2026-01-31 14:05:00+00'
    pyinfra -y inventory/docker.py deploys/restore.py --data restore_node=postgresql-primary \
        --data restore_force_node=postgresql-primary --data restore_lsn=0/5000060

Parameters (--data restore_<key>=..., or the environment PGCLUSTER_RESTORE_<KEY>):
backup (a full/<timestamp> name or label; default: the newest that ended before the target),
time | lsn | name (the recovery target; none: the end of the archive), timeline (latest,
current or an ID; default latest), action (promote or pause; default promote), node (which
node; not needed for a one-node inventory), force_node (the same node, named again to allow
stopping its running server). PostgreSQL and the node's configuration are converged first
(no change on an up-to-date node; a fresh scratch node gets them installed).
"""

from pyinfra import host

from pgcluster.steps import backups, configure, install, live, restore

if live.database_node():  # never an etcd-only host (the `etcd` group's)
    topology = live.topology(operation="restore")
    engine = live.engine(topology)
    request = restore.request_from(host.data.dict())
    restore.engine_for(topology, request)  # a pgBackRest backup needs pgBackRest here too
    restore.check_patroni(topology, engine)
    install.postgresql(topology.backup_engine)
    configure.postgresql(topology, engine)
    backups.scripts(topology)
    restore.restore(topology, request, engine)
