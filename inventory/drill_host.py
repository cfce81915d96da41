"""Another inventory's `drill` host as a one-node inventory to restore backups onto, outside
the cluster (`pgcluster restore --scratch` and `pgcluster drill restore` use it whenever the
inventory has a `drill` group; docs/drills.md):

    PGCLUSTER_DRILL_INVENTORY=inventory/production.py \
        pyinfra -y inventory/drill_host.py deploys/restore.py --data restore_name=drill_...

The host keeps everything the inventory says of it (how to log in, its addresses) and the
inventory's group data (group_data/<inventory>.py), with the cluster's passwords and CA.
Like the lab's scratch node it is a one-node cluster of its own, whose node is that
cluster's primary once restored, and it never archives (archive_mode = off): a restored
copy must not write its own timeline into the cluster's WAL archive.
"""

import os
import runpy

from pgcluster.control.preflight import check_inventory, inventory_groups
from pgcluster.errors import ConfigError

_source = os.environ.get("PGCLUSTER_DRILL_INVENTORY", "")
if not _source:
    raise ConfigError("PGCLUSTER_DRILL_INVENTORY is not set: name the inventory whose `drill` "
                      "host to restore onto (pgcluster restore --scratch sets it)")
_path = os.path.abspath(_source)
if not os.path.isfile(_path):
    raise ConfigError(f"PGCLUSTER_DRILL_INVENTORY={_source}: no such inventory file")
# The inventory is read (and validated) as pyinfra reads it, and only its `drill` group kept.
_drill = inventory_groups(runpy.run_path(_path)).get("drill") or []
if len(_drill) != 1:
    raise ConfigError(f"{_source} has {len(_drill)} hosts in its `drill` group: restore drills "
                      "need exactly one")
_name, _data = _drill[0] if isinstance(_drill[0], tuple) else (_drill[0], {})

# Outside the cluster: no Patroni, whatever engine the cluster runs.
primary = [(_name, {**_data, "archive_mode": "off", "ha_engine": "manual"})]
# The inventory's group data (group_data/<its file name>.py) applies to this host too.
globals()[os.path.splitext(os.path.basename(_path))[0]] = primary

check_inventory(globals(), __file__, secrets_of=_path)
