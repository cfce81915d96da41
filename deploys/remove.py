"""Retire a database node: stop it for good and drop its replication slot.

    pyinfra -y inventory/docker.py deploys/remove.py --data remove_node=NODE

`python -m pgcluster remove NODE` runs this, then the cluster deploy without the node, and
says what is left: delete the node from the inventory. Its data directory is kept. The
primary, a node others cascade from, or a synchronous standby is refused.
"""

from pgcluster.steps import live, remove

if live.database_node():
    topology = live.topology(operation="remove")
    remove.retire(topology, remove.plan(topology), live.engine(topology))
