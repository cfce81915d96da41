"""The types of pgcluster's settings, checked before any host is touched.

group_data/all.py declares each tunable's type as its annotation (`max_connections:
Int(1, 262143) = 100`); pgcluster.control.preflight reads those annotations into a Schema.
Host data keys that all.py does not list (node_name, node_address, ssh_*...) have their
types in HOST_DATA here. postgresql_settings_extra is checked against PostgreSQL 15's own
table of settings (postgresql15_settings.tsv, read once from the real server).

Values reach shell scripts, cron and PostgreSQL's files as they are (a size is written
`shared_buffers = 128MB`, a path `archive=/backups/wal_archive`), so every type accepts only
what is safe there: the check is the escaping. Each check returns None or a Problem saying
what is wrong, with a value that is right.
"""

from __future__ import annotations

import csv
import difflib
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from pgcluster.model.cluster import NODE_NAME_RULE, is_valid_node_name
from pgcluster.model.sql import is_plain_identifier

# "Nothing here": no example to give, the whole value (not a part), no usable value.
MISSING: Any = object()


@dataclass(frozen=True)
class Problem:
    """What is wrong with (part of) a value: `path` names the part ("[0]", "['work_mem']"),
    `value` is that part (MISSING: the whole value), `example` a right value for it."""

    what: str
    example: Any = MISSING
    path: str = ""
    value: Any = MISSING


class SettingType:
    """One kind of value. check() finds the first problem; problems() every one (composite
    types report each bad part); rule() says in a few words what is accepted."""

    hidden = False  # a secret: messages never show its value

    def check(self, value: Any) -> Problem | None:
        raise NotImplementedError

    def problems(self, value: Any) -> list[Problem]:
        problem = self.check(value)
        return [problem] if problem else []

    def rule(self) -> str:
        raise NotImplementedError

    def example(self) -> Any:
        return MISSING

    def usable(self, value: Any) -> Any:
        """The value later checks may read (MISSING: none of it), so that a wrong value is
        reported once, by its type, and never raises further on."""
        return MISSING if self.problems(value) else value

    def _wrong(self, what: str) -> Problem:
        return Problem(f"{what}: use {self.rule()}", self.example())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.rule()})"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: float) -> str:
    """1.0 as 1, 2147483647.0 as 2147483647, 0.9 as 0.9."""
    return str(int(value)) if value == int(value) else str(value)


def _range_text(low: float | str | None, high: float | str | None, unit: str = "") -> str:
    if low is not None and high is not None:
        return f"from {low}{unit} to {high}{unit}"
    if low is not None:
        return f"of {low}{unit} or more"
    if high is not None:
        return f"of {high}{unit} or less"
    return ""


class Int(SettingType):
    """A whole number (Python int; True/False and "100" are not)."""

    noun = "a whole number"

    def __init__(self, min: int | None = None, max: int | None = None,
                 example: int | None = None) -> None:
        self.min, self.max, self._example = min, max, example

    def rule(self) -> str:
        return f"{self.noun} {_range_text(self.min, self.max)}".strip()

    def example(self) -> Any:
        if self._example is not None:
            return self._example
        return self.min if self.min is not None else 0

    def check(self, value: Any) -> Problem | None:
        if not _is_int(value):
            return self._wrong(f"is not {self.noun}")
        if (self.min is not None and value < self.min) or \
                (self.max is not None and value > self.max):
            return self._wrong("is out of range")
        return None


class Seconds(Int):
    """pgcluster's own timeouts and ages: whole seconds."""

    noun = "a whole number of seconds"


class Real(SettingType):
    """A number, whole or not."""

    def __init__(self, min: float | None = None, max: float | None = None) -> None:
        self.min, self.max = min, max

    def rule(self) -> str:
        return f"a number {_range_text(self.min, self.max)}".strip()

    def example(self) -> Any:
        return self.min if self.min is not None else 0

    def check(self, value: Any) -> Problem | None:
        if not (_is_int(value) or isinstance(value, float)) or value != value:
            return self._wrong("is not a number")
        if (self.min is not None and value < self.min) or \
                (self.max is not None and value > self.max):
            return self._wrong("is out of range")
        return None


class Bool(SettingType):
    """True or False: "yes", "on" and 1 are refused, since a typo there reads as a value."""

    def rule(self) -> str:
        return "True or False (unquoted)"

    def example(self) -> Any:
        return True

    def check(self, value: Any) -> Problem | None:
        return None if isinstance(value, bool) else self._wrong("is not True or False")


class Enum(SettingType):
    """One of a few values, compared with their type (15 is not "15", 1 is not True)."""

    def __init__(self, *choices: Any, message: str | None = None) -> None:
        self.choices = choices
        self.message = message  # what to say instead of "is not one of ..." (why, not what)

    def rule(self) -> str:
        if len(self.choices) == 1:
            return repr(self.choices[0])
        return "one of " + ", ".join(repr(c) for c in self.choices)

    def example(self) -> Any:
        return self.choices[0]

    def check(self, value: Any) -> Problem | None:
        if any(type(value) is type(c) and value == c for c in self.choices):
            return None
        return self._wrong(self.message or "is not one of its values")


