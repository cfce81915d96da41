"""On the live primary: create the data directory once, start it, and make the roles,
database, schema, sample data, the application role's rights and one replication slot per
replica.

Every step is planned on every host (and is a no-op off the primary), so that replicas'
later steps are ordered after these; see pgcluster.operations.conditional.only_if.
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.operations import systemd

from pgcluster.control.templating import render_template, template_context
from pgcluster.model.layout import Layout
from pgcluster.model.topology import Topology, refuse_empty_primary
from pgcluster.operations import files as content
from pgcluster.operations import postgres as operations
from pgcluster.operations import promotion
from pgcluster.operations.conditional import only_if
from pgcluster.operations.files import sql_file

# What pg_rewind needs from a source server when it is not a superuser (PostgreSQL docs).
REWIND_FUNCTIONS = [
    "pg_catalog.pg_ls_dir(text, boolean, boolean)",
    "pg_catalog.pg_stat_file(text, boolean)",
    "pg_catalog.pg_read_binary_file(text)",
    "pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean)",
]
SEED_SQL = "/etc/pgcluster/seed.sql"
PRIVILEGES_SQL = "/etc/pgcluster/privileges.sql"
SEED_TABLES = ["usuarios", "logs_replicacion"]


@deploy("Initialise the primary")
def initialise(topology: Topology, engine: str = "manual") -> None:
    """Under Patroni, Patroni runs initdb and starts the server (steps.patroni), and keeps
    the slots and synchronous replication itself: the rest is the same."""
    here = topology.is_primary(host.name)
    manual = here and engine == "manual"
    data = host.data.dict()
    layout = Layout.from_data(data)
    port = int(data["postgresql_port"])
    refuse_empty_primary(topology)

    only_if(
        manual, operations.initdb,
        name="Create the data directory (initdb) if there is none",
        layout=layout,
        encoding=data["initdb_encoding"],
        locale=data["initdb_locale"],
        checksums=bool(data["data_checksums"]),
        port=port,
    )
    only_if(
        manual, systemd.service,
        name=f"Start and enable {layout.service}",
        service=layout.service,
        running=True,
        enabled=True,
    )
    roles = (
        ("replication", "(REPLICATION)", {"replication": True}),
        ("admin", "(SUPERUSER)", {"superuser": True}),
        ("rewind", "(for pg_rewind)", {}),
        ("app", "(the application's: no superuser, no replication)", {}),
    )
    for kind, what, rights in roles:
        only_if(
            here, operations.role,
            name=f"Role {data[f'{kind}_user']} {what}",
            role=data[f"{kind}_user"],
            password=data[f"{kind}_password"],
            port=port,
            **rights,
        )
    only_if(
        here, operations.grant_execute,
        name=f"{data['rewind_user']} may read files as pg_rewind needs",
        role=data["rewind_user"],
        functions=REWIND_FUNCTIONS,
        port=port,
    )
    only_if(
        here, operations.grant_role,
        name=f"{data['rewind_user']} may CHECKPOINT a just-promoted primary (pg_checkpoint)",
        role=data["rewind_user"],
        member_of="pg_checkpoint",
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
    # On every node, identical: any node may be the primary that seeds a new database.
    seed_ctx = template_context(data, topology.cluster.inventory_primary, topology.cluster)
    content.contents(
        name="Seed and privileges SQL (schema, sample data, the application role's rights)",
        files=[sql_file(SEED_SQL, render_template("sql/seed.sql.j2", seed_ctx)),
               sql_file(PRIVILEGES_SQL, render_template("sql/privileges.sql.j2", seed_ctx))],
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
    only_if(
        here, operations.privileges,
        name=f"{data['app_user']} may read and write {data['database_schema']}, nothing more",
        sql_file=PRIVILEGES_SQL,
        role=data["app_user"],
        database=data["database_name"],
        schema=data["database_schema"],
        owner=data["admin_user"],
        port=port,
    )
    only_if(
        manual, promotion.synchronous_override,
        name="Synchronous replication as configured (lift a failover's suspension)",
        followers=[r.name for r in topology.replicas],
        port=port,
    )
    # The replicas that stream from the primary: a cascade's slot is on its upstream.
    for replica in topology.downstream(topology.primary):
        only_if(
            manual, operations.replication_slot,
            name=f"Replication slot {replica.slot} for {replica.name}",
            slot=replica.slot,
            port=port,
        )
