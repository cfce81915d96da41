"""Switch over (planned, no data loss): the target becomes primary, the old primary a standby.

    pyinfra -y inventory/docker.py deploys/switchover.py --data switchover_target=NODE
                                                         [--data force=yes]

Gates on the target's replay lag and on long-running transactions (force=yes skips them),
stops the primary cleanly, waits until the target has received all of its WAL, promotes
the target and re-points every other node, the old primary included.
"""

from pgcluster.steps import ha, live

if live.database_node():  # never an etcd-only host (the `etcd` group's)
    ha.switchover(ha.plan_switchover())
