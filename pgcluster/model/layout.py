"""Where Debian's PostgreSQL packaging keeps a cluster's files, and where pgcluster's are."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

SCRIPTS_DIR = "/usr/local/lib/pgcluster"  # the node scripts (pgcluster/node/) and their lib.sh
NODE_ENV = "/etc/pgcluster/node.env"  # the node scripts' settings (templates/node/node.env.j2)
# One-shot: start-guard lets the node's next start go ahead as a primary without a peer's
# confirmation, and deletes it (`pgcluster start NODE --as-primary`; the first start of a new
# cluster's primary). Under /run: a reboot forgets it.
START_OVERRIDE = "/run/pgcluster/start-as-primary"
PGPASS = "/var/lib/postgresql/.pgpass"  # postgres' password file (replication only)
SOCKET_DIR = "/var/run/postgresql"
# Secrets on their way to a node (uploads through sudo): the login user's private directory
# under a root-owned parent; see pgcluster.operations.files.private_upload.
UPLOAD_DIR = "/var/lib/pgcluster/upload"

# Debian's patroni package: patroni.service runs `patroni /etc/patroni/config.yml` as
# postgres. The file holds passwords (mode 0600, owner postgres).
PATRONI_CONFIG = "/etc/patroni/config.yml"
# Patroni writes its own password file before pg_basebackup and pg_rewind: not pgcluster's
# .pgpass, which would be overwritten.
PATRONI_PGPASS = "/var/lib/postgresql/.pgpass.patroni"
# Debian's etcd-server package: etcd.service runs as etcd with EnvironmentFile=-/etc/default/etcd.
ETCD_ENVIRONMENT = "/etc/default/etcd"
# etcd's copies of the node's certificate, key and CA (owner etcd: it cannot read
# PostgreSQL's, which are postgres' own).
ETCD_TLS_DIR = "/etc/etcd/tls"


@dataclass(frozen=True)
class Layout:
    version: int
    cluster: str

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> Layout:
        version = int(data.get("postgresql_version", 15))
        return cls(version, str(data.get("postgresql_cluster", "main")))

    @property
    def conf_dir(self) -> str:
        return f"/etc/postgresql/{self.version}/{self.cluster}"

    @property
    def data_dir(self) -> str:
        return f"/var/lib/postgresql/{self.version}/{self.cluster}"

    @property
    def tls_dir(self) -> str:
        """The node's TLS files: the CA certificate(s) it trusts, its certificate and key."""
        return f"{self.conf_dir}/tls"

    @property
    def tls_ca_file(self) -> str:
        return f"{self.tls_dir}/ca.crt"

    @property
    def tls_cert_file(self) -> str:
        return f"{self.tls_dir}/server.crt"

    @property
    def tls_key_file(self) -> str:
        return f"{self.tls_dir}/server.key"

    @property
    def bin_dir(self) -> str:
        return f"/usr/lib/postgresql/{self.version}/bin"

    @property
    def service(self) -> str:
        return f"postgresql@{self.version}-{self.cluster}"

    @property
    def pid_file(self) -> str:
        return f"{SOCKET_DIR}/{self.version}-{self.cluster}.pid"

    @property
    def log_file(self) -> str:
        return f"/var/log/postgresql/postgresql-{self.version}-{self.cluster}.log"

    @property
    def packages(self) -> list[str]:
        return [f"postgresql-{self.version}", f"postgresql-client-{self.version}"]
