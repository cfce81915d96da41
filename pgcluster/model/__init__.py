"""The cluster model: pure data and decisions, no I/O.

Nodes and roles (cluster), Debian's paths (layout), who is primary from live states
(topology), what a failover, switchover or rejoin may do (failover), inventory checks
(validation), libpq connection strings (conninfo), SQL quoting (sql), WAL positions (wal),
the backup repository as data (backups), and Patroni's and etcd's configuration, checks and
output (patroni). Everything here is unit-tested without hosts.
"""
