"""TLS for the cluster: a cluster CA and one server certificate per node, made and kept on
the control machine, renewed by a re-run of the deploy before they expire.

Certificates are generated here (with the `cryptography` package pyinfra already depends
on), never on the nodes, so a node's private key is written once, on the control machine,
and uploaded to that node only. Files are stored in `tls_dir` (default
`secrets/<inventory>/tls/`, git-ignored, 0700; keys 0600):

    ca.crt            the CA certificate(s) to trust: the current CA first, then a previous
                      CA that is still valid after a CA renewal (so old and new certificates
                      verify during the change)
    ca.key            the current CA's private key
    nodes/NODE.crt    NODE's certificate, its name and addresses in subjectAltName
    nodes/NODE.key    NODE's private key

A re-run reads these files back unchanged (so the deploy changes nothing) and only issues
a certificate again when it expires within `tls_renew_days`, when the node's names or
addresses changed, or when it was not issued by the current CA. Instead of the generated
CA, `tls_ca_file` + `tls_ca_key_file` let pgcluster issue node certificates with your CA,
and `tls_ca_file` + per-host `tls_cert_file` / `tls_key_file` use certificates you made
(checked before connecting, never renewed by pgcluster).

The functions making and checking certificates are pure (a `now` argument, no files), so
unit tests cover renewal without waiting a year.
"""

from __future__ import annotations

import fcntl
import ipaddress
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pgcluster.model.cluster import Cluster, HostEntry, Node, ServiceHost
from pgcluster.model.endpoints import proxy_names

KEY_ALGORITHMS = ("ec-p256", "rsa-3072")
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
CLOCK_SKEW = timedelta(minutes=5)  # certificates are valid from a little before "now"


# ------------------------------------------------------------------- pure: certificates


def new_key(algorithm: str = "ec-p256") -> PrivateKey:
    if algorithm == "ec-p256":
        return ec.generate_private_key(ec.SECP256R1())
    if algorithm == "rsa-3072":
        return rsa.generate_private_key(public_exponent=65537, key_size=3072)
    raise ValueError(f"unknown key algorithm {algorithm!r}: use one of {KEY_ALGORITHMS}")


