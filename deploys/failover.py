"""Fail over: promote the standby when the primary is lost; re-point the other replicas.

    pyinfra -y inventory/docker.py deploys/failover.py [--data failover_target=NODE]
                                                       [--data force=yes]

Refuses when the primary still accepts writes (force=yes stops it first). Never promotes
the read-only replica. `python -m pgcluster failover` asks first, then runs this.
"""

from pgcluster.steps import ha, live

if live.database_node():  # never an etcd-only host (the `etcd` group's)
    ha.failover(ha.plan_failover())
