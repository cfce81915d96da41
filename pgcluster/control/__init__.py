"""Services of the control machine (where pyinfra runs): TLS material, secrets, SCRAM
verifiers, template rendering, inventory preflight, sessions reaching the hosts from the
CLI, the status report, running deploys, and the drills: the continuous writer (writer),
running a failover, switchover or restore drill (drill), the restore drill's table
fingerprints at a restore point (compare) and the drills' reports (drill_report).
"""