MEMORY_UNITS = {"B": 1, "kB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}
TIME_UNITS_MS = {"us": 0.001, "ms": 1, "s": 1000, "min": 60_000, "h": 3_600_000,
                 "d": 86_400_000}
_SIZE = re.compile(r"([0-9]+)(kB|MB|GB|TB)")
_DURATION = re.compile(r"([0-9]+)(ms|s|min|h|d)")


def _unit_bytes(unit: str) -> int:
    """PostgreSQL's base unit of a memory setting ("8kB", "MB") in bytes."""
    match = re.fullmatch(r"([0-9]*)(B|kB|MB|GB|TB)", unit)
    if not match:
        raise ValueError(f"not a memory unit: {unit!r}")
    return int(match.group(1) or 1) * MEMORY_UNITS[match.group(2)]


def human_size(size: int) -> str:
    """Bytes as postgresql.conf writes them: the largest unit that divides them."""
    if size <= 0:
        return str(size)
    for unit in ("TB", "GB", "MB", "kB"):
        if size % MEMORY_UNITS[unit] == 0:
            return f"{size // MEMORY_UNITS[unit]}{unit}"
    return f"{size}B"


class Size(SettingType):
    """A PostgreSQL memory size such as "128MB" (kB, MB, GB, TB; case matters). min and max
    are in the setting's base unit (base, as pg_settings gives it), so they can be copied
    from PostgreSQL's range. A positive number without a unit is refused when unit_required:
    PostgreSQL would read it in the base unit (shared_buffers = 128 is 1MB, not 128MB).
    0 and -1 need no unit (where the range allows them they mean "none" or "no limit")."""

    def __init__(self, min: int, max: int, base: str = "kB", unit_required: bool = True):
        self.min, self.max, self.base, self.unit_required = min, max, base, unit_required

    def _bytes(self, count: int) -> int:
        return count * _unit_bytes(self.base)

    def rule(self) -> str:
        # 0 and -1 are written as they are: "none" or "no limit", in no unit.
        low = human_size(self._bytes(self.min)) if self.min > 0 else str(self.min)
        return (f"a size with a unit, kB, MB, GB or TB, from {low} to "
                f"{human_size(self._bytes(self.max))}")

    def example(self) -> Any:
        return human_size(max(self._bytes(self.min), MEMORY_UNITS["MB"]))

    def check(self, value: Any) -> Problem | None:
        if _is_int(value):
            if value > 0 and self.unit_required:
                return self._wrong(f"has no unit (PostgreSQL would read it as {value} x "
                                   f"{self.base})")
            size = self._bytes(value)
        elif isinstance(value, str):
            match = _SIZE.fullmatch(value)
            if not match:
                if re.fullmatch(r"[0-9]+\s+\S+", value):
                    return self._wrong("has a space between the number and its unit")
                if re.fullmatch(r"[0-9]+(b|kb|mb|gb|tb)", value, re.IGNORECASE):
                    return self._wrong("has a unit PostgreSQL does not know (case matters)")
                return self._wrong("is not a size")
            size = int(match.group(1)) * MEMORY_UNITS[match.group(2)]
        else:
            return self._wrong("is not a size")
        if not self._bytes(self.min) <= size <= self._bytes(self.max):
            return self._wrong("is out of range")
        return None


class Duration(SettingType):
    """A PostgreSQL time setting: a whole number in the setting's base unit, or a string
    with a unit, "60s", "5min", "500ms" (ms, s, min, h, d)."""

    def __init__(self, min: int, max: int, base: str = "s") -> None:
        self.min, self.max, self.base = min, max, base

    def rule(self) -> str:
        return (f"a duration: whole {self.base} or a string with ms, s, min, h or d "
                f"(e.g. '5min'), {_range_text(self.min, self.max, self.base)}")

    def example(self) -> Any:
        return max(self.min, 60 if self.base == "s" else 1)

    def check(self, value: Any) -> Problem | None:
        if _is_int(value):
            amount: float = value
        elif isinstance(value, str) and (match := _DURATION.fullmatch(value)):
            amount = int(match.group(1)) * TIME_UNITS_MS[match.group(2)] \
                / TIME_UNITS_MS[self.base]
        else:
            return self._wrong("is not a duration")
        if not self.min <= amount <= self.max:
            return self._wrong("is out of range")
        return None


def duration_seconds(value: Any, base: str = "s") -> float:
    """A checked Duration's value in seconds: a whole number is in `base`, a string has
    its unit ("15d", "4h", "500ms")."""
    if _is_int(value):
        return value * TIME_UNITS_MS[base] / 1000
    match = _DURATION.fullmatch(str(value))
    if not match:
        raise ValueError(f"{value!r} is not a duration")
    return int(match.group(1)) * TIME_UNITS_MS[match.group(2)] / 1000


# crontab(5): minute hour day-of-month month day-of-week, with these names.
CRON_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12),
               ("day of week", 0, 7))
