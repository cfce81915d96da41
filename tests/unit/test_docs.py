"""The manual holds together: README.md leads to every page of docs/, every relative link
(and its #anchor) of README.md and docs/*.md points at something that exists, and the
README's command table names every command the CLI registers, with every option."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from pgcluster.cli import build_parser

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
PAGES = sorted((REPO / "docs").glob("*.md"))
DOCUMENTS = [README, *PAGES]

# [text](target): inline links; images and code spans are rare enough here to ignore.
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.DOTALL | re.MULTILINE)


def _text(path: Path) -> str:
    """A document without its fenced code blocks (they hold examples, not links)."""
    return FENCE.sub("", path.read_text())


def _links(path: Path) -> list[str]:
    return LINK.findall(_text(path))


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation but - and _ dropped,
    spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    found: set[str] = set()
    for line in _text(path).splitlines():
        if line.startswith("#"):
            slug = _slug(line.lstrip("#"))
            n, unique = 0, slug
            while unique in found:
                n += 1
                unique = f"{slug}-{n}"
            found.add(unique)
    return found


def test_every_docs_page_is_linked_from_the_readme() -> None:
    linked = {(README.parent / link.split("#")[0]).resolve() for link in _links(README)
              if not link.startswith(("http://", "https://", "#"))}
    missing = [page.name for page in PAGES if page.resolve() not in linked]
    assert not missing, f"README.md does not link to docs/{', docs/'.join(missing)}"


@pytest.mark.parametrize("document", DOCUMENTS, ids=[d.name for d in DOCUMENTS])
def test_every_relative_link_resolves(document: Path) -> None:
    broken = []
    for link in _links(document):
        if link.startswith(("http://", "https://", "mailto:")):
            continue
        target, _, anchor = link.partition("#")
        path = (document.parent / target).resolve() if target else document
        if not path.exists():
            broken.append(f"{link}: no such file")
        elif anchor and path.suffix == ".md" and anchor not in _anchors(path):
            broken.append(f"{link}: no heading #{anchor} in {path.name}")
    assert not broken, f"{document.name}: " + "; ".join(broken)


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _options(parser: argparse.ArgumentParser) -> list[tuple[str, ...]]:
    """Each option of a command and of its own subcommands, as its spellings (-v,
    --verbose); -h aside."""
    found = [tuple(action.option_strings) for action in parser._actions
             if action.option_strings and "--help" not in action.option_strings]
    for sub in _subparsers(parser).values():
        found += [option for option in _options(sub) if option not in found]
    return found


def _mentions(text: str, spelling: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(spelling)}(?![\w-])", text) is not None


def _command_rows() -> list[str]:
    """The first cells of the README's command table (`pgcluster ...`)."""
    section = README.read_text().split("\n## Commands\n", 1)[1].split("\n## ", 1)[0]
    return [line.split(" | ")[0].strip("| `") for line in section.splitlines()
            if line.startswith("| `pgcluster ")]


def test_the_readme_names_every_command_with_its_options() -> None:
    rows = _command_rows()
    problems = []
    for name, parser in _subparsers(build_parser()).items():
        mine = [row.replace("\\|", "|") for row in rows
                if row == f"pgcluster {name}" or row.startswith(f"pgcluster {name} ")]
        if not mine:
            problems.append(f"`pgcluster {name}` has no row")
            continue
        text = " ".join(mine)
        problems += [f"`pgcluster {name}` does not mention {' or '.join(option)}"
                     for option in _options(parser)
                     if not any(_mentions(text, spelling) for spelling in option)]
        words = set(re.findall(r"[\w-]+", text))
        problems += [f"`pgcluster {name} {sub}` is not in the table"
                     for sub in _subparsers(parser) if sub not in words]
    assert not problems, "README.md's command table: " + "; ".join(problems)
