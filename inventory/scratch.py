"""The Docker lab's scratch node: a one-node inventory to restore backups onto, outside the
cluster (`python -m pgcluster restore --scratch` uses it; deploys/scratch.py creates it).

It is a lab node on the lab's network with the lab's backups volume at /backups, so it
restores from the same repository, and it takes the lab's group data (group_data/docker.py).
It never archives (archive_mode = off): a restored copy must not write its own timeline
into the cluster's WAL archive.
"""

import os

from pgcluster.control.preflight import check_inventory
from pgcluster.lab.definition import load_lab
from pgcluster.lab.docker import require_running
from pgcluster.model.layout import Layout

_lab = load_lab()
_node = _lab.scratch

# A one-node cluster of its own: its node is that cluster's primary once restored.
primary = [
    (
        f"@lab/{_node.name}",
        # Outside the cluster: no Patroni, whatever engine the cluster runs.
        {**_lab.host_data(_node), "archive_mode": "off", "ha_engine": "manual",
         # pgBackRest's repo2 on the lab's object store, as the cluster's nodes have it.
         **({"pgbackrest_s3_endpoint": _lab.objectstore.name, "pgbackrest_s3_uri_style": "path",
             "pgbackrest_s3_ca_file": Layout(15, "main").tls_ca_file} if _lab.objectstore else {})},
    )
]
docker = primary  # the lab's group data (group_data/docker.py) applies to this node too

# Part of the lab: the lab inventory's passwords and CA (secrets/docker*), so clients that
# trust the lab trust its scratch node too.
check_inventory(globals(), __file__, secrets_of=os.path.join(os.path.dirname(__file__),
                                                             "docker.py"))
if os.environ.get("PGCLUSTER_ALLOW_DOWN") != "1":
    require_running(_lab, (_node,), build="pyinfra -y @local deploys/scratch.py")