CRON_NAMES = {
    "month": ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov",
              "dec"),
    "day of week": ("sun", "mon", "tue", "wed", "thu", "fri", "sat"),
}
CRON_MACROS = ("@hourly", "@daily", "@midnight", "@weekly", "@monthly", "@yearly",
               "@annually")


class Cron(SettingType):
    """A cron schedule of five fields (numbers in range, *, lists, ranges, steps, month and
    day names), one of cron's @daily-like shorthands, or "" for a job that never runs."""

    def rule(self) -> str:
        return ("a cron schedule, minute hour day-of-month month day-of-week (e.g. '30 2 * * *',"
                " '0 2 * * sun', '*/15 8-18 * * 1-5'), or '' to disable the job")

    def example(self) -> Any:
        return "0 2 * * *"

    def check(self, value: Any) -> Problem | None:
        if not isinstance(value, str):
            return self._wrong("is not a cron schedule (a string)")
        if value == "" or value in CRON_MACROS:
            return None
        bad = sorted(set(re.sub(r"[0-9A-Za-z*/, -]", "", value)))
        if bad:
            return self._wrong(f"contains {''.join(bad)!r}: a schedule has only digits, "
                               "names, * / , - and spaces")
        fields = value.split()
        if len(fields) != 5:
            return self._wrong(f"has {len(fields)} fields, not 5")
        for text, (name, low, high) in zip(fields, CRON_FIELDS, strict=True):
            problem = _cron_field(text, name, low, high)
            if problem:
                return self._wrong(problem)
        return None


def _cron_field(text: str, name: str, low: int, high: int) -> str | None:
    names = CRON_NAMES.get(name, ())
    if text.lower() in names:
        return None
    for item in text.split(","):
        match = re.fullmatch(r"(\*|([0-9]+)(?:-([0-9]+))?)(?:/([0-9]+))?", item)
        if not match:
            if any(n in item.lower() for n in names):
                return (f"has a name in a list or range, {text!r} ({name}), which cron does "
                        "not allow (numbers it does)")
            return (f"has {item!r} as its {name}, which is not a number, *, a range a-b or "
                    "a step */n")
        first, last, step = match.group(2), match.group(3), match.group(4)
        for number in (first, last):
            if number is not None and not low <= int(number) <= high:
                return f"has the {name} {int(number)}, out of range ({low}-{high})"
        if first is not None and last is not None and int(first) > int(last):
            return f"has the {name} range {item!r}, which runs backwards"
        if step is not None and not 1 <= int(step) <= high:
            return f"has the {name} step {step}, not from 1 to {high}"
    return None


class Identifier(SettingType):
    """A SQL name that needs no quoting (database, schema and role names)."""

    def rule(self) -> str:
        return ("a plain SQL identifier: lower-case letters, digits and _, starting with a "
                "letter or _, at most 63 characters")

    def example(self) -> Any:
        return "app"

    def check(self, value: Any) -> Problem | None:
        if isinstance(value, str) and is_plain_identifier(value):
            return None
        return self._wrong("is not a plain SQL identifier")


class NodeName(SettingType):
    """A node's name: cluster_name, application_name and, with - turned into _, its
    replication slot's name."""

    def rule(self) -> str:
        return NODE_NAME_RULE

    def example(self) -> Any:
        return "db2"

    def check(self, value: Any) -> Problem | None:
        if isinstance(value, str) and is_valid_node_name(value):
            return None
        return self._wrong("is not a valid node name (a node's `node_name` also gives its "
                           "replication slot name)")


_DNS_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DNS_NAME = re.compile(rf"(?=.{{1,253}}$){_DNS_LABEL}(?:\.{_DNS_LABEL})*")


def is_host(value: str) -> bool:
    """An IP address or a DNS host name (whose last label is not all digits: 10.0.0.300 is
    a mistyped address, not a name)."""
    try:
        ipaddress.ip_address(value)
        return "%" not in value  # an IPv6 scope (fe80::1%eth0) names an interface of one host
    except ValueError:
        pass
    return bool(_DNS_NAME.fullmatch(value)) and not value.rsplit(".", 1)[-1].isdigit()


class Host(SettingType):
    """One host, as other nodes, certificates and pg_hba.conf name it."""

    def rule(self) -> str:
        return ("one host: an IP address (e.g. '10.0.1.5') or a DNS host name of letters, "
                "digits, - and . (e.g. 'db1.example.net')")

    def example(self) -> Any:
        return "10.0.1.5"

    def check(self, value: Any) -> Problem | None:
        if not isinstance(value, str):
            return self._wrong("is not a host name or address (a string)")
        if is_host(value):
            return None
        if "/" in value:
            return self._wrong("is a network, not one host")
        return self._wrong("is neither an IP address nor a DNS host name")


