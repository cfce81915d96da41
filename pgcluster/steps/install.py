"""Install PostgreSQL from Debian's packages, without Debian's default cluster."""

from __future__ import annotations

from io import StringIO

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.deb import DebPackages
from pyinfra.operations import apt, files

from pgcluster.layout import Layout

CREATECLUSTER_CONF = """\
# Managed by pgcluster. The package must not create and start a default cluster:
# pgcluster creates the primary's data directory itself and clones the replicas'.
create_main_cluster = false
"""


@deploy("Install PostgreSQL")
def postgresql() -> None:
    layout = Layout.from_data(host.data.dict())
    packages = [*layout.packages, "cron"]

    files.put(
        name="Keep Debian from creating a default cluster",
        src=StringIO(CREATECLUSTER_CONF),
        dest="/etc/postgresql-common/createcluster.conf",
        mode="644",
    )
    installed = host.get_fact(DebPackages)
    if any(package not in installed for package in packages):
        # Only when something is missing: a re-run must not count an index refresh.
        apt.update(name="Refresh the package index")
    apt.packages(name="Install PostgreSQL packages", packages=packages, no_recommends=True)
    files.directory(
        name="postgres owns its home (the data volume in the lab)",
        path="/var/lib/postgresql",
        user="postgres",
        group="postgres",
        mode="755",
    )
    files.directory(
        name="Version directory for the data directory",
        path=f"/var/lib/postgresql/{layout.version}",
        user="postgres",
        group="postgres",
        mode="755",
    )
