"""The documentation as the tests read it: the README (the front page) and the site's pages in docs/, and the MkDocs
hook that writes the CLI reference (docs/hooks/cli_reference.py), which also walks the command tree for the tests."""
from __future__ import annotations

import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DOCS = REPO / "docs"
# The page of the views and example queries, with the columns each returns.
QUERYING = DOCS / "warehouse" / "index.md"


def site_pages() -> list[Path]:
    return sorted(DOCS.rglob("*.md"))


def text() -> str:
    """Every page's source (the README's too), one after another."""
    return "\n".join(page.read_text(encoding="utf-8") for page in (README, *site_pages()))


def _load_cli_reference():
    spec = importlib.util.spec_from_file_location("cli_reference", DOCS / "hooks" / "cli_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


cli_reference = _load_cli_reference()