class Cidr(SettingType):
    """A network in CIDR notation, as pg_hba.conf takes it (the mask is required there)."""

    def rule(self) -> str:
        return "a network in CIDR notation (e.g. '10.0.1.0/24', or '10.0.1.5/32' for one host)"

    def example(self) -> Any:
        return "10.0.1.0/24"

    def check(self, value: Any) -> Problem | None:
        if not isinstance(value, str) or "/" not in value:
            return self._wrong("is not a network in CIDR notation")
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError:
            return self._wrong("is not a network in CIDR notation")
        return None


# A path reaches shell scripts and cron unquoted: letters, digits and . _ - + @ / only.
PATH_CHARACTERS = "letters, digits, . _ - + @ and /"
_PATH = re.compile(r"[A-Za-z0-9._+@/-]+")


class AbsolutePath(SettingType):
    """An absolute path without whitespace, quotes or other shell metacharacters, and
    without .. (which would leave the directory it names). home=True also accepts ~/...,
    for files on the control machine (SSH keys, your own CA)."""

    def __init__(self, home: bool = False) -> None:
        self.home = home

    def rule(self) -> str:
        start = "/ (or ~/)" if self.home else "/"
        return f"an absolute path: starting with {start}, of {PATH_CHARACTERS}, without .."

    def example(self) -> Any:
        return "/srv/pgcluster"

    def check(self, value: Any) -> Problem | None:
        if not isinstance(value, str):
            return self._wrong("is not a path (a string)")
        rest = value[1:] if self.home and value.startswith("~/") else value
        if not rest.startswith("/"):
            return self._wrong("is not an absolute path")
        bad = sorted(set(_PATH.sub("", rest)))
        if bad:
            return self._wrong(f"contains {''.join(bad)!r}")
        if ".." in rest.split("/"):
            return self._wrong("contains ..")
        return None


class Token(SettingType):
    """A short word of a fixed alphabet, written into commands and files as it is (a time
    zone, a locale, a user name): `pattern` is the whole of what is accepted, `what` says
    it as "a noun: details"."""

    def __init__(self, pattern: str, what: str, example: str) -> None:
        self.pattern, self.what, self._example = re.compile(pattern), what, example

    def rule(self) -> str:
        return self.what

    def example(self) -> Any:
        return self._example

    def check(self, value: Any) -> Problem | None:
        if isinstance(value, str) and self.pattern.fullmatch(value):
            return None
        return self._wrong(f"is not {self.what.split(':')[0]}")


class Text(SettingType):
    """Free text, always quoted where it goes (passwords, checked in
    pgcluster.control.secrets; the sample users' names)."""

    def rule(self) -> str:
        return "text (a quoted string)"

    def example(self) -> Any:
        return "text"

    def check(self, value: Any) -> Problem | None:
        return None if isinstance(value, str) else self._wrong("is not text")

    def usable(self, value: Any) -> Any:
        return value  # only ever quoted, or checked where it is used: nothing can raise


class Secret(Text):
    """A password: text whose value no message shows (pgcluster.control.secrets checks that
    it is set, not a lab default and free of control characters)."""

    hidden = True

    def rule(self) -> str:
        return "a password (text), from the environment or the inventory's secrets file"


class Optional(SettingType):
    """None (not set), or a value of the inner type."""

    def __init__(self, inner: SettingType) -> None:
        self.inner = inner
        self.hidden = inner.hidden

    def rule(self) -> str:
        return f"{self.inner.rule()}, or None"

    def example(self) -> Any:
        return self.inner.example()

    def problems(self, value: Any) -> list[Problem]:
        return [] if value is None else self.inner.problems(value)

    def usable(self, value: Any) -> Any:
        return None if value is None else self.inner.usable(value)

    def check(self, value: Any) -> Problem | None:
        return next(iter(self.problems(value)), None)


class ListOf(SettingType):
    """A list (or tuple) of values of one type; each bad item is reported by its index."""

    def __init__(self, inner: SettingType) -> None:
        self.inner = inner

    def rule(self) -> str:
        return f"a list of: {self.inner.rule()}"

    def example(self) -> Any:
        inner = self.inner.example()
        return [] if inner is MISSING else [inner]

    def problems(self, value: Any) -> list[Problem]:
        if not isinstance(value, list | tuple):
            return [self._wrong("is not a list")]
        found = []
        for index, item in enumerate(value):
            for problem in self.inner.problems(item):
                found.append(Problem(problem.what, problem.example,
                                     f"[{index}]{problem.path}",
                                     item if problem.value is MISSING else problem.value))
        return found

    def check(self, value: Any) -> Problem | None:
        return next(iter(self.problems(value)), None)


