"""Where a cluster's passwords come from, on the control machine.

In this order, for a key such as `admin_password`:

1. the environment: PGCLUSTER_ADMIN_PASSWORD (set, even empty, it wins);
2. the inventory's secrets file, `secrets/<inventory>.env` (git-ignored; lines
   `PGCLUSTER_ADMIN_PASSWORD=...`; refused unless only its owner may read it), written by
   hand or generated once with `python -m pgcluster --inventory INVENTORY secrets init`;
3. a default, which only the Docker lab's group data gives (its documented passwords).

Group data files read their passwords through `secret()`. pyinfra executes group data
files as plain Python after the inventory file; inventories call
`pgcluster.control.preflight.check_inventory(globals(), __file__)`, which names the inventory here
first (`use_inventory`), so `secret()` knows which secrets file is meant.

PGCLUSTER_SECRETS_DIR moves the whole directory (default: `secrets/` in the repository),
for example to keep secrets outside the checkout.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Sequence
from pathlib import Path
from secrets import token_urlsafe  # the standard library's, not this module

from pgcluster import REPO_ROOT
from pgcluster.control.tls import private_dir
from pgcluster.errors import ConfigError
from pgcluster.model.cluster import MONITOR_GROUP, HostEntry, is_service_host

# Every password the deploy needs, by group data key. patroni_rest_password guards the
# changes of Patroni's REST API (switchover, restart, configuration): required where
# ha_engine = "patroni" (a cluster found running Patroni without it is refused too:
# pgcluster.steps.live.engine), so Patroni never runs without one. monitor_password is
# what Prometheus gives the exporters (HTTP basic auth over TLS): required where the
# inventory has a `monitor` group, on its hosts and the nodes.
SECRET_KEYS = ("admin_password", "replication_password", "rewind_password", "app_password",
               "patroni_rest_password", "monitor_password", "pgbackrest_s3_key",
               "pgbackrest_s3_key_secret", "pgbackrest_cipher_pass")
# The keys of pgBackRest's S3 repository and its passphrase: for a store of pgcluster's own
# (the `objectstore` group) `secrets init` makes them up like the passwords; for AWS or
# another provider put the keys it gave you in the secrets file. Which hosts need them is
# known once the backup engine is (pgcluster.model.pgbackrest.problems).
PGBACKREST_KEYS = ("pgbackrest_s3_key", "pgbackrest_s3_key_secret", "pgbackrest_cipher_pass")
# The Docker lab's documented passwords (the seed report's, and four of pgcluster's own).
# They are public, so validation refuses them in every inventory that does not set
# allow_lab_default_passwords (only group_data/docker.py does).
LAB_DEFAULTS = {
    "admin_password": "admin123",
    "replication_password": "replica123",
    "rewind_password": "rewind123",
    "app_password": "app123",
    "patroni_rest_password": "patroni123",
    "monitor_password": "monitor123",
    "pgbackrest_s3_key": "pgcluster",
    "pgbackrest_s3_key_secret": "objectstore123",
    "pgbackrest_cipher_pass": "cipher123",
}
GENERATED_BYTES = 24  # secrets.token_urlsafe(24): 32 characters, 192 random bits

_inventory: Path | None = None  # the inventory file being loaded (see use_inventory)


def env_name(key: str) -> str:
    """admin_password -> PGCLUSTER_ADMIN_PASSWORD."""
    return f"PGCLUSTER_{key.upper()}"


def use_inventory(inventory_file: str) -> None:
    """Name the inventory whose secrets the group data that follows reads."""
    global _inventory
    _inventory = Path(inventory_file).resolve()


def inventory_name() -> str:
    return _inventory.stem if _inventory else "default"


def inventory_file() -> str:
    """The inventory being loaded, as the user would type it (for messages)."""
    return shown(_inventory) if _inventory else "INVENTORY"


def secrets_root() -> Path:
    root = os.environ.get("PGCLUSTER_SECRETS_DIR")
    return Path(root).resolve() if root else REPO_ROOT / "secrets"


def secrets_file(inventory: str | None = None) -> Path:
    return secrets_root() / f"{inventory or inventory_name()}.env"


def inventory_dir(*parts: str, inventory: str | None = None) -> Path:
    """A directory of the inventory's generated material, e.g. inventory_dir("tls")."""
    return secrets_root().joinpath(inventory or inventory_name(), *parts)


