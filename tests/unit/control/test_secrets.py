"""Passwords: environment first, then the inventory's private secrets file, then (the lab
only) a documented default; generated once on request; refused when public or missing,
before any host is contacted, with a message that says how to supply them."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from pgcluster.cli import main
from pgcluster.control import secrets
from pgcluster.control.preflight import load_group_data
from pgcluster.errors import ConfigError
from tests.unit.helpers import entry, three_nodes
from tests.unit.inventories import load_inventory

ENV = [secrets.env_name(key) for key in secrets.SECRET_KEYS]


@pytest.fixture
def no_password_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)


def write(path: Path, text: str, mode: int = 0o600) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return path


def test_environment_then_file_then_default(private_secrets_dir: Path,
                                            monkeypatch: pytest.MonkeyPatch,
                                            no_password_env: None) -> None:
    secrets.use_inventory("inventory/production.py")
    assert secrets.secrets_file() == private_secrets_dir / "production.env"
    assert secrets.secret("admin_password") is None
    assert secrets.secret("admin_password", default="lab") == "lab"
    write(private_secrets_dir / "production.env",
          "# comment\n\nexport PGCLUSTER_ADMIN_PASSWORD='from file'\n"
          "PGCLUSTER_APP_PASSWORD=a=b:c\n")
    assert secrets.secret("admin_password", default="lab") == "from file"
    assert secrets.secret("app_password") == "a=b:c"
    monkeypatch.setenv("PGCLUSTER_ADMIN_PASSWORD", "from env")
    assert secrets.secret("admin_password") == "from env"
    monkeypatch.setenv("PGCLUSTER_ADMIN_PASSWORD", "")  # set, even empty, it wins
    assert secrets.secret("admin_password", default="lab") == ""


def test_a_secrets_file_others_may_read_is_refused(private_secrets_dir: Path,
                                                   no_password_env: None) -> None:
    secrets.use_inventory("inventory/production.py")
    write(private_secrets_dir / "production.env", "PGCLUSTER_ADMIN_PASSWORD=x\n", 0o644)
    with pytest.raises(ConfigError, match=r"may be read by other users \(mode 0644\).*"
                                          r"chmod 600"):
        secrets.secret("admin_password")


def test_generate_once_privately_never_replacing_a_password(private_secrets_dir: Path
                                                            ) -> None:
    path = write(private_secrets_dir / "production.env", "PGCLUSTER_ADMIN_PASSWORD=mine\n")
    added = secrets.generate(path)
    assert added == ["replication_password", "rewind_password", "app_password",
                     "patroni_rest_password", "monitor_password", "pgbackrest_s3_key",
                     "pgbackrest_s3_key_secret", "pgbackrest_cipher_pass"]
    values = secrets.read_file(path)
    assert values["PGCLUSTER_ADMIN_PASSWORD"] == "mine"
    assert all(len(values[name]) >= 32 for name in ENV[1:])
    assert len(set(values.values())) == 9
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert secrets.generate(path) == []
    assert secrets.read_file(path) == values


def test_cli_secrets_init_writes_the_inventory_file_without_printing_passwords(
        private_secrets_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--inventory", "inventory/production.py", "secrets", "init"]) == 0
    path = private_secrets_dir / "production.env"
    out = capsys.readouterr().out
    assert ("generated admin_password, replication_password, rewind_password, app_password, "
            "patroni_rest_password") in out
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(private_secrets_dir.stat().st_mode) == 0o700
    for value in secrets.read_file(path).values():
        assert value not in out


def test_lab_group_data_defaults_are_the_documented_ones(no_password_env: None) -> None:
    lab = load_group_data("docker")
    assert {key: lab[key] for key in secrets.SECRET_KEYS} == secrets.LAB_DEFAULTS
    assert lab["allow_lab_default_passwords"] is True
    assert load_group_data("all")["allow_lab_default_passwords"] is False


@pytest.mark.parametrize("key", secrets.SECRET_KEYS)
def test_a_lab_default_is_refused_outside_the_lab(key: str) -> None:
    found = secrets.problems(three_nodes(**{key: secrets.LAB_DEFAULTS[key]}))
    assert len(found) == 1
    assert f"{key} for db1, db2, db3 is one of the Docker lab's documented passwords" in found[0]
    assert f"export {secrets.env_name(key)}=" in found[0] and "secrets init" in found[0]
    assert secrets.problems(three_nodes(**{key: secrets.LAB_DEFAULTS[key]},
                                allow_lab_default_passwords=True)) == []


def test_missing_password_says_every_way_to_supply_it() -> None:
    secrets.use_inventory("inventory/production.py")
    found = secrets.problems(three_nodes(app_password=None))
    assert len(found) == 1
    assert "app_password is not set for db1, db2, db3: export PGCLUSTER_APP_PASSWORD=..." \
        in found[0]
    assert "production.env (mode 0600)" in found[0]
    assert "python -m pgcluster --inventory inventory/production.py secrets init" in found[0]


def test_the_exporters_password_is_needed_only_with_a_monitor_group() -> None:
    secrets.use_inventory("inventory/production.py")
    assert secrets.problems(three_nodes(monitor_password=None)) == []
    watched = [*three_nodes(monitor_password=None),
               entry("mon1", "monitor", node_address="10.0.0.9", monitor_password=None),
               entry("etcd1", "etcd", node_address="10.0.0.8", monitor_password=None)]
    found = secrets.problems(watched)
    assert len(found) == 1
    # The nodes (their exporters) and the monitor (Prometheus); not the etcd-only host.
    assert "monitor_password is not set for db1, db2, db3, mon1:" in found[0]


def test_a_password_with_a_newline_is_refused() -> None:
    found = secrets.problems(three_nodes(replication_password="two\nlines"))
    assert found and "control characters" in found[0]


def test_example_inventory_with_lab_passwords_stops_before_connecting(
        monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in secrets.LAB_DEFAULTS.items():
        monkeypatch.setenv(secrets.env_name(key), value)
    with pytest.raises(ConfigError) as caught:
        load_inventory("inventory/example.py")
    text = str(caught.value)
    assert text.count("one of the Docker lab's documented passwords") == 9
    assert "secrets/example.env" in text or "example.env" in text


def test_example_inventory_reads_its_secrets_file(private_secrets_dir: Path,
                                                  no_password_env: None) -> None:
    assert main(["--inventory", "inventory/example.py", "secrets", "init"]) == 0
    inventory = load_inventory("inventory/example.py")
    values = secrets.read_file(private_secrets_dir / "example.env")
    for host in inventory:
        assert host.data.admin_password == values["PGCLUSTER_ADMIN_PASSWORD"]
        assert host.data.app_password == values["PGCLUSTER_APP_PASSWORD"]
        assert host.data.tls_dir == str(private_secrets_dir / "example" / "tls")
