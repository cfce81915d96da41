"""pyinfra facts: what a node (or the control machine's Docker) is right now.

A fact is one shell command and a parser. Facts never fail a host: a stopped server or a
missing file is an answer, not an error.
"""
