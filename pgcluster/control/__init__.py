"""Services of the control machine (where pyinfra runs): TLS material, secrets, SCRAM
verifiers, template rendering, inventory preflight, sessions reaching the hosts from the
CLI, the status report, running deploys, and the continuous writer used by drills.
"""
