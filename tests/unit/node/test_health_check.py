"""health-check, the manual engine's answer to HAProxy's checks on Patroni's REST API paths:
its parsing, its decisions on a faked psql, and the HTTPS service for real on 127.0.0.1."""

from __future__ import annotations

import http.client
import importlib.util
import json
import ssl
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from pgcluster import NODE_DIR
from pgcluster.control.tls import cert_pem, issue, key_pem, make_ca

SCRIPT = NODE_DIR / "health-check.py"


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("health_check", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


hc = load()

PRIMARY = "f||0/5000000||\n"
STREAMING = "t|streaming|0/3000000|172.20.0.10|5432\n"
NOT_STREAMING = "t||0/3000000||\n"
UPSTREAM_1000_AHEAD = "7300000000000000001|1|0/30003E8|\n"  # 0x3E8 = 1000


def fake_psql(local: str | None, upstream: str | None = UPSTREAM_1000_AHEAD,
              calls: list[list[str]] | None = None) -> Callable[[list[str]], str]:
    """psql answering `local` to the status query, `upstream` to IDENTIFY_SYSTEM; None
    fails like psql does when it cannot connect."""
    def psql(args: list[str]) -> str:
        if calls is not None:
            calls.append(args)
        answer = upstream if "IDENTIFY_SYSTEM" in args else local
        if answer is None:
            raise subprocess.CalledProcessError(2, ["psql", *args], "", "connection refused")
        return answer
    return psql


CONFIG = {"PG_PORT": "5433", "SOCKET_DIR": "/run/pg", "REPLICATION_USER": "replicator",
          "SSL_CONNINFO": "sslmode=verify-full sslrootcert=/tls/ca.crt", "CHECK_TIMEOUT": "3"}


def checker(local: str | None, upstream: str | None = UPSTREAM_1000_AHEAD,
            calls: list[list[str]] | None = None) -> Any:  # a hc.Checker
    return hc.Checker(CONFIG, fake_psql(local, upstream, calls))


# ------------------------------------------------------------------------------ parsing


def test_lsns_are_64_bit_positions_and_their_difference_never_negative() -> None:
    assert hc.lsn_to_int("0/3000060") == 0x3000060
    assert hc.lsn_to_int("1/0") == 1 << 32
    assert hc.lsn_to_int("A/FF") == (10 << 32) + 255
    assert hc.lsn_diff("1/10", "0/FFFFFFF0") == 0x20
    assert hc.lsn_diff("0/100", "0/200") == 0
    for bad in ("", "3000060", "0/", "x/1", "0/1/2"):
        with pytest.raises(ValueError):
            hc.lsn_to_int(bad)


@pytest.mark.parametrize("text, size", [
    ("100", 100), ("100B", 100), ("500kB", 500 * 1024), ("16MB", 16777216),
    ("1GB", 1 << 30), ("2TB", 2 << 40), (" 16 MB ", 16 << 20), ("0", 0),
])
def test_sizes_are_bytes_or_postgresql_units(text: str, size: int) -> None:
    assert hc.parse_size(text) == size


@pytest.mark.parametrize("text", ["", "abc", "16mb", "16 KB", "-1", "1.5MB", "16MiB"])
def test_bad_sizes_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        hc.parse_size(text)


def test_psql_rows_are_parsed() -> None:
    status = hc.parse_status(STREAMING)
    assert status == hc.Status(True, "streaming", "0/3000000", "172.20.0.10", 5432)
    assert hc.parse_status(PRIMARY) == hc.Status(False, None, "0/5000000", None, None)
    assert hc.parse_identify_system(UPSTREAM_1000_AHEAD) == "0/30003E8"
    with pytest.raises(ValueError):
        hc.parse_status("psql: error\n")
    with pytest.raises(ValueError):
        hc.parse_identify_system("7300|1|nonsense|\n")


def test_the_env_file_is_read_like_bash() -> None:
    text = ("# settings\n\nLISTEN_ADDRESS=172.20.0.10\nLISTEN_PORT='8008'\n"
            "SSL_CONNINFO='sslmode=verify-full sslrootcert=/etc/ca.crt'\n"
            "QUOTE='it'\\''s'\n")
    assert hc.parse_env(text) == {
        "LISTEN_ADDRESS": "172.20.0.10", "LISTEN_PORT": "8008",
        "SSL_CONNINFO": "sslmode=verify-full sslrootcert=/etc/ca.crt", "QUOTE": "it's"}
    with pytest.raises(ValueError, match="line 1"):
        hc.parse_env("not a setting\n")


# ---------------------------------------------------------------------------- decisions


def test_a_primary_is_primary_read_write_and_read_only() -> None:
    check = checker(PRIMARY)
    for path in ("/primary", "/master", "/read-write", "/leader", "/health", "/read-only",
                 "/read-only?lag=0", "/liveness"):
        assert check.handle(path)[0] == 200, path
    assert check.handle("/replica")[0] == 503
    assert check.handle("/primary") == (200, {"role": "primary", "state": "running",
                                              "wal_receiver": None, "lag": 0})


def test_a_streaming_replica_is_checked_against_its_upstreams_position() -> None:
    calls: list[list[str]] = []
    check = checker(STREAMING, calls=calls)
    status, body = check.handle("/replica?lag=2000")
    assert (status, body) == (200, {"role": "replica", "state": "running",
                                    "wal_receiver": "streaming", "lag": 1000})
    assert check.handle("/replica?lag=500")[0] == 503
    assert check.handle("/replica?lag=1000")[0] == 200
    assert check.handle("/replica")[0] == 200
    assert check.handle("/primary")[0] == 503
    assert check.handle("/read-only?lag=1kB")[0] == 200
    assert check.handle("/read-only?lag=999")[0] == 503
    local, upstream = calls[0], calls[1]
    assert local[-2:] == ["-c", hc.STATUS_SQL]
    assert local[:4] == ["-h", "/run/pg", "-p", "5433"]
    assert "ON_ERROR_STOP=1" in local
    assert upstream[1:] == ["-X", "-A", "-t", "-c", "IDENTIFY_SYSTEM"]
    conninfo = upstream[0]
    for part in ("host='172.20.0.10'", "port=5432", "user='replicator'", "dbname=replication",
                 "replication=true", "sslmode=verify-full", "sslrootcert=/tls/ca.crt",
                 "connect_timeout=3"):
        assert part in conninfo.split(" "), part


def test_an_unreachable_upstream_makes_the_lag_unknown() -> None:
    check = checker(STREAMING, upstream=None)
    assert check.handle("/replica") == (200, {"role": "replica", "state": "running",
                                              "wal_receiver": "streaming", "lag": None})
    assert check.handle("/replica?lag=1GB")[0] == 503
    assert check.handle("/read-only?lag=1GB")[0] == 503
    assert check.handle("/health")[0] == 200


def test_a_replica_not_streaming_is_no_replica_but_still_read_only() -> None:
    calls: list[list[str]] = []
    check = checker(NOT_STREAMING, calls=calls)
    assert check.handle("/replica") == (503, {"role": "replica", "state": "running",
                                              "wal_receiver": None, "lag": None})
    assert check.handle("/read-only")[0] == 200
    assert check.handle("/read-only?lag=16MB")[0] == 503
    assert check.handle("/primary")[0] == 503
    assert check.handle("/health")[0] == 200
    assert not [c for c in calls if "IDENTIFY_SYSTEM" in c], "no upstream to ask"


def test_a_stopped_server_fails_every_check_but_liveness() -> None:
    check = checker(None)
    for path in sorted(hc.PATHS - {"/liveness"}):
        status, body = check.handle(path)
        assert status == 503, path
        assert body["state"] == "stopped" and body["role"] == "unknown"
        assert body["lag"] is None
        assert body["error"] == "cannot query PostgreSQL: connection refused"
    assert check.handle("/liveness")[0] == 200


def test_a_timeout_or_garbage_from_psql_means_stopped() -> None:
    def hangs(args: list[str]) -> str:
        raise subprocess.TimeoutExpired(["psql"], 3)
    assert hc.Checker(CONFIG, hangs).handle("/health") == (503, {
        "role": "unknown", "state": "stopped", "wal_receiver": None, "lag": None,
        "error": "cannot query PostgreSQL: psql did not answer in 3s"})
    assert checker("ERROR: something\n").handle("/read-only")[0] == 503


def test_the_real_psql_is_run_with_the_passfile_and_the_timeout(tmp_path: Path) -> None:
    psql = tmp_path / "psql"
    psql.write_text('#!/bin/bash\necho "$PGPASSFILE $*" >> "${0%/*}/calls"\n'
                    '[[ $* == *IDENTIFY_SYSTEM* ]] && { sleep 5; exit 0; }\n'
                    "echo 't|streaming|0/3000000|db1|5432'\n")
    psql.chmod(0o755)
    config = {**CONFIG, "PSQL": str(psql), "PGPASS": "/home/pg/.pgpass", "CHECK_TIMEOUT": "1"}
    # Without a bound the upstream is not asked at all.
    assert hc.Checker(config).handle("/replica") == (
        200, {"role": "replica", "state": "running", "wal_receiver": "streaming", "lag": None})
    calls = (tmp_path / "calls").read_text().splitlines()
    assert len(calls) == 1
    assert calls[0].startswith("/home/pg/.pgpass -h /run/pg -p 5433 -d postgres -X -A -t")
    # With one, the upstream's psql hangs: killed after CHECK_TIMEOUT, the lag is unknown,
    # and a replica of unknown lag is no reader.
    assert hc.Checker(config).handle("/replica?lag=16MB") == (
        503, {"role": "replica", "state": "running", "wal_receiver": "streaming", "lag": None})
    calls = (tmp_path / "calls").read_text().splitlines()
    assert "IDENTIFY_SYSTEM" in calls[2]
    assert hc.Checker({**config, "PSQL": str(tmp_path / "none")}).handle("/health")[0] == 503


def test_unknown_paths_and_bad_lags() -> None:
    check = checker(PRIMARY)
    assert check.handle("/nope")[0] == 404
    assert check.handle("/")[0] == 404
    status, body = check.handle("/replica?lag=lots")
    assert status == 400 and "lots" in body["error"]
    assert check.handle("/read-only?lag=")[0] == 400


# ------------------------------------------------------------------------- HTTPS for real


@pytest.fixture
def service(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    ca_key, ca_cert = make_ca("test CA", 1)
    key, cert = issue(ca_key, ca_cert, "db1", ["127.0.0.1"], 1)
    (tmp_path / "ca.crt").write_text(cert_pem(ca_cert))
    (tmp_path / "node.crt").write_text(cert_pem(cert))
    (tmp_path / "node.key").write_text(key_pem(key))
    env = tmp_path / "health.env"
    env.write_text(f"LISTEN_ADDRESS=127.0.0.1\nLISTEN_PORT=0\nTLS_CERT='{tmp_path}/node.crt'\n"
                   f"TLS_KEY='{tmp_path}/node.key'\nTLS_CA='{tmp_path}/ca.crt'\n")
    config = hc.parse_env(env.read_text())
    server = hc.make_server(config, hc.Checker(config, fake_psql(STREAMING)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], tmp_path / "ca.crt"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def request(port: int, ca: Path, method: str, path: str) -> tuple[int, dict[str, str], bytes]:
    context = ssl.create_default_context(cafile=str(ca))
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
    try:
        connection.request(method, path)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def test_the_service_answers_over_tls(service: tuple[int, Path]) -> None:
    port, ca = service
    status, headers, body = request(port, ca, "OPTIONS", "/primary")
    assert (status, body) == (503, b"")
    assert headers["Content-Length"] == "0"
    assert headers["Content-Type"] == "application/json"
    assert headers["Connection"] == "close"

    status, headers, body = request(port, ca, "GET", "/replica?lag=1MB")
    assert status == 200
    assert json.loads(body) == {"role": "replica", "state": "running",
                                "wal_receiver": "streaming", "lag": 1000}

    assert request(port, ca, "HEAD", "/replica")[::2] == (200, b"")
    assert request(port, ca, "GET", "/nope")[0] == 404
    assert request(port, ca, "POST", "/primary")[0] == 501  # and the service lives on
    assert request(port, ca, "GET", "/liveness")[0] == 200


def test_the_service_refuses_plain_http_and_keeps_serving(service: tuple[int, Path]) -> None:
    port, ca = service
    plain = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    with pytest.raises((http.client.HTTPException, OSError)):
        plain.request("GET", "/health")
        plain.getresponse()
    plain.close()
    assert request(port, ca, "GET", "/health")[0] == 200
