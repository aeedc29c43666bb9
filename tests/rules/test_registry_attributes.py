"""Every registry attribute the hub reads is in one table, and docs/registry.md shows it."""

import re
from pathlib import Path

from hub.devices.attributes import BY_NAME, RULE_OVERRIDE_PREFIX, markdown_table

ROOT = Path(__file__).resolve().parents[2]
HUB = ROOT / "hub"
TABLE_MODULE = HUB / "devices" / "attributes.py"
# How code reads an attribute: Python mappings and PostgreSQL jsonb operators.
READS = (
    re.compile(r"""\b(?:attributes|attrs)\s*\.get\(\s*["']([A-Za-z0-9_]+)["']"""),
    re.compile(r"""\b(?:attributes|attrs)\s*\[\s*["']([A-Za-z0-9_]+)["']\s*\]"""),
    re.compile(r"""\battributes\s*->>?\s*'([A-Za-z0-9_]+)'"""),
    re.compile(r"""\(\s*attributes\s*,\s*["']([A-Za-z0-9_]+)["']\s*\)"""),
)


def attributes_read() -> dict[str, set[str]]:
    """Attribute name -> files in hub/ that read it."""
    found: dict[str, set[str]] = {}
    for path in HUB.rglob("*.py"):
        if path == TABLE_MODULE:
            continue
        text = path.read_text(encoding="utf-8")
        for pattern in READS:
            for name in pattern.findall(text):
                found.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    return found


def test_every_attribute_the_hub_reads_is_in_the_table() -> None:
    read = attributes_read()
    assert "rated_power_w" in read  # the scan finds what it is meant to find
    overrides = RULE_OVERRIDE_PREFIX.rstrip(".")
    missing = {name: sorted(files) for name, files in read.items() if name not in BY_NAME}
    missing.pop(overrides, None)  # the per-device rule overrides: a mechanism, documented
    assert missing == {}, "add these to hub/devices/attributes.py and docs/registry.md"


def test_every_attribute_in_the_table_is_read_somewhere() -> None:
    sources = "\n".join(
        p.read_text(encoding="utf-8") for p in HUB.rglob("*.py") if p != TABLE_MODULE
    )
    stale = [name for name in BY_NAME if f"'{name}'" not in sources and f'"{name}"' not in sources]
    assert stale == []


def test_docs_registry_holds_the_table() -> None:
    doc = (ROOT / "docs" / "registry.md").read_text(encoding="utf-8")
    assert markdown_table() in doc, "paste markdown_table() into docs/registry.md"
