"""pyinfra operations: each reads facts when it runs and yields the commands that make a
node right, or nothing when it already is.

postgres: roles, database, seed, slots, clones, configuration reloads; promotion: fence,
promote, follow, rejoin; files: contents and directories checked a group at a time; jobs:
backup and restore scripts run now; lab: the Docker lab's images, network and containers;
conditional: a step planned on every host that acts only where it applies.
"""
