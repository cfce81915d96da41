"""The cluster CA and node certificates: what they contain, that a re-run reuses them, and
that they are renewed exactly when they must be (time is an argument, no waiting)."""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from pgcluster.control import tls
from pgcluster.model.cluster import Cluster
from pgcluster.model.conninfo import tls_options
from tests.unit.helpers import ALL, three_nodes

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def data(tmp_path: Path, **overrides) -> dict:
    return {**ALL, "tls_dir": str(tmp_path / "tls"), **overrides}


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_node_certificate_names_node_and_address_and_chains_to_the_ca() -> None:
    ca_key, ca = tls.make_ca("test CA", 3650, now=NOW)
    key, cert = tls.issue(ca_key, ca, "db1", ["db1", "10.0.0.1", "127.0.0.1", "localhost"],
                          365, now=NOW)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["db1", "localhost"]
    assert [str(a) for a in san.get_values_for_type(x509.IPAddress)] == ["10.0.0.1",
                                                                          "127.0.0.1"]
    assert tls.issued_by(cert, ca) and tls.same_key(cert, key)
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in usage
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert cert.not_valid_after_utc == NOW + timedelta(days=365)


def test_rsa_keys_are_available_too() -> None:
    ca_key, ca = tls.make_ca("test CA", 3650, "rsa-3072", now=NOW)
    key, cert = tls.issue(ca_key, ca, "db1", ["db1"], 30, "rsa-3072", now=NOW)
    assert key.key_size == 3072 and tls.issued_by(cert, ca)
    with pytest.raises(ValueError, match="unknown key algorithm"):
        tls.new_key("dsa")


def test_a_node_certificate_never_outlives_its_ca() -> None:
    ca_key, ca = tls.make_ca("short CA", 10, now=NOW)
    _, cert = tls.issue(ca_key, ca, "db1", ["db1"], 365, now=NOW)
    assert cert.not_valid_after_utc == ca.not_valid_after_utc


def test_renewal_reasons() -> None:
    ca_key, ca = tls.make_ca("test CA", 3650, now=NOW)
    key, cert = tls.issue(ca_key, ca, "db1", ["db1", "10.0.0.1"], 365, now=NOW)
    names = ["db1", "10.0.0.1"]
    assert tls.renewal_reason(cert, key, ca, names, 30, NOW) is None
    assert tls.renewal_reason(cert, key, ca, list(reversed(names)), 30, NOW) is None
    later = NOW + timedelta(days=336)
    assert "within tls_renew_days = 30" in tls.renewal_reason(cert, key, ca, names, 30, later)
    assert "10.0.0.9" in tls.renewal_reason(cert, key, ca, ["db1", "10.0.0.9"], 30, NOW)
    _, other_ca = tls.make_ca("another CA", 3650, now=NOW)
    assert "not issued by the current cluster CA" in tls.renewal_reason(
        cert, key, other_ca, names, 30, NOW)
    assert "private key" in tls.renewal_reason(cert, tls.new_key(), ca, names, 30, NOW)


def test_material_is_made_once_privately_and_reused(tmp_path: Path) -> None:
    first = tls.node_material(data(tmp_path), "db1", "10.0.0.1", now=NOW)
    assert first.issued == "there is none yet"
    directory = tmp_path / "tls"
    assert mode(directory) == 0o700 and mode(directory / "nodes") == 0o700
    assert mode(directory / "ca.key") == 0o600 and mode(directory / "nodes/db1.key") == 0o600
    assert mode(directory / "ca.crt") == 0o644
    again = tls.node_material(data(tmp_path), "db1", "10.0.0.1", now=NOW + timedelta(days=100))
    assert again == tls.NodeTLS(first.ca_bundle, first.cert, first.key, issued=None)
    second_node = tls.node_material(data(tmp_path), "db2", "10.0.0.2", now=NOW)
    assert second_node.ca_bundle == first.ca_bundle and second_node.key != first.key
    assert tls.issued_by(tls.load_certs(second_node.cert)[0],
                         tls.load_certs(first.ca_bundle)[0])


def test_material_is_renewed_inside_the_margin_or_when_the_address_changes(
        tmp_path: Path) -> None:
    first = tls.node_material(data(tmp_path), "db1", "10.0.0.1", now=NOW)
    renewed = tls.node_material(data(tmp_path), "db1", "10.0.0.1",
                                now=NOW + timedelta(days=340))
    assert renewed.issued and "within tls_renew_days" in renewed.issued
    assert renewed.cert != first.cert and renewed.key != first.key
    assert renewed.ca_bundle == first.ca_bundle
    moved = tls.node_material(data(tmp_path), "db1", "10.0.0.7", now=NOW + timedelta(days=341))
    assert "10.0.0.7" in tls.names_of(tls.load_certs(moved.cert)[0])
    extra = tls.node_material(data(tmp_path, tls_extra_names=["db1.example.net"]), "db1",
                              "10.0.0.7", now=NOW + timedelta(days=341))
    assert "db1.example.net" in tls.names_of(tls.load_certs(extra.cert)[0])


