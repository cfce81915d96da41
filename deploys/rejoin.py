"""Rejoin a node (typically a failed old primary) as a standby of the current primary.

    pyinfra -y inventory/docker.py deploys/rejoin.py --data rejoin_node=NODE
                                                     [--data allow_reclone=yes]

Re-points a standby, or resynchronises a diverged node with pg_rewind; only with
allow_reclone=yes does it fall back to a fresh base backup (the old data is kept aside).
"""

from pgcluster.steps import ha, live

if live.database_node():  # never an etcd-only host (the `etcd` group's)
    ha.rejoin(*ha.plan_rejoin())
