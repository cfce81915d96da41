"""Build, or converge, the streaming-replication cluster.

    pyinfra -y inventory/docker.py deploys/cluster.py

Validates the inventory, reads who is primary from the nodes, installs PostgreSQL 15,
renders its configuration, initialises the primary once and clones each replica only when
it is not already streaming from that primary, then installs the backup scripts, their
cron schedule and the backup registry. A second run changes nothing.
"""

from pgcluster.steps import backups, configure, install, live, primary, replicas

topology = live.topology(operation="cluster deploy")
install.postgresql()
configure.postgresql(topology)
primary.initialise(topology)
replicas.clone(topology)
replicas.wait(topology)
backups.schedule(topology)
