"""Every declared runtime dependency is imported by the hub or the simulators (or opened as a
package of files, by name), or is named here with the library that uses it for us (issue 21:
every declared dependency is used or removed)."""

import re
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Used through another library, never imported by our code.
INDIRECT = {"python-multipart": "FastAPI parses form bodies (Open311) with it"}


def _name(requirement: str) -> str:
    return re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_every_declared_dependency_is_used() -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]
    modules_of: dict[str, set[str]] = {}
    for module, dists in packages_distributions().items():
        for dist in dists:
            modules_of.setdefault(dist.lower().replace("_", "-"), set()).add(module)
    source = "\n".join(
        path.read_text("utf-8")
        for folder in ("hub", "simulators")
        for path in (ROOT / folder).rglob("*.py")
    )
    imported = set(re.findall(r"^\s*(?:from|import)\s+([A-Za-z_]\w*)", source, flags=re.M))
    imported |= set(re.findall(r"[\"']([A-Za-z_]\w*)[\"']", source))  # importlib.resources
    unused = [
        name
        for name in map(_name, declared["dependencies"])
        if name not in INDIRECT and not modules_of.get(name, set()) & imported
    ]
    assert unused == [], f"declared but imported nowhere: {unused}"
