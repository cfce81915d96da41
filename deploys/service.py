"""Stop or start PostgreSQL on the cluster or some nodes: stop the primary first, start
the replicas first (the primary's start guard asks them).

    pyinfra -y inventory/docker.py deploys/service.py --data service_action=stop|start
                                                      [--data service_nodes=NODE,NODE]
                                                      [--data start_as_primary=yes]
"""

from pyinfra import host

from pgcluster.steps import ha, live

action = str(host.data.get("service_action"))
if live.database_node():  # an etcd-only host (the `etcd` group's) keeps its etcd running
    # Stopping a node is the way out of a split brain, so it is the one change allowed then.
    topology = live.topology(strict=action != "stop", operation=f"service {action}")
    ha.service(topology, action, ha.nodes_from_data(topology))
