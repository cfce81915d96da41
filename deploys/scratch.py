"""Create the lab's scratch node, a restore target outside the cluster, if it is missing.

    pyinfra -y @local deploys/scratch.py            # then: inventory/scratch.py
    PGCLUSTER_LAB=test pyinfra -y @local deploys/scratch.py

`python -m pgcluster restore --scratch` runs this, then deploys/restore.py on it.
"""

from pgcluster.steps import lab

lab.scratch()
