"""The README's links work on the package index page too, and lead to files that exist."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REPO = "https://github.com/busway/busway"
LINK = re.compile(r"\]\(([^)\s]+)\)")


def links() -> list[str]:
    return LINK.findall((ROOT / "README.md").read_text(encoding="utf-8"))


def test_every_link_is_absolute() -> None:
    """A relative link breaks on the package index, which has no files beside the README."""
    assert [] == [link for link in links() if not link.startswith("https://")]


def names_something_in_the_checkout(link: str) -> bool:
    kind, _, path = link.removeprefix(f"{REPO}/").partition("/main/")
    if not path:  # another branch, or no path at all
        return False
    target = ROOT / path.partition("#")[0]
    return target.is_file() if kind == "blob" else target.is_dir()


def test_links_into_the_repository_name_files_that_exist() -> None:
    """Each ``blob/main/<path>`` names a file of the checkout; ``tree/main/<path>``, a folder."""
    into_repo = [link for link in links() if link.startswith((f"{REPO}/blob/", f"{REPO}/tree/"))]
    assert [] == [link for link in into_repo if not names_something_in_the_checkout(link)]


def test_every_page_of_the_docs_is_listed() -> None:
    """The README's list of documentation leaves out no page of docs/."""
    pages = sorted(f"{REPO}/blob/main/docs/{page.name}" for page in (ROOT / "docs").glob("*.md"))
    assert [] == [page for page in pages if page not in links()]
