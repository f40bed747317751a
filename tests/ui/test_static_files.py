"""The UI's files as shipped: every module a page imports is there, and nothing loads from elsewhere."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from plinth.ui import STATIC

IMPORT = re.compile(r"""(?:import|from)\s*(?:[\w{}\s,*]+from\s*)?["'](\.{1,2}/[^"']+)["']""")
OWN_FILES = sorted(
    p for p in STATIC.rglob("*") if p.suffix in (".js", ".css", ".html") and "vendor" not in p.parts
)


@pytest.mark.parametrize(
    "module", [p for p in STATIC.rglob("*.js")], ids=lambda p: str(p.relative_to(STATIC))
)
def test_every_relative_import_resolves_to_a_shipped_file(module: Path) -> None:
    for target in IMPORT.findall(module.read_text()):
        assert (module.parent / target).resolve().is_file(), (
            f"{module.name} imports {target}, which is missing"
        )


@pytest.mark.parametrize("path", OWN_FILES, ids=lambda p: str(p.relative_to(STATIC)))
def test_nothing_is_loaded_from_another_origin(path: Path) -> None:
    text = path.read_text()
    assert not re.search(
        r"""(src|href)=["']https?://|@import\s+url\(["']?https?://|from\s+["']https?://""", text
    )
    assert "<script>" not in text and "eval(" not in text  # the policy allows neither


def test_the_page_loads_only_the_packaged_entry_points() -> None:
    page = (STATIC / "index.html").read_text()
    for reference in re.findall(r"""(?:src|href)=["'](/static/[^"']+)["']""", page):
        assert (STATIC / reference.removeprefix("/static/")).is_file(), reference


def test_the_app_imports_every_page() -> None:
    imported = set(IMPORT.findall((STATIC / "app.js").read_text()))
    pages = {f"./pages/{p.name}" for p in (STATIC / "pages").glob("*.js")}
    assert pages <= imported