class Dict(SettingType):
    """A mapping with exactly these keys, each of its own type."""

    def __init__(self, **fields: SettingType) -> None:
        self.fields = fields

    def rule(self) -> str:
        return "a dict with the keys " + ", ".join(self.fields)

    def example(self) -> Any:
        return {key: kind.example() for key, kind in self.fields.items()}

    def problems(self, value: Any) -> list[Problem]:
        if not isinstance(value, Mapping):
            return [self._wrong("is not a dict")]
        if set(value) != set(self.fields):
            return [self._wrong(f"has the keys {', '.join(map(repr, value))}")]
        found = []
        for key, kind in self.fields.items():
            for problem in kind.problems(value[key]):
                found.append(Problem(problem.what, problem.example,
                                     f"[{key!r}]{problem.path}",
                                     value[key] if problem.value is MISSING else problem.value))
        return found

    def check(self, value: Any) -> Problem | None:
        return next(iter(self.problems(value)), None)


# ---------------------------------------------------------------- PostgreSQL's settings

SETTINGS_TABLE = Path(__file__).with_name("postgresql15_settings.tsv")
BOOL_WORDS = ("on", "off", "true", "false", "yes", "no", "1", "0")
# Text settings are quoted by pgcluster (pgvalue); these are refused all the same, so that
# no data value can end a quoted string, start a command or a new line in any file.
UNSAFE_TEXT = re.compile(r"""['"`\\;]|\$\(|\$\{|[\x00-\x1f\x7f]""")


@dataclass(frozen=True)
class PgSetting:
    """One row of pg_settings: what PostgreSQL 15 accepts for a setting."""

    name: str
    vartype: str  # bool, integer, real, enum, string
    unit: str = ""  # the base unit: 8kB, kB, MB, B, ms, s, min, or none
    min: float | None = None
    max: float | None = None
    enumvals: tuple[str, ...] = ()
    boot: str = ""
    context: str = ""  # internal settings cannot be set at all

    def amount(self, value: Any) -> float | None:
        """A number or a string with a unit, in this setting's base unit (None: neither)."""
        if _is_int(value) or (self.vartype in ("real", "custom") and isinstance(value, float)):
            return value
        if not isinstance(value, str):
            return None
        number = r"-?[0-9]+" if self.vartype == "integer" else r"-?[0-9]+(?:\.[0-9]+)?"
        match = re.fullmatch(rf"({number})([A-Za-z]*)", value)
        if not match:
            return None
        amount, unit = float(match.group(1)), match.group(2)
        if not unit:
            return amount
        if self.unit in TIME_UNITS_MS and unit in TIME_UNITS_MS:
            return amount * TIME_UNITS_MS[unit] / TIME_UNITS_MS[self.unit]
        if self.unit.endswith("B") and unit in MEMORY_UNITS:
            return amount * MEMORY_UNITS[unit] / _unit_bytes(self.unit)
        return None

    def example(self) -> Any:
        if self.vartype == "bool":
            return self.boot == "on"
        if self.vartype == "integer":
            boot = int(self.boot)
            if self.unit and self.unit[-1] == "B" and boot > 0:
                return human_size(boot * _unit_bytes(self.unit))
            return boot
        if self.vartype == "real":
            return float(self.boot)
        return self.boot or MISSING  # an empty default says nothing

    def rule(self) -> str:
        unit = self.unit if self.unit else ""
        if self.vartype == "bool":
            return "on or off (True or False)"
        if self.vartype in ("integer", "real"):
            kind = "a whole number" if self.vartype == "integer" else "a number"
            units = ""
            if self.unit and self.unit[-1] == "B":
                units = " (or a string with kB, MB, GB or TB)"
            elif self.unit:
                units = " (or a string with ms, s, min, h or d)"
            assert self.min is not None and self.max is not None
            of = f" of {unit}{units}," if unit else ""
            return f"{kind}{of} {_range_text(_number(self.min), _number(self.max))}"
        if self.vartype == "enum":
            return "one of " + ", ".join(repr(v) for v in self.enumvals)
        return ("text without quotes, backslashes, backticks, ;, $( or ${ and control "
                "characters")

    def check(self, value: Any) -> Problem | None:
        def wrong(what: str) -> Problem:
            return Problem(f"{what}: PostgreSQL 15 takes {self.rule()}", self.example())

        if self.vartype == "bool":
            ok = isinstance(value, bool) or (isinstance(value, str)
                                             and value.lower() in BOOL_WORDS)
            return None if ok else wrong("is not on or off")
        if self.vartype in ("integer", "real"):
            amount = None if isinstance(value, bool) else self.amount(value)
            if amount is None:
                return wrong("is not a number" if self.vartype == "real" or not self.unit
                             else "is not a number or a number with a unit")
            assert self.min is not None and self.max is not None
            return None if self.min <= amount <= self.max else wrong("is out of range")
        if self.vartype == "enum":
            if isinstance(value, bool):
                value = "on" if value else "off"
            ok = isinstance(value, str) and value.lower() in {v.lower() for v in self.enumvals}
            return None if ok else wrong("is not one of its values")
        if self.vartype == "custom" and (isinstance(value, bool) or self.amount(value)
                                         is not None):
            return None
        if not isinstance(value, str):
            return wrong("is not text")
        if UNSAFE_TEXT.search(value):
            return Problem("contains a character pgcluster refuses in settings' text (quotes, "
                           "backslashes, backticks, ;, $( or ${, control characters)",
                           self.example())
        return None


