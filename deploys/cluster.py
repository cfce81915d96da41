"""Build, or converge, the streaming-replication cluster.

    pyinfra -y inventory/docker.py deploys/cluster.py

Validates the inventory, reads who is primary from the nodes and which engine runs it,
installs PostgreSQL 15, renders its configuration, initialises the primary once and clones
each replica only when it is not already streaming from that primary (manual engine), or
runs etcd and Patroni, which do it (ha_engine = "patroni": `make cluster HA=patroni`;
etcd on the hosts of an `etcd` inventory group when there is one), and with a `proxy`
group the endpoints: PgBouncer and HAProxy's role checks on the nodes, HAProxy on the proxies,
then installs the backup scripts, their cron schedule and the backup registry (with
backup_engine = "pgbackrest", `make cluster BACKUP=pgbackrest`, pgBackRest and its stanza,
and on an `objectstore` group's host SeaweedFS's S3 for repo2); with a
`monitor` group the exporters on the nodes and Prometheus and Alertmanager on the monitors;
under Patroni a setting that needs a restart is applied last, rolling (replicas, a
switchover, the old leader). A second run changes nothing.
"""

from pgcluster.steps import (
    backups,
    configure,
    endpoints,
    install,
    live,
    monitoring,
    objectstore,
    replication,
)

topology = live.topology(operation="cluster deploy")
engine = live.engine(topology)
objectstore.store(topology)  # before the nodes' pgBackRest stanza, which needs its bucket
database = live.database_node()  # not a service host (of the `etcd`, `proxy`, `monitor` groups)
if database:
    install.postgresql(topology.backup_engine)
    configure.postgresql(topology, engine)
    endpoints.role_checks(topology, engine)
replication.build(topology, engine)
if database:
    endpoints.pgbouncer(topology)
    backups.schedule(topology)
    monitoring.exporters(topology, engine)
    replication.finish(topology, engine)
endpoints.haproxy(topology)
monitoring.monitor(topology, engine)