def key_pem(key: PrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def cert_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def load_key(pem: str | bytes) -> PrivateKey:
    data = pem.encode() if isinstance(pem, str) else pem
    key = serialization.load_pem_private_key(data, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise ValueError("only EC and RSA keys are supported")
    return key


def load_certs(pem: str | bytes) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(pem.encode() if isinstance(pem, str) else pem)


def _now(now: datetime | None) -> datetime:
    return now or datetime.now(UTC)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_ca(common_name: str, days: int, algorithm: str = "ec-p256",
            now: datetime | None = None) -> tuple[PrivateKey, x509.Certificate]:
    """A self-signed CA that may sign server certificates only (path length 0)."""
    now = _now(now)
    key = new_key(algorithm)
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, key_cert_sign=True, crl_sign=True,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def general_name(name: str) -> x509.GeneralName:
    """An address becomes an iPAddress entry (what libpq matches an IP host against), any
    other name a dNSName."""
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def issue(ca_key: CertificateIssuerPrivateKeyTypes, ca_cert: x509.Certificate,
          common_name: str, names: Sequence[str], days: int, algorithm: str = "ec-p256",
          now: datetime | None = None) -> tuple[PrivateKey, x509.Certificate]:
    """A server certificate for `names` (also usable as a client certificate), never
    valid longer than the CA that signs it."""
    now = _now(now)
    key = new_key(algorithm)
    public = key.public_key()
    not_after = min(now + timedelta(days=days), ca_cert.not_valid_after_utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName([general_name(n) for n in names]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                     key_encipherment=isinstance(key, rsa.RSAPrivateKey),
                                     data_encipherment=False, key_agreement=False,
                                     key_cert_sign=False, crl_sign=False, encipher_only=False,
                                     decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                              ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            ca_cert.public_key()), critical=False)  # type: ignore[arg-type]
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert


def names_of(cert: x509.Certificate) -> list[str]:
    """The subjectAltName entries of a certificate, as strings."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [str(entry.value) for entry in san]


def wanted_names(node_name: str, node_address: str, extra: Sequence[str] | None = None
                 ) -> list[str]:
    """What a node's certificate must name: the node's name, the address the other nodes
    (and clients) reach it on, and `tls_extra_names` (e.g. the lab's 127.0.0.1)."""
    names: list[str] = []
    for name in [node_name, node_address, *(extra or [])]:
        name = str(name).strip()
        if name and name not in names:
            names.append(name)
    return names


def node_names(data: Mapping[str, Any], node_name: str, node_address: str,
               engine: str = "manual", proxies: Sequence[str] = ()) -> list[str]:
    """wanted_names with the inventory's tls_extra_names; under Patroni (the run's engine:
    a running Patroni cluster is one with ha_engine unset too), localhost: Patroni connects
    to its own server by that name, verify-full like any client; and the proxies' names
    and addresses, which clients behind them check (pgcluster.model.endpoints)."""
    extra = list(data.get("tls_extra_names") or [])
    if engine == "patroni":
        extra.append("localhost")
    return wanted_names(node_name, node_address, [*extra, *proxies])


def issued_by(cert: x509.Certificate, ca_cert: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def same_key(cert: x509.Certificate, key: PrivateKey) -> bool:
    der = serialization.Encoding.DER
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    return cert.public_key().public_bytes(der, spki) == key.public_key().public_bytes(der, spki)


def expires_within(cert: x509.Certificate, days: int, now: datetime | None = None) -> bool:
    return cert.not_valid_after_utc - _now(now) <= timedelta(days=days)


def renewal_reason(cert: x509.Certificate, key: PrivateKey | None, ca_cert: x509.Certificate,
                   names: Sequence[str], renew_days: int, now: datetime | None = None
                   ) -> str | None:
    """Why a node certificate must be issued again, or None while it is good."""
    now = _now(now)
    if not issued_by(cert, ca_cert):
        return "it was not issued by the current cluster CA"
    if key is not None and not same_key(cert, key):
        return "its private key does not match it"
    if cert.not_valid_before_utc > now:
        return "it is not valid yet (check the control machine's clock)"
    if expires_within(cert, renew_days, now):
        return (f"it expires on {cert.not_valid_after_utc:%Y-%m-%d} "
                f"(within tls_renew_days = {renew_days})")
    if sorted(names_of(cert)) != sorted(names):
        return f"it names {', '.join(names_of(cert))}, the node needs {', '.join(names)}"
    return None


def chain_problems(cert: x509.Certificate, key: PrivateKey, cas: Sequence[x509.Certificate],
                   names: Sequence[str], renew_days: int, now: datetime | None = None
                   ) -> list[str]:
    """What is wrong with a certificate the user supplies (pgcluster never renews it)."""
    now = _now(now)
    found = []
    if not any(issued_by(cert, ca) for ca in cas):
        found.append("is not signed by tls_ca_file")
    if not same_key(cert, key):
        found.append("does not match its tls_key_file")
    if cert.not_valid_after_utc <= now:
        found.append(f"expired on {cert.not_valid_after_utc:%Y-%m-%d}")
    elif expires_within(cert, renew_days, now):
        found.append(f"expires on {cert.not_valid_after_utc:%Y-%m-%d}, within tls_renew_days "
                     f"= {renew_days}: replace it")
    present = set(names_of(cert))
    missing = [n for n in names if n not in present]
    if missing:
        found.append(f"does not name {', '.join(missing)} in subjectAltName (verify-full "
                     "connections to that name or address would fail)")
    return found


# ------------------------------------------------------------ files on the control machine


@dataclass(frozen=True)
class NodeTLS:
    """What one node gets: the CA certificate(s) to trust, its certificate and its key."""

    ca_bundle: str
    cert: str
    key: str
    issued: str | None = None  # why a certificate was issued in this run, if one was


def _write_private(path: Path, text: str, mode: int = 0o600) -> None:
    """Write a file atomically, never readable by others, not even while being written."""
    private_dir(path.parent)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def private_dir(path: Path) -> Path:
    """A directory only its owner may enter; missing parents are made private too."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    for directory in reversed(missing):
        directory.mkdir(mode=0o700, exist_ok=True)
        os.chmod(directory, 0o700)  # whatever the umask
    os.chmod(path, 0o700)
    return path


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """One writer at a time (two deploys started together must not make two CAs)."""
    private_dir(directory)
    fd = os.open(directory / ".lock", os.O_WRONLY | os.O_CREAT, 0o600)
    with os.fdopen(fd, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _ca_from_files(cert_file: Path, key_file: Path | None
                   ) -> tuple[PrivateKey | None, list[x509.Certificate]]:
    cas = load_certs(cert_file.read_bytes())
    key = load_key(key_file.read_bytes()) if key_file else None
    return key, cas


def _generated_ca(directory: Path, data: Mapping[str, Any], now: datetime
                  ) -> tuple[PrivateKey, list[x509.Certificate]]:
    """The generated CA of tls_dir: created once, renewed within tls_renew_days of its end
    (the previous one stays in ca.crt while it is valid)."""
    cert_file, key_file = directory / "ca.crt", directory / "ca.key"
    renew_days = int(data.get("tls_renew_days", 30))
    cas: list[x509.Certificate] = []
    key: PrivateKey | None = None
    if cert_file.is_file() and key_file.is_file():
        key, cas = _ca_from_files(cert_file, key_file)
        if not cas or not same_key(cas[0], key) or expires_within(cas[0], renew_days, now):
            key = None
    if key is None:
        key, ca = make_ca(f"pgcluster CA {directory.parent.name or 'cluster'}",
                          int(data.get("tls_ca_days", 3650)),
                          str(data.get("tls_key_algorithm", "ec-p256")), now)
        cas = [ca, *cas]
        _write_private(key_file, key_pem(key))
    # Keep the previous CA(s) only while they can still verify something.
    valid = [cas[0], *(c for c in cas[1:] if c.not_valid_after_utc > now)]
    bundle = "".join(cert_pem(c) for c in valid)
    if not cert_file.is_file() or cert_file.read_text() != bundle:
        _write_private(cert_file, bundle, 0o644)
    return key, valid


def ca_bundle(data: Mapping[str, Any], now: datetime | None = None) -> str:
    """The cluster CA's certificates, for a host that checks the nodes but has no
    certificate of its own (a proxy): the user's CA file, or tls_dir's (made if needed)."""
    if data.get("tls_ca_file"):
        return Path(str(data["tls_ca_file"])).read_text()
    directory = Path(str(data["tls_dir"]))
    with _locked(directory):
        _generated_ca(directory, data, _now(now))
        return (directory / "ca.crt").read_text()


def node_material(data: Mapping[str, Any], node_name: str, node_address: str,
                  now: datetime | None = None, engine: str = "manual",
                  proxies: Sequence[str] = ()) -> NodeTLS:
    """The CA bundle, certificate and key for one node, issuing or renewing its certificate
    in tls_dir when needed (or the user's own files, as they are)."""
    now = _now(now)
    names = node_names(data, node_name, node_address, engine, proxies)
    if data.get("tls_cert_file"):  # the user's own certificate: used as it is
        return NodeTLS(ca_bundle=Path(str(data["tls_ca_file"])).read_text(),
                       cert=Path(str(data["tls_cert_file"])).read_text(),
                       key=Path(str(data["tls_key_file"])).read_text())
    directory = Path(str(data["tls_dir"]))
    with _locked(directory):
        if data.get("tls_ca_file"):  # the user's CA signs the certificates pgcluster issues
            ca_key, cas = _ca_from_files(Path(str(data["tls_ca_file"])),
                                         Path(str(data["tls_ca_key_file"])))
            assert ca_key is not None
            bundle = Path(str(data["tls_ca_file"])).read_text()
        else:
            ca_key, cas = _generated_ca(directory, data, now)
            bundle = (directory / "ca.crt").read_text()
        cert_file = directory / "nodes" / f"{node_name}.crt"
        key_file = directory / "nodes" / f"{node_name}.key"
        reason: str | None = "there is none yet"
        if cert_file.is_file() and key_file.is_file():
            try:
                reason = renewal_reason(load_certs(cert_file.read_bytes())[0],
                                        load_key(key_file.read_bytes()), cas[0], names,
                                        int(data.get("tls_renew_days", 30)), now)
            except ValueError as exc:
                reason = f"it cannot be read ({exc})"
        if reason:
            key, cert = issue(ca_key, cas[0], node_name, names,
                              int(data.get("tls_cert_days", 365)),
                              str(data.get("tls_key_algorithm", "ec-p256")), now)
            private_dir(key_file.parent)
            _write_private(key_file, key_pem(key))
            _write_private(cert_file, cert_pem(cert), 0o644)
        return NodeTLS(ca_bundle=bundle, cert=cert_file.read_text(), key=key_file.read_text(),
                       issued=reason)


# ---------------------------------------------------------------------- validation


def problems(entries: Sequence[HostEntry], cluster: Cluster) -> list[str]:
    """TLS settings that would stop the deploy half-way (or a server from starting)."""
    found = []
    for entry in entries:
        data, name = entry.data, entry.name
        algorithm = data.get("tls_key_algorithm", "ec-p256")
        if algorithm not in KEY_ALGORITHMS:
            found.append(f"tls_key_algorithm = {algorithm!r} on {name}: use one of "
                         f"{', '.join(KEY_ALGORITHMS)}")
        renew = int(data.get("tls_renew_days", 30))
        for key in ("tls_cert_days", "tls_ca_days"):
            if int(data.get(key, 365)) <= renew:
                found.append(f"{key} = {data.get(key)} on {name} is not longer than "
                             f"tls_renew_days = {renew}: every run would renew")
        if data.get("tls_min_protocol_version", "TLSv1.2") not in ("TLSv1.2", "TLSv1.3"):
            found.append(f"tls_min_protocol_version on {name}: use TLSv1.2 or TLSv1.3")
        member = cluster.etcd_host(name) if not cluster.is_node(name) else cluster.node(name)
        if member is not None:
            proxies = proxy_names(cluster) if cluster.is_node(name) else []
            found += _supplied_tls_problems(entry, member, renew, proxies)
    return found


def _read(entry: HostEntry, key: str, found: list[str]) -> bytes | None:
    value = entry.data.get(key)
    if not value:
        return None
    path = Path(str(value)).expanduser()
    if not path.is_file():
        found.append(f"{key} = {value!r} on {entry.name}: no such file on this machine")
        return None
    return path.read_bytes()


def _supplied_tls_problems(entry: HostEntry, node: Node | ServiceHost, renew_days: int,
                           proxies: Sequence[str] = ()) -> list[str]:
    found: list[str] = []
    data, name = entry.data, entry.name
    ca_file = _read(entry, "tls_ca_file", found)
    ca_key = _read(entry, "tls_ca_key_file", found)
    cert = _read(entry, "tls_cert_file", found)
    key = _read(entry, "tls_key_file", found)
    if data.get("tls_ca_key_file") and not data.get("tls_ca_file"):
        found.append(f"tls_ca_key_file on {name} needs tls_ca_file (the CA's certificate)")
    if bool(data.get("tls_cert_file")) != bool(data.get("tls_key_file")):
        found.append(f"tls_cert_file and tls_key_file on {name} go together")
    if data.get("tls_cert_file") and not data.get("tls_ca_file"):
        found.append(f"tls_cert_file on {name} needs tls_ca_file (the CA that signed it)")
    if data.get("tls_ca_file") and not data.get("tls_ca_key_file") \
            and not data.get("tls_cert_file"):
        found.append(f"tls_ca_file on {name} without tls_ca_key_file: give this host its own "
                     "tls_cert_file and tls_key_file, or the CA's key so pgcluster can issue "
                     "them")
    try:
        cas = load_certs(ca_file) if ca_file else []
        if ca_file and ca_key and not same_key(cas[0], load_key(ca_key)):
            found.append(f"tls_ca_key_file on {name} is not the key of tls_ca_file's "
                         "(first) certificate")
        if ca_key and cas and expires_within(cas[0], renew_days):
            found.append(f"the CA in tls_ca_file expires on "
                         f"{cas[0].not_valid_after_utc:%Y-%m-%d}: renew it")
        if cert and key and cas:
            # Checked before any node is read: the engine asked for is all there is yet.
            names = node_names(data, node.name, node.address, data.get("ha_engine") or "manual",
                               proxies)
            found += [f"tls_cert_file on {name} {problem}" for problem in chain_problems(
                load_certs(cert)[0], load_key(key), cas, names, renew_days)]
    except ValueError as exc:
        found.append(f"the TLS files of {name} cannot be read as PEM ({exc})")
    return found