@cache
def postgresql_settings() -> dict[str, PgSetting]:
    """PostgreSQL 15's settings by name, from the table read off the real server."""
    lines = [line for line in SETTINGS_TABLE.read_text().splitlines()
             if not line.startswith("#")]
    table = {}
    for row in csv.DictReader(lines, delimiter="\t", quoting=csv.QUOTE_NONE):
        table[row["name"]] = PgSetting(
            name=row["name"], vartype=row["vartype"], unit=row["unit"],
            min=float(row["min_val"]) if row["min_val"] else None,
            max=float(row["max_val"]) if row["max_val"] else None,
            enumvals=tuple(v for v in row["enumvals"].split(",") if v),
            boot=row["boot_val"], context=row["context"])
    return table


# PostgreSQL settings that pgcluster renders from group data, by group data key: these go
# through the key's own type, which must agree with PostgreSQL's range (a unit test checks).
RENDERED = {
    "postgresql_port": "port",
    "listen_addresses": "listen_addresses",
    "max_connections": "max_connections",
    "shared_buffers": "shared_buffers",
    "timezone": "TimeZone",
    "wal_level": "wal_level",
    "max_wal_senders": "max_wal_senders",
    "max_replication_slots": "max_replication_slots",
    "wal_keep_size": "wal_keep_size",
    "max_slot_wal_keep_size": "max_slot_wal_keep_size",
    "hot_standby": "hot_standby",
    "hot_standby_feedback": "hot_standby_feedback",
    "wal_receiver_timeout": "wal_receiver_timeout",
    "wal_log_hints": "wal_log_hints",
    "synchronous_commit": "synchronous_commit",
    "archive_mode": "archive_mode",
    "archive_timeout": "archive_timeout",
    "tls_min_protocol_version": "ssl_min_protocol_version",
}
# Settings pgcluster writes itself, and where to change them instead. postgresql.conf takes
# the last value of a setting, so one of these in postgresql_settings_extra would silently
# undo what the deploy relies on.
MANAGED = {
    **{setting.lower(): f"set {key} in group data instead" for key, setting in RENDERED.items()},
    "data_directory": "Debian's layout decides it (postgresql_version, postgresql_cluster)",
    "config_file": "Debian's layout decides it (postgresql_version, postgresql_cluster)",
    "hba_file": "pgcluster renders pg_hba.conf (client_networks in group data)",
    "ident_file": "pgcluster renders pg_ident.conf",
    "external_pid_file": "the postgresql@ service expects Debian's pid file",
    "unix_socket_directories": "pgcluster's scripts connect through /var/run/postgresql",
    "password_encryption": "pgcluster always uses scram-sha-256",
    "archive_command": "pgcluster's archive-wal script archives into wal_archive_dir: set "
                       "wal_archive_dir (and archive_mode) in group data instead",
    "archive_library": "pgcluster archives with archive_command into wal_archive_dir",
    "restore_command": "set restore_from_archive (and wal_archive_dir) in group data instead",
    "archive_cleanup_command": "pgcluster takes no shell commands from data (backup "
                               "retention: backup_retention_days)",
    "recovery_end_command": "pgcluster takes no shell commands from data",
    "ssl_passphrase_command": "pgcluster takes no shell commands from data",
    "primary_conninfo": "pgcluster writes it on replicas (node_address, postgresql_port, "
                        "replication_user)",
    "primary_slot_name": "pgcluster writes it on replicas (from node_name)",
    "synchronous_standby_names": "set synchronous_standbys in group data instead",
    "cluster_name": "it is the node's name: set node_name in host data instead",
    "log_timezone": "set timezone in group data instead",
    "data_checksums": "set data_checksums in group data instead (initdb --data-checksums)",
}
MANAGED_PREFIXES = {
    "ssl": "pgcluster configures TLS: use the tls_* settings in group data (tls_dir, "
           "tls_ca_file, tls_min_protocol_version...)",
    "recovery_target": "`python -m pgcluster restore` sets the recovery target",
}
_SETTING_NAME = re.compile(r"[a-z_][a-z0-9_]*")
# An extension's settings (pg_stat_statements.max): PostgreSQL accepts any such name.
_CUSTOM_NAME = re.compile(r"[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*")
_CUSTOM = PgSetting("custom", "custom")  # a number, on/off or text: PostgreSQL keeps it as text


