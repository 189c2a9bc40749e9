"""The documentation site: its API reference names every public name."""

import re
from pathlib import Path

import framework
import framework.testing

ROOT = Path(__file__).resolve().parent.parent
API_REFERENCE = ROOT / "docs" / "reference" / "api.md"
# mkdocstrings renders an object where a line says `::: dotted.name`.
DIRECTIVE = re.compile(r"^::: ([\w.]+)$", re.MULTILINE)


def public_names() -> set[str]:
    return {f"framework.{name}" for name in framework.__all__} | {
        f"framework.testing.{name}" for name in framework.testing.__all__
    }


def documented_names() -> set[str]:
    return set(DIRECTIVE.findall(API_REFERENCE.read_text()))


def test_api_reference_documents_every_public_name() -> None:
    """Every name in framework.__all__ and framework.testing.__all__ has its entry."""
    assert set() == public_names() - documented_names()


def test_api_reference_documents_public_names_only() -> None:
    """The reference shows no internal module path, only names users import."""
    assert set() == documented_names() - public_names()


def test_every_page_is_in_the_navigation() -> None:
    """Each page under docs/ is reachable from the site's navigation."""
    config = (ROOT / "mkdocs.yml").read_text()
    pages = {path.relative_to(ROOT / "docs").as_posix() for path in (ROOT / "docs").rglob("*.md")}
    assert set() == {page for page in pages if f": {page}\n" not in config}