def test_ca_renewal_keeps_the_old_ca_trusted_while_it_is_valid(tmp_path: Path) -> None:
    settings = data(tmp_path, tls_ca_days=400, tls_cert_days=100)
    first = tls.node_material(settings, "db1", "10.0.0.1", now=NOW)
    old_ca = tls.load_certs(first.ca_bundle)
    assert len(old_ca) == 1
    near_end = NOW + timedelta(days=380)
    rotated = tls.node_material(settings, "db1", "10.0.0.1", now=near_end)
    bundle = tls.load_certs(rotated.ca_bundle)
    assert len(bundle) == 2 and bundle[1] == old_ca[0]
    assert tls.issued_by(tls.load_certs(rotated.cert)[0], bundle[0])
    assert "not issued by the current cluster CA" in rotated.issued
    after_old_ca = tls.node_material(settings, "db1", "10.0.0.1",
                                     now=NOW + timedelta(days=410))
    assert tls.load_certs(after_old_ca.ca_bundle) == [bundle[0]]


def test_your_own_ca_issues_the_node_certificates(tmp_path: Path) -> None:
    ca_key, ca = tls.make_ca("corporate CA", 3650, now=NOW)
    (tmp_path / "ca.pem").write_text(tls.cert_pem(ca))
    (tmp_path / "ca.key").write_text(tls.key_pem(ca_key))
    settings = data(tmp_path, tls_ca_file=str(tmp_path / "ca.pem"),
                    tls_ca_key_file=str(tmp_path / "ca.key"))
    material = tls.node_material(settings, "db1", "10.0.0.1", now=NOW)
    assert material.ca_bundle == tls.cert_pem(ca)
    assert tls.issued_by(tls.load_certs(material.cert)[0], ca)
    assert not (tmp_path / "tls" / "ca.key").exists()


def own_files(tmp_path: Path, names: list[str], days: int = 365) -> dict:
    ca_key, ca = tls.make_ca("corporate CA", 3650)
    key, cert = tls.issue(ca_key, ca, names[0], names, days)
    files = {"tls_ca_file": (tmp_path / "ca.pem", tls.cert_pem(ca)),
             "tls_cert_file": (tmp_path / "node.pem", tls.cert_pem(cert)),
             "tls_key_file": (tmp_path / "node.key", tls.key_pem(key))}
    for path, text in files.values():
        path.write_text(text)
    return {key: str(path) for key, (path, _) in files.items()}


def test_your_own_certificates_are_used_as_they_are(tmp_path: Path) -> None:
    settings = data(tmp_path, **own_files(tmp_path, ["db1", "10.0.0.1"]))
    material = tls.node_material(settings, "db1", "10.0.0.1")
    assert material.cert == Path(settings["tls_cert_file"]).read_text()
    assert material.key == Path(settings["tls_key_file"]).read_text()
    assert not (tmp_path / "tls").exists()


def test_your_own_certificates_are_checked_before_connecting(tmp_path: Path) -> None:
    files = own_files(tmp_path, ["db1"], days=10)  # no address, expires within the margin
    entries = three_nodes()
    entries[0] = type(entries[0])(entries[0].name, entries[0].groups,
                                  {**entries[0].data, **files})
    found = " ".join(tls.problems(entries, Cluster.from_entries(entries)))
    assert "tls_cert_file on db1 does not name 10.0.0.1" in found
    assert "within tls_renew_days" in found


@pytest.mark.parametrize("settings,message", [
    ({"tls_key_algorithm": "dsa"}, "tls_key_algorithm = 'dsa'"),
    ({"tls_cert_days": 20}, "tls_cert_days = 20 on db1 is not longer than tls_renew_days"),
    ({"tls_ca_file": "/nonexistent/ca.pem"}, "no such file on this machine"),
    ({"tls_ca_key_file": "/etc/hostname"}, "tls_ca_key_file on db1 needs tls_ca_file"),
    ({"tls_min_protocol_version": "TLSv1.1"}, "use TLSv1.2 or TLSv1.3"),
])
def test_tls_settings_are_validated(settings: dict, message: str) -> None:
    entries = three_nodes(**settings)
    assert message in " ".join(tls.problems(entries, Cluster.from_entries(entries)))


def test_client_options_verify_the_server_and_bind_the_password_exchange() -> None:
    assert tls_options("/x/ca.crt") == {
        "sslmode": "verify-full", "sslrootcert": "/x/ca.crt", "channel_binding": "require"}


def test_under_patroni_a_node_certificate_also_names_localhost(tmp_path: Path) -> None:
    """Patroni reads its own server's timeline over a replication connection to localhost,
    verify-full: the name must be in the certificate (the manual engine does not need it)."""
    assert tls.node_names({}, "db1", "10.0.0.1") == ["db1", "10.0.0.1"]
    # the run's engine decides, not ha_engine (unset keeps a running Patroni)
    assert tls.node_names({"tls_extra_names": ["db1.example.net"]}, "db1", "10.0.0.1",
                          "patroni") == ["db1", "10.0.0.1", "db1.example.net", "localhost"]
    patroni = tls.node_material(data(tmp_path), "db1", "10.0.0.1", now=NOW, engine="patroni")
    assert "localhost" in tls.names_of(tls.load_certs(patroni.cert)[0])