def managed_reason(name: str) -> str | None:
    """Why a setting may not be set through postgresql_settings_extra (None: it may)."""
    lowered = name.lower()
    if lowered in MANAGED:
        return MANAGED[lowered]
    return next((why for prefix, why in MANAGED_PREFIXES.items()
                 if lowered.startswith(prefix)), None)


def suggestion(name: str, known: Any) -> str:
    """ (did you mean 'x'?) for a mistyped name, or nothing."""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.75)
    return f" (did you mean {close[0]!r}?)" if close else ""


class PostgresSettings(SettingType):
    """postgresql_settings_extra: PostgreSQL 15 setting names (or an extension's
    prefix.name) to values of the setting's own type; not those pgcluster manages."""

    def rule(self) -> str:
        return "a dict of PostgreSQL 15 setting name to value, e.g. {'work_mem': '64MB'}"

    def example(self) -> Any:
        return {"work_mem": "64MB"}

    def problems(self, value: Any) -> list[Problem]:
        if not isinstance(value, Mapping):
            return [self._wrong("is not a dict")]
        table = postgresql_settings()
        lowered = {n.lower(): n for n in table}
        found = []
        for name, setting_value in value.items():
            path = f"[{name!r}]"
            if not isinstance(name, str) or not (_SETTING_NAME.fullmatch(name.lower())
                                                 or _CUSTOM_NAME.fullmatch(name)):
                found.append(Problem("is not a setting name (lower-case letters, digits and "
                                     "_, or an extension's prefix.name)", path=path,
                                     value=setting_value))
                continue
            reason = managed_reason(name)
            setting = _CUSTOM if "." in name else table.get(lowered.get(name.lower(), ""))
            if reason:
                found.append(Problem(f"is a setting pgcluster manages: {reason}", path=path,
                                     value=setting_value))
            elif setting is None:
                found.append(Problem("is not a PostgreSQL 15 setting"
                                     + suggestion(name, table), path=path,
                                     value=setting_value))
            elif setting.context == "internal":
                found.append(Problem("is read-only: PostgreSQL fixes it when it is built or "
                                     "when initdb runs", path=path, value=setting_value))
            elif problem := setting.check(setting_value):
                found.append(Problem(problem.what, problem.example, path, setting_value))
        return found

    def usable(self, value: Any) -> Any:
        if not isinstance(value, Mapping):
            return MISSING
        return {name: setting_value for name, setting_value in value.items()
                if not self.problems({name: setting_value})}

    def check(self, value: Any) -> Problem | None:
        return next(iter(self.problems(value)), None)


# ------------------------------------------------------------------------- The schema

# Names group_data/all.py declares its types with (imported there, so not group data).
WEEK = 7 * 24 * 3600  # the longest wait or age pgcluster's own timeouts take, in seconds
CLUSTER_NAME = Token(r"[a-z][a-z0-9_]{0,62}",
                     "a Debian cluster name: a lower-case letter, then lower-case letters, "
                     "digits and _ (e.g. 'main')", "main")
LISTEN_ADDRESSES = Token(r"(\*|[A-Za-z0-9.:-]+)(, ?(\*|[A-Za-z0-9.:-]+))*",
                         "a list of listen addresses: '*', or host names and addresses "
                         "separated by commas (e.g. '10.0.1.5, localhost')", "*")
TIME_ZONE = Token(r"[A-Za-z][A-Za-z0-9_+/-]{0,63}",
                  "a time zone name: letters, digits and _ + - / (e.g. 'UTC', "
                  "'Europe/Madrid')", "UTC")
ENCODING = Token(r"[A-Za-z][A-Za-z0-9_]{0,31}",
                 "an encoding name: letters, digits and _ (e.g. 'UTF8')", "UTF8")
LOCALE = Token(r"[A-Za-z][A-Za-z0-9_.@-]{0,63}",
               "a locale name: letters, digits and _ . @ - (e.g. 'C.UTF-8', 'es_ES.UTF-8')",
               "C.UTF-8")
# Patroni's scope is also PostgreSQL's cluster_name (Patroni sets it) and part of every DCS
# key: one plain word keeps it valid, unquoted, in all three.
PATRONI_SCOPE = Token(r"[a-z][a-z0-9_-]{0,62}",
                      "a Patroni cluster name: a lower-case letter, then lower-case letters, "
                      "digits, _ and - (e.g. 'pgcluster')", "pgcluster")
DCS_NAMESPACE = Token(r"/(?:[a-z0-9_-]+/)*",
                      "a DCS key prefix: /, then lower-case names of letters, digits, _ and -, "
                      "each followed by / (e.g. '/pgcluster/')", "/pgcluster/")
