"""The cluster model: pure data and decisions, no I/O.

Nodes and roles (cluster), Debian's paths (layout), who is primary from live states
(topology), what a failover, switchover or rejoin may do (failover), the types of every
setting (settings) and the checks on an inventory (validation), libpq connection strings
(conninfo), SQL quoting (sql), WAL positions (wal), the backup repository as data
(backups), the operation lock's record (lock), sizes as people read them (units),
Patroni's and etcd's configuration, checks and output (patroni), and what a drill measured
and whether it met its goals (drill). Everything here is unit-tested without hosts.
"""
