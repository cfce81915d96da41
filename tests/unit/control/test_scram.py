"""SCRAM-SHA-256 verifiers computed and checked on the control machine, as PostgreSQL does."""

from __future__ import annotations

import base64

import pytest

from pgcluster.control import scram


def test_verifier_round_trip() -> None:
    stored = scram.verifier("admin123")
    assert stored.startswith("SCRAM-SHA-256$4096:")
    assert scram.matches(stored, "admin123")
    assert not scram.matches(stored, "admin1234")


# Verifiers PostgreSQL 15 itself computed (CREATE ROLE ... PASSWORD '...').
POSTGRES_VECTORS = {
    "admin123": "SCRAM-SHA-256$4096:96gpJyIPVC7kbMrJ3YZZiA==$Owr5gHfUk/xZ6bVsJSLK8BDUhRdJkTPHni"
    "ORx6bRyM0=:9Nx+8KNOI5uVyA8ffo8ikfPvVUpSHqCdDgzKfGEAGBk=",
    "contraseña-ñ": "SCRAM-SHA-256$4096:K+u5qmHWdw1/HQdrLPi+aQ==$CpjTO5AU0Z2dr3YlXsk/288EhsnGfuEl"
    "DdgxxpSoiAw=:+8DlxLiyXG8oYqc0P6abZFCtZnqP01+xhHBpQsrsURQ=",
}


def test_verifiers_computed_by_postgresql_match() -> None:
    for password, stored in POSTGRES_VECTORS.items():
        assert scram.matches(stored, password), password
        assert not scram.matches(stored, password + "x")


def test_same_salt_gives_postgresql_s_verifier() -> None:
    stored = POSTGRES_VECTORS["admin123"]
    salt = base64.b64decode(stored.split("$")[1].split(":")[1])
    assert scram.verifier("admin123", salt=salt) == stored


def test_fresh_salt_each_time() -> None:
    assert scram.verifier("x") != scram.verifier("x")


def test_non_scram_values_never_match() -> None:
    for stored in (None, "", "md5abcdef", "SCRAM-SHA-256$garbage"):
        assert not scram.matches(stored, "admin123")


def libpq_verifier(password: str) -> str:
    """The verifier libpq computes (PQencryptPasswordConn): PostgreSQL's own SCRAM and
    SASLprep code (src/common), no server needed when the algorithm is named."""
    from psycopg import pq

    conn = pq.PGconn.connect_start(b"host=/nonexistent-socket-directory")
    try:
        return conn.encrypt_password(password.encode(), b"app", b"scram-sha-256").decode()
    finally:
        conn.finish()


@pytest.mark.parametrize("password", [
    "pass\u00adword",  # soft hyphen: SASLprep maps it to nothing (NFKC alone keeps it)
    "pass\u00a0word",  # no-break space: mapped to a space
    "\ufb01le-\uff21",  # ligature and full-width letter: NFKC
    "cafe\u0301",  # combining accent: composed
    "bell\u0007char",  # a prohibited control character: PostgreSQL hashes it as it is
    "contraseña-ñ",
])
def test_verifiers_equal_postgresqls_for_passwords_saslprep_changes(password: str) -> None:
    theirs = libpq_verifier(password)
    salt = base64.b64decode(theirs.split("$")[1].split(":")[1])
    assert scram.verifier(password, salt=salt) == theirs
    assert scram.matches(theirs, password)