# HTTP basic auth splits user:password at the first colon: none in the user name.
HTTP_USER = Token(r"[A-Za-z0-9_.-]{1,64}",
                  "a user name for HTTP basic auth: letters, digits, _ . and - (e.g. 'patroni')",
                  "patroni")
# A receiver's URL goes into alertmanager.yml quoted: no quote, backslash or space in it.
WEBHOOK_URL = Token(r"https?://[A-Za-z0-9.-]+(?::[0-9]{1,5})?(?:/[A-Za-z0-9._~/?#@!$&()*+,;=%:-]*)?",
                    "a URL: http:// or https://, a host, an optional :port and path "
                    "(e.g. 'https://alerts.example.com/hook')", "https://alerts.example.com/hook")
# S3's bucket naming rules (the part every provider accepts), and a region name.
S3_BUCKET = Token(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]",
                  "an S3 bucket name: 3 to 63 lower-case letters, digits, . and -, starting "
                  "and ending with a letter or digit (e.g. 'pgcluster-backups')", "pgbackrest")
S3_REGION = Token(r"[a-z0-9][a-z0-9-]{0,62}",
                  "an S3 region: lower-case letters, digits and - (e.g. 'eu-west-1')",
                  "us-east-1")

USER_NAME = Token(r"[a-z_][a-z0-9_-]{0,31}",
                  "a login name: lower-case letters, digits, _ and -, at most 32", "deploy")
# Host data keys that group_data/all.py does not list: the inventory's own (node_name,
# node_address...) and pyinfra's that pgcluster relies on. Other keys are pyinfra's or
# a connector's, and are let through.
HOST_DATA: dict[str, SettingType] = {
    "node_name": NodeName(),
    "node_address": Host(),
    "node_role": Optional(Text()),  # which roles exist is the role check's to say
    "published_port": Optional(Int(1, 65535, example=5432)),
    "ssh_hostname": Host(),
    "ssh_port": Int(1, 65535, example=22),
    "ssh_user": USER_NAME,
    "ssh_key": Optional(AbsolutePath(home=True)),
    "ssh_known_hosts_file": Optional(AbsolutePath(home=True)),
    "ssh_config_file": Optional(AbsolutePath(home=True)),
    "ssh_password": Optional(Text()),
    "ssh_key_password": Optional(Text()),
    "ssh_strict_host_key_checking": Optional(Enum("yes", "no", "off", "accept-new", "ask")),
    "ssh_allow_agent": Bool(),
    "ssh_look_for_keys": Bool(),
    "ssh_forward_agent": Bool(),
    "ssh_connect_retries": Int(0, 100),
    "_sudo": Bool(),
    "_sudo_user": Optional(USER_NAME),
    "_sudo_password": Optional(Text()),
    "docker_identifier": Token(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}",
                               "a container name: letters, digits, _ . and -",
                               "postgresql-primary"),
}


@dataclass(frozen=True)
class Schema:
    """Every typed key: group_data/all.py's annotations (`types`, with all.py's values as
    `defaults`), then HOST_DATA."""

    types: Mapping[str, SettingType]
    defaults: Mapping[str, Any] = field(default_factory=dict)

    def type_of(self, key: str) -> SettingType | None:
        return self.types.get(key) or HOST_DATA.get(key)

    def known(self) -> set[str]:
        return set(self.types) | set(HOST_DATA)

    def example(self, key: str, problem: Problem) -> Any:
        """A right value for the message: all.py's own when it is right and says something
        (not None, [] or ''), else the type's; never a secret's."""
        kind = self.type_of(key)
        if problem.path == "" and key in self.defaults and kind and not kind.hidden:
            default = self.defaults[key]
            if default not in (None, "", [], {}) and not kind.problems(default):
                return default
        return MISSING if kind and kind.hidden else problem.example

    def fallback(self, key: str) -> Any:
        """What a wrong value is replaced by so that later checks can run: all.py's value
        when it is right, else MISSING (the key is dropped)."""
        kind = self.type_of(key)
        if key in self.defaults and kind and not kind.problems(self.defaults[key]):
            return self.defaults[key]
        return MISSING


def schema_from_annotations(annotations: Mapping[str, Any],
                            values: Mapping[str, Any]) -> Schema:
    """The schema of a group data file's annotations (only SettingType ones count)."""
    types = {key: kind for key, kind in annotations.items() if isinstance(kind, SettingType)}
    return Schema(types, {key: values[key] for key in types if key in values})


# Every type and rule a group data value can have (docs/configuration.md lists them).
TYPES = (Int, Seconds, Real, Bool, Enum, Size, Duration, Cron, Identifier, NodeName, Host,
         Cidr, AbsolutePath, Token, Text, Secret, Optional, ListOf, Dict, PostgresSettings)
