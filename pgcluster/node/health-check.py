#!/usr/bin/env python3
"""health-check --env FILE [--verbose] -- the HTTP checks HAProxy routes by, without Patroni.
Managed by pgcluster (pgcluster/node/).

HAProxy picks the primary and the usable replicas by HTTPS checks on each node's port 8008.
Under Patroni its REST API answers them; with the manual engine this service does, on the
same paths with the same meaning (/primary, /replica?lag=16MB, /read-only, /health, ...), so
one haproxy.cfg serves both engines. Each request asks the local server once, with psql on
its Unix socket (peer auth, as the service user postgres); a streaming replica's lag is its
upstream's current WAL position (IDENTIFY_SYSTEM on a replication connection) minus what it
replayed. A server that psql cannot ask in CHECK_TIMEOUT seconds is "not running": HAProxy
must not send clients to it. Standard library only: the file is copied to the nodes as is.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import ssl
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

STATUS_SQL = ("select pg_is_in_recovery(), (select status from pg_stat_wal_receiver), "
              "pg_last_wal_replay_lsn(), (select sender_host from pg_stat_wal_receiver), "
              "(select sender_port from pg_stat_wal_receiver)")
PRIMARY_PATHS = frozenset({"/primary", "/master", "/read-write", "/leader"})
PATHS = PRIMARY_PATHS | {"/replica", "/read-only", "/health", "/liveness"}
# PostgreSQL's memory units (1024-based, case-sensitive), as Patroni's ?lag= accepts them.
UNITS = {"B": 1, "kB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}
SIZE = re.compile(r"\s*(\d+)\s*(B|kB|MB|GB|TB)?\s*")
LSN = re.compile(r"([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})")

Psql = Callable[[list[str]], str]


def log(message: str) -> None:
    print(f"health-check: {message}", file=sys.stderr, flush=True)


def parse_env(text: str) -> dict[str, str]:
    """NAME=value lines as bash reads them (quotes removed); comments and blanks ignored."""
    config: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.removeprefix("export ").partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise ValueError(f"line {number}: not NAME=value: {line!r}")
        config[name] = " ".join(shlex.split(value))
    return config


def lsn_to_int(lsn: str) -> int:
    match = LSN.fullmatch(lsn.strip())
    if not match:
        raise ValueError(f"not an LSN: {lsn!r}")
    return (int(match[1], 16) << 32) + int(match[2], 16)


def lsn_diff(ahead: str, behind: str) -> int:
    """Bytes from `behind` to `ahead`, never negative: a replica that replayed past what its
    upstream reported a moment earlier is not behind."""
    return max(0, lsn_to_int(ahead) - lsn_to_int(behind))


def parse_size(text: str) -> int:
    match = SIZE.fullmatch(text)
    if not match:
        raise ValueError(f"not a size: {text!r} (bytes, or with a unit: {', '.join(UNITS)})")
    return int(match[1]) * UNITS[match[2] or "B"]


@dataclass(frozen=True)
class Status:
    in_recovery: bool
    wal_receiver: str | None
    replay_lsn: str | None
    sender_host: str | None
    sender_port: int | None


def parse_status(output: str) -> Status:
    """STATUS_SQL's row from `psql -A -t -F '|'`: booleans t/f, NULL an empty field."""
    fields = output.strip().split("|")
    if len(fields) != 5 or fields[0] not in ("t", "f"):
        raise ValueError(f"unexpected psql output: {output.strip()!r}")
    receiver, lsn, host, port = (f or None for f in fields[1:])
    return Status(fields[0] == "t", receiver, lsn, host, int(port) if port else None)


def parse_identify_system(output: str) -> str:
    """The xlogpos of IDENTIFY_SYSTEM's row systemid|timeline|xlogpos|dbname."""
    fields = output.strip().split("|")
    if len(fields) != 4:
        raise ValueError(f"unexpected IDENTIFY_SYSTEM output: {output.strip()!r}")
    lsn_to_int(fields[2])
    return fields[2]


def describe(error: Exception) -> str:
    """psql's own message rather than its whole command line (the SQL is known)."""
    if isinstance(error, subprocess.CalledProcessError):
        lines = (error.stderr or "").strip().splitlines()
        return lines[-1] if lines else f"psql exited with status {error.returncode}"
    if isinstance(error, subprocess.TimeoutExpired):
        return f"psql did not answer in {error.timeout:g}s"
    return str(error)