def shown(path: Path) -> str:
    """A path as the user should type it: relative to the repository when inside it."""
    try:
        return str(path.relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def read_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines (# comments, blank lines and surrounding quotes allowed). A file that
    others may read is refused: its passwords must be treated as leaked."""
    if not path.is_file():
        return {}
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ConfigError(
            f"secrets file {shown(path)} may be read by other users (mode {mode:04o}): "
            f"`chmod 600 {shown(path)}`, and change its passwords if others could read them"
        )
    values = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise ConfigError(f"{shown(path)} line {number}: expected NAME=value")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip().removeprefix("export ").strip()] = value
    return values


def secret(key: str, default: str | None = None) -> str | None:
    """The password for `key`: environment, then the inventory's secrets file, then
    `default` (None: missing, which validation reports before connecting)."""
    name = env_name(key)
    if name in os.environ:
        return os.environ[name]
    return read_file(secrets_file()).get(name) or default


def generate(path: Path, keys: Iterable[str] = SECRET_KEYS) -> list[str]:
    """Add a random password for every key the file lacks; never changes one it has.
    The file and its directory are private (0600, 0700). Returns the keys added."""
    current = read_file(path)
    added = [key for key in keys if not current.get(env_name(key))]
    if not added:
        return []
    private_dir(path.parent)
    lines = path.read_text().splitlines() if path.is_file() else [
        "# pgcluster passwords for this inventory: keep this file private (mode 0600).",
        "# The environment (PGCLUSTER_..._PASSWORD) wins over the values below.",
    ]
    lines += [f"{env_name(key)}={token_urlsafe(GENERATED_BYTES)}" for key in added]
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write("\n".join(lines) + "\n")
    os.replace(tmp, path)
    return added


# ---------------------------------------------------------------------- validation


def _how_to_supply(key: str) -> str:
    return (
        f"export {env_name(key)}=..., or put {env_name(key)}=... in "
        f"{shown(secrets_file())} (mode 0600), or generate every missing "
        f"password once with `python -m pgcluster --inventory {inventory_file()} "
        "secrets init`"
    )


def needs(entry: HostEntry, key: str, monitored: bool = False) -> bool:
    """Whether the host needs this password: Patroni's only where it runs Patroni; the
    exporters' only in a `monitor`ed cluster (`monitored`), on the nodes and the monitors;
    none other on a service host (etcd authenticates its clients by certificate; HAProxy
    has none)."""
    if key in PGBACKREST_KEYS:
        return False  # decided with the backup engine: pgcluster.steps.live.current
    if key == "monitor_password":
        return monitored and (MONITOR_GROUP in entry.groups or not is_service_host(entry))
    if is_service_host(entry):
        return False
    return key != "patroni_rest_password" or entry.data.get("ha_engine") == "patroni"


def missing_message(key: str, names: Sequence[str]) -> str:
    return (f"{key} is not set for {', '.join(names)}: {_how_to_supply(key)}. It is never "
            "given a default outside the Docker lab")


def problems(entries: Sequence[HostEntry]) -> list[str]:
    """Every password present, none of them the lab's public defaults outside the lab, and
    none that would break the files they are written to."""
    found = []
    monitored = any(MONITOR_GROUP in e.groups for e in entries)
    for key in SECRET_KEYS:
        missing = sorted(e.name for e in entries
                         if not e.data.get(key) and needs(e, key, monitored))
        if missing:
            found.append(missing_message(key, missing))
        public = sorted(
            e.name for e in entries
            if e.data.get(key) and not e.data.get("allow_lab_default_passwords")
            and e.data.get(key) in LAB_DEFAULTS.values()
        )
        if public:
            found.append(
                f"{key} for {', '.join(public)} is one of the Docker lab's documented "
                "passwords, which are public and accepted only by the lab inventory: choose "
                f"your own ({_how_to_supply(key)})"
            )
        unusable = sorted(e.name for e in entries if e.data.get(key)
                          and any(ord(c) < 32 or ord(c) == 127 for c in str(e.data[key])))
        if unusable:
            found.append(f"{key} for {', '.join(unusable)} contains control characters "
                         "(a newline, a tab...): they cannot go into .pgpass or Patroni's "
                         "configuration; choose another")
    return found
