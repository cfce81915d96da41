"""Build the Docker lab on this machine (images, network, volumes, three systemd nodes).

    pyinfra -y @local deploys/lab.py                      # the seed's lab (lab/seed.toml)
    PGCLUSTER_LAB=test pyinfra -y @local deploys/lab.py   # another lab definition

Existing containers and volumes are left untouched; stopped containers are started.
"""

from pgcluster.steps import lab

lab.build()
