"""On the live primary: create the data directory once, start it, and make the roles,
database, schema, sample data and one replication slot per replica.

Every step is planned on every host (and is a no-op off the primary), so that replicas'
later steps are ordered after these; see operations.only_if.
"""

from __future__ import annotations

from io import StringIO

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.operations import files, systemd

from pgcluster import operations
from pgcluster.layout import Layout
from pgcluster.operations import only_if
from pgcluster.render import context, render
from pgcluster.topology import Topology

SEED_SQL = "/etc/pgcluster/seed.sql"
SEED_TABLES = ["usuarios", "logs_replicacion"]


@deploy("Initialise the primary")
def initialise(topology: Topology) -> None:
    here = topology.is_primary(host.name)
    data = host.data.dict()
    layout = Layout.from_data(data)
    port = int(data["postgresql_port"])

    only_if(
        here, operations.initdb,
        name="Create the data directory (initdb) if there is none",
        layout=layout,
        encoding=data["initdb_encoding"],
        locale=data["initdb_locale"],
        checksums=bool(data["data_checksums"]),
        port=port,
    )
    only_if(
        here, systemd.service,
        name=f"Start and enable {layout.service}",
        service=layout.service,
        running=True,
        enabled=True,
    )
    only_if(
        here, operations.role,
        name=f"Role {data['replication_user']} (REPLICATION)",
        role=data["replication_user"],
        password=data["replication_password"],
        replication=True,
        port=port,
    )
    only_if(
        here, operations.role,
        name=f"Role {data['admin_user']} (SUPERUSER)",
        role=data["admin_user"],
        password=data["admin_password"],
        superuser=True,
        port=port,
    )
    only_if(
        here, operations.database,
        name=f"Database {data['database_name']}",
        database=data["database_name"],
        owner=data["admin_user"],
        encoding=data["initdb_encoding"],
        port=port,
    )
    only_if(
        here, files.directory,
        name="pgcluster configuration directory",
        path="/etc/pgcluster",
        mode="755",
    )
    only_if(
        here, files.put,
        name="Seed SQL (schema and sample data)",
        src=StringIO(render("sql/seed.sql.j2", context(data, topology.primary, topology.cluster))),
        dest=SEED_SQL,
        user="postgres",
        group="postgres",
        mode="640",
    )
    only_if(
        here, operations.seed,
        name=f"Seed schema {data['database_schema']} and its sample data (once)",
        sql_file=SEED_SQL,
        database=data["database_name"],
        schema=data["database_schema"],
        tables=SEED_TABLES,
        port=port,
    )
    for replica in topology.replicas:
        only_if(
            here, operations.replication_slot,
            name=f"Replication slot {replica.slot} for {replica.name}",
            slot=replica.slot,
            port=port,
        )
