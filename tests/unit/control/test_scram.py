"""SCRAM-SHA-256 verifiers computed and checked on the control machine, as PostgreSQL does."""

from __future__ import annotations

import base64

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
