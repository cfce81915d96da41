"""Install PostgreSQL from Debian's packages, without Debian's default cluster."""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.deb import DebPackages
from pyinfra.operations import apt

from pgcluster.model.layout import Layout
from pgcluster.operations import files as content
from pgcluster.operations.files import Content, Directory

CREATECLUSTER_CONF = """\
# Managed by pgcluster. The package must not create and start a default cluster:
# pgcluster creates the primary's data directory itself and clones the replicas'.
create_main_cluster = false
"""


@deploy("Install PostgreSQL")
def postgresql(backup_engine: str = "pg_basebackup") -> None:
    layout = Layout.from_data(host.data.dict())
    packages = [*layout.packages, "cron"]
    if backup_engine == "pgbackrest":
        packages += ["pgbackrest", "jq"]  # jq: the jobs read `pgbackrest info --output=json`

    content.contents(
        name="Keep Debian from creating a default cluster",
        files=[Content("/etc/postgresql-common/createcluster.conf", CREATECLUSTER_CONF)],
    )
    installed = host.get_fact(DebPackages)
    if any(package not in installed for package in packages):
        # Only when something is missing: a re-run must not count an index refresh.
        apt.update(name="Refresh the package index")
    apt.packages(name="Install PostgreSQL packages", packages=packages, no_recommends=True)
    # postgres owns its home (the data volume in the lab) and the data directory's parent.
    content.directories(
        name="postgres owns its home and the version directory for the data directory",
        dirs=[Directory(path, "755", "postgres", "postgres")
              for path in ("/var/lib/postgresql", f"/var/lib/postgresql/{layout.version}")],
    )
