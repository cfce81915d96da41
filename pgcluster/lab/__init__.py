"""The Docker lab: its definition (lab/<name>.toml), Docker queries, the @lab connector
(docker exec into running containers, nothing else) and the SSH stand-ins for VMs.
"""
