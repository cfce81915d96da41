"""SCRAM-SHA-256 password verifiers, computed and checked on the control machine.

Roles get a verifier (`ALTER ROLE ... PASSWORD 'SCRAM-SHA-256$...'`), never the plain
password, so the password does not travel to the node or into its logs; and an existing
verifier is checked here against the wanted password, so a re-run changes nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

from scramp.core import saslprep
from scramp.utils import ScramException

ITERATIONS = 4096  # PostgreSQL's scram_iterations default


def _normalise(password: str) -> bytes:
    """The bytes PostgreSQL hashes: the password after SASLprep (RFC 4013: non-ASCII spaces
    become spaces, characters "mapped to nothing" such as the soft hyphen go, NFKC), or, as
    PostgreSQL does when SASLprep refuses a password (prohibited characters), the password
    as it is."""
    try:
        return saslprep(password).encode()
    except ScramException:
        return password.encode()


def _keys(password: str, salt: bytes, iterations: int) -> tuple[bytes, bytes]:
    salted = hashlib.pbkdf2_hmac("sha256", _normalise(password), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    return stored_key, server_key


def verifier(password: str, salt: bytes | None = None, iterations: int = ITERATIONS) -> str:
    salt = salt if salt is not None else os.urandom(16)
    stored_key, server_key = _keys(password, salt, iterations)
    b64 = base64.b64encode
    return (
        f"SCRAM-SHA-256${iterations}:{b64(salt).decode()}"
        f"${b64(stored_key).decode()}:{b64(server_key).decode()}"
    )


def matches(stored: str | None, password: str) -> bool:
    """True when `stored` (pg_authid.rolpassword) is a SCRAM verifier of `password`."""
    if not stored or not stored.startswith("SCRAM-SHA-256$"):
        return False
    try:
        _, rest = stored.split("$", 1)
        iter_salt, keys = rest.split("$", 1)
        iterations, salt = iter_salt.split(":", 1)
        stored_key, server_key = keys.split(":", 1)
        want_stored, want_server = _keys(password, base64.b64decode(salt), int(iterations))
    except ValueError:
        return False
    return hmac.compare_digest(base64.b64decode(stored_key), want_stored) and hmac.compare_digest(
        base64.b64decode(server_key), want_server
    )
