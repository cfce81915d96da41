"""Every target through the same code: inventories only say how to reach the hosts (and
validate themselves), and the deploy steps never ask what kind of target they run on."""

from __future__ import annotations

import ast
import ipaddress
import re
from pathlib import Path

import pytest

from pgcluster.errors import ConfigError
from tests.conftest import REPO
from tests.unit.inventories import load_inventory

DOCUMENTATION = ipaddress.ip_network("198.51.100.0/24")  # RFC 5737: routes nowhere


@pytest.fixture
def passwords(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGCLUSTER_ADMIN_PASSWORD", "metal-admin")
    monkeypatch.setenv("PGCLUSTER_REPLICATION_PASSWORD", "metal-repl")
    monkeypatch.setenv("PGCLUSTER_REWIND_PASSWORD", "metal-rewind")
    monkeypatch.setenv("PGCLUSTER_APP_PASSWORD", "metal-app")
    monkeypatch.setenv("PGCLUSTER_PATRONI_REST_PASSWORD", "metal-patroni")


def test_bare_metal_example_loads_and_validates(passwords: None) -> None:
    inventory = load_inventory("inventory/example.py")
    hosts = {h.name: h for h in inventory}
    assert sorted(inventory.groups) == ["example", "primary", "readonly", "standby"]
    assert [g for g in hosts["db1"].groups if g != "example"] == ["primary"]
    for host in hosts.values():
        data = host.data
        assert data.ssh_user not in ("root", None) and data._sudo is True
        # Placeholders only: documentation addresses, never a real machine.
        assert ipaddress.ip_address(data.ssh_hostname) in DOCUMENTATION
        assert data.node_address == data.ssh_hostname
        assert data.client_networks == [str(DOCUMENTATION)]
        assert data.admin_password == "metal-admin"  # from the environment
        assert data.max_connections == 100  # group_data/all.py applies


@pytest.mark.parametrize("inventory", ["inventory/example.py", "inventory/vagrant.py"])
def test_no_default_passwords_outside_the_lab(monkeypatch: pytest.MonkeyPatch,
                                              inventory: str) -> None:
    monkeypatch.delenv("PGCLUSTER_ADMIN_PASSWORD", raising=False)
    monkeypatch.delenv("PGCLUSTER_REPLICATION_PASSWORD", raising=False)
    monkeypatch.delenv("PGCLUSTER_REWIND_PASSWORD", raising=False)
    monkeypatch.delenv("PGCLUSTER_APP_PASSWORD", raising=False)
    monkeypatch.delenv("PGCLUSTER_PATRONI_REST_PASSWORD", raising=False)
    monkeypatch.setenv("PGCLUSTER_ALLOW_DOWN", "1")
    with pytest.raises(ConfigError) as caught:
        load_inventory(inventory)
    assert "PGCLUSTER_ADMIN_PASSWORD" in str(caught.value)
    assert "PGCLUSTER_REPLICATION_PASSWORD" in str(caught.value)
    # Patroni's only where ha_engine = "patroni" (tests/unit/control/test_preflight.py).
    assert "PGCLUSTER_PATRONI_REST_PASSWORD" not in str(caught.value)


# The code a cluster deploy runs on the nodes; the lab's own parts (steps/lab.py,
# operations/lab.py, facts/docker.py, pgcluster/lab/) and the inventories are where targets
# may differ.
LAB_CODE = {"pgcluster/steps/lab.py", "pgcluster/operations/lab.py", "pgcluster/facts/docker.py"}
DEPLOY_CODE = ["deploys/cluster.py", "pgcluster/control/templating.py", *(
    path for layer in ("steps", "operations", "facts")
    for path in (str(p.relative_to(REPO)) for p in sorted((REPO / "pgcluster" / layer)
                                                          .glob("*.py")))
    if path not in LAB_CODE)]
TARGET_WORDS = re.compile(r"docker|vagrant|@lab|ssh_|container", re.IGNORECASE)


def _code_words(path: Path) -> list[str]:
    """Names, attributes and string constants of a module, without its docstrings."""
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.FunctionDef | ast.ClassDef)
        and node.body and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    words = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            words.append(node.id)
        elif isinstance(node, ast.Attribute):
            words.append(node.attr)
        elif isinstance(node, ast.alias):
            words.append(node.name)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and id(node) not in docstrings:
            words.append(node.value)
    return words


@pytest.mark.parametrize("module", DEPLOY_CODE)
def test_deploy_code_never_branches_on_the_kind_of_target(module: str) -> None:
    found = [w for w in _code_words(REPO / module) if TARGET_WORDS.search(w)]
    assert not found, f"{module} mentions the kind of target: {found}"