def conninfo_value(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class Checker:
    """Decides each check's answer; `psql` (arguments after the program) can be injected."""

    def __init__(self, config: Mapping[str, str], psql: Psql | None = None) -> None:
        self.config = dict(config)
        self.timeout = float(self.config.get("CHECK_TIMEOUT") or 3)
        self._psql = psql

    def run_psql(self, args: list[str]) -> str:
        if self._psql is not None:
            return self._psql(args)
        env = {**os.environ, "PGCONNECT_TIMEOUT": str(max(2, int(self.timeout))),
               "PGAPPNAME": "pgcluster-health-check"}
        if self.config.get("PGPASS"):
            env["PGPASSFILE"] = self.config["PGPASS"]
        program = self.config.get("PSQL") or "/usr/lib/postgresql/15/bin/psql"
        return subprocess.run([program, *args], capture_output=True, text=True, env=env,
                              timeout=self.timeout, check=True).stdout

    def status(self) -> Status:
        return parse_status(self.run_psql([
            "-h", self.config.get("SOCKET_DIR") or "/var/run/postgresql",
            "-p", self.config.get("PG_PORT") or "5432", "-d", "postgres",
            "-X", "-A", "-t", "-q", "-F", "|", "-v", "ON_ERROR_STOP=1", "-c", STATUS_SQL]))

    def lag(self, status: Status) -> int | None:
        """A streaming replica's replay lag in bytes; None when it cannot be known."""
        if status.wal_receiver != "streaming" or not status.sender_host \
                or not status.replay_lsn:
            return None
        conninfo = " ".join([
            f"host={conninfo_value(status.sender_host)}",
            f"port={status.sender_port or self.config.get('PG_PORT') or 5432}",
            f"user={conninfo_value(self.config.get('REPLICATION_USER') or 'replicator')}",
            "dbname=replication replication=true", self.config.get("SSL_CONNINFO", ""),
            f"connect_timeout={max(2, int(self.timeout))}"])
        try:
            xlogpos = parse_identify_system(
                self.run_psql([conninfo, "-X", "-A", "-t", "-c", "IDENTIFY_SYSTEM"]))
            return lsn_diff(xlogpos, status.replay_lsn)
        except (subprocess.SubprocessError, OSError, ValueError):
            return None  # an unreachable upstream makes the lag unknown, not the server down

    def handle(self, path: str) -> tuple[int, dict[str, Any]]:
        url = urlsplit(path)
        if url.path not in PATHS:
            return 404, {"error": f"unknown path {url.path}"}
        if url.path == "/liveness":  # the service answers: PostgreSQL is not asked
            return 200, {"liveness": "alive"}
        max_lag: int | None = None
        lags = parse_qs(url.query, keep_blank_values=True).get("lag")
        if lags:
            try:
                max_lag = parse_size(lags[-1])
            except ValueError as error:
                return 400, {"error": str(error)}
        try:
            status = self.status()
        except (subprocess.SubprocessError, OSError, ValueError) as error:
            return 503, {"role": "unknown", "state": "stopped", "wal_receiver": None,
                         "lag": None, "error": f"cannot query PostgreSQL: {describe(error)}"}
        primary = not status.in_recovery
        # The upstream is asked (a replication connection) only when a bound needs it:
        # every check of every replica would otherwise fork a walsender on the primary.
        lag = 0 if primary else (self.lag(status) if max_lag is not None else None)
        body: dict[str, Any] = {"role": "primary" if primary else "replica",
                                "state": "running", "wal_receiver": status.wal_receiver,
                                "lag": lag}
        lag_ok = max_lag is None or (lag is not None and lag <= max_lag)
        if url.path in PRIMARY_PATHS:
            ok = primary
        elif url.path == "/replica":
            ok = not primary and status.wal_receiver == "streaming" and lag_ok
        elif url.path == "/read-only":
            ok = primary or lag_ok
        else:  # /health
            ok = True
        return (200 if ok else 503), body


class Handler(BaseHTTPRequestHandler):
    server: HealthServer
    timeout = 10  # a client that stalls the handshake or the request holds one thread only

    def setup(self) -> None:
        super().setup()
        self.connection.do_handshake()  # here, in the request's thread, not in accept()

    def respond(self) -> None:
        try:
            status, body = self.server.checker.handle(self.path)
        except Exception as error:  # a bug answers 500, it does not end the service
            log(f"{self.path}: {error!r}")
            status, body = 500, {"error": str(error)}
        data = (json.dumps(body) + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        # HEAD announces the GET's length; OPTIONS has a body of its own, an empty one.
        self.send_header("Content-Length", "0" if self.command == "OPTIONS" else str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command == "GET":
            self.wfile.write(data)

    def do_GET(self) -> None:
        self.respond()

    do_HEAD = do_OPTIONS = do_GET  # OPTIONS: HAProxy's `option httpchk OPTIONS /primary`

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        if self.server.verbose:
            log(f"{self.address_string()} {self.requestline!r} {code}")

    def log_error(self, format: str, *args: Any) -> None:
        log(f"{self.address_string()} {format % args}")


class HealthServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], context: ssl.SSLContext, checker: Checker,
                 verbose: bool = False) -> None:
        self.context, self.checker, self.verbose = context, checker, verbose
        super().__init__(address, Handler)

    def get_request(self) -> tuple[Any, Any]:
        sock, address = self.socket.accept()
        return self.context.wrap_socket(sock, server_side=True,
                                        do_handshake_on_connect=False), address

    def handle_error(self, request: Any, client_address: Any) -> None:
        log(f"{client_address[0]}: {sys.exc_info()[1]!r}")  # one line, no traceback


def make_server(config: Mapping[str, str], checker: Checker | None = None,
                verbose: bool = False) -> HealthServer:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(config["TLS_CERT"], config["TLS_KEY"])
    if config.get("TLS_CA"):
        # Like Patroni's verify_client: optional: no certificate needed, a wrong one refused.
        context.load_verify_locations(config["TLS_CA"])
        context.verify_mode = ssl.CERT_OPTIONAL
    address = (config["LISTEN_ADDRESS"], int(config.get("LISTEN_PORT") or 8008))
    return HealthServer(address, context, checker or Checker(config), verbose)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", type=Path, default=Path("/etc/pgcluster/health.env"))
    parser.add_argument("--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    try:
        server = make_server(parse_env(args.env.read_text()), verbose=args.verbose)
    except KeyError as error:
        log(f"cannot start: {args.env} does not set {error}")
        return 1
    except (OSError, ValueError) as error:  # ssl.SSLError is an OSError
        log(f"cannot start: {error}")
        return 1
    host, port = server.server_address[:2]
    log(f"listening on https://{host}:{port}")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
