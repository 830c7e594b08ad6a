"""The documentation: README.md short, every docs page in mkdocs.yml's nav, the generated tables current."""

import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def test_tables_match_the_results_files():
    out = subprocess.run([sys.executable, "scripts/tables.py", "--check"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_table_marker_is_closed_and_known():
    sys.path.insert(0, str(ROOT / "scripts"))
    import tables
    for path in tables.files():
        text = path.read_text()
        opened = re.findall(r"<!-- table:([\w-]+) -->", text)
        assert len(opened) == text.count("<!-- /table -->"), path
        assert set(opened) <= set(tables.TABLES), path


def test_results_pages_have_no_hand_typed_table():
    """Every table of these pages is a results table, so every one stands in a generated block."""
    sys.path.insert(0, str(ROOT / "scripts"))
    import tables
    for page in ("results.md", "speed.md", "sentiment.md"):
        outside = tables.BLOCK.sub("", (ROOT / "docs" / page).read_text())
        typed = [line for line in outside.splitlines() if line.startswith("|")]
        assert not typed, f"docs/{page}: a table outside <!-- table:NAME --> markers: {typed[0]}"


def test_readme_is_short():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 300


def _pages(nav):
    for item in nav:
        for value in (item.values() if isinstance(item, dict) else [item]):
            if isinstance(value, list):
                yield from _pages(value)
            else:
                yield value


def test_every_docs_page_is_in_the_nav():
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    nav = set(_pages(config["nav"]))
    pages = {p.name for p in (ROOT / "docs").glob("*.md")}
    assert pages <= nav, f"not in mkdocs.yml's nav: {sorted(pages - nav)}"
    assert nav <= pages, f"in the nav but missing: {sorted(nav - pages)}"
