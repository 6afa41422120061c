"""The documentation site covers the package: every public name has an API entry, every
page in mkdocs.yml's nav exists, and CI builds the site (the build itself is `.ci/run`'s
`mkdocs build --strict`)."""

import re
from pathlib import Path

import yaml

import ibvae

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def nav_pages(node) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, list):
        return [p for item in node for p in nav_pages(item)]
    if isinstance(node, dict):
        return [p for value in node.values() for p in nav_pages(value)]
    return []


def test_every_public_name_has_an_api_entry():
    entries = set()
    for page in (DOCS / "api").glob("*.md"):
        entries |= set(re.findall(r"^::: ibvae\.(\w+)\s*$", page.read_text(), flags=re.M))
    missing = sorted(set(ibvae.__all__) - entries)
    assert not missing, f"no API entry for {missing}"


def test_every_nav_page_exists_and_every_page_is_in_the_nav():
    # mkdocs.yml has no python tags, so safe_load reads it
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    pages = nav_pages(config["nav"])
    assert len(pages) == len(set(pages))
    for page in pages:
        assert (DOCS / page).is_file(), page
    on_disk = {str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md")
               if p.parent.parent != DOCS / "results"}  # results/NAME/*.md are included
    assert on_disk - set(pages) == set()


def test_ci_builds_the_site_strictly_and_the_extra_installs_it():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "mkdocs build --strict" in ci and ".[test,ray,docs]" in ci
    setup = (ROOT / "setup.cfg").read_text()
    docs_extra = setup.split("docs =", 1)[1]
    for package in ("mkdocs", "mkdocs-material", "mkdocstrings[python]"):
        assert package in docs_extra, package
    assert "site/" in (ROOT / ".gitignore").read_text().split()
