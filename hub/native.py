"""The hub's hot modules compiled with mypyc, used only when built from exactly these sources.

The rules, decoding and the MQTT packet reader are most of the CPU a message costs (issue
23); mypyc compiles the same type-annotated modules to C extensions, a third less CPU for
the rules. `scripts/build_native.py` (run by scripts/setup.sh) compiles `NATIVE_MODULES`
into `build/native` with a manifest of each source's SHA-256. `install()`, called when the
`hub` package is imported, puts a finder before Python's own that loads those modules from
their extensions, but only when every compiled source still matches the manifest, for
this interpreter's extension suffix: a compiled module calls the others natively, so it is
all of them or none. Otherwise (not built, a source edited since, another Python) the hub
runs the plain modules, which behave the same, and `STATUS` says why; the runtime logs it
at start. `HUB_NATIVE=0` turns it off; `HUB_NATIVE_DIR` points at another build.
"""

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType

# The modules compiled, by the profile of a paced hub: the rule engine and every packaged
# per-device rule with the context it reads, the decoder and the checks pydantic calls
# per message, geometry, the packet reader.
NATIVE_MODULES = (
    "hub.geometry",
    "hub.devices.decode",
    "hub.devices.wire_checks",
    "hub.ingest.mqtt_packets",
    "hub.rules.condition",
    "hub.rules.engine",
    "hub.rules.group_cover",
    "hub.rules.lighting",
    "hub.rules.lighting_cabinets",
    "hub.rules.lighting_context",
    "hub.rules.lighting_trends",
    "hub.rules.manholes",
    "hub.rules.offline",
    "hub.rules.parking",
    "hub.rules.plan",
    "hub.rules.reorder",
    "hub.rules.signals",
    "hub.rules.truck_context",
    "hub.rules.truck_tracks",
    "hub.rules.trucks",
)
# mypyc puts the compiled code of all of them in one shared extension of this name, which
# each module's own small extension imports.
GROUP = "hub_native"
SHARED_MODULE = f"{GROUP}__mypyc"
MANIFEST = "manifest.json"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DIR = PROJECT_ROOT / "build" / "native"


def native_dir() -> Path:
    """Where the compiled modules are: HUB_NATIVE_DIR, else build/native of this checkout."""
    configured = os.environ.get("HUB_NATIVE_DIR")
    return Path(configured) if configured else DEFAULT_DIR


def source_path(module: str) -> Path:
    """The source file of one of the hub's modules (without importing it)."""
    return PROJECT_ROOT.joinpath(*module.split(".")).with_suffix(".py")


def extension_path(directory: Path, module: str) -> Path:
    """Where a build in `directory` keeps a module's extension for this interpreter."""
    *package, name = module.split(".")
    return directory.joinpath(*package, name + extension_suffix())


def source_digest(path: Path) -> str:
    """SHA-256 of a source file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def extension_suffix() -> str:
    """This interpreter's suffix for extension modules (its version and ABI)."""
    return importlib.machinery.EXTENSION_SUFFIXES[0]


def manifest_for(modules: Sequence[str]) -> dict[str, object]:
    """The manifest a build of these modules from the current sources writes."""
    return {
        "extension_suffix": extension_suffix(),
        "shared": SHARED_MODULE,
        "modules": {m: source_digest(source_path(m)) for m in modules},
    }


@dataclass(frozen=True)
class Check:
    """Whether a build can be used: the extension of each module when it can, else why not."""

    extensions: dict[str, Path]
    reason: str

    @property
    def usable(self) -> bool:
        """Every listed module has an extension built from its current source."""
        return bool(self.extensions)


def check(directory: Path, modules: Sequence[str] = NATIVE_MODULES) -> Check:
    """Compare a build with the current sources and this interpreter."""
    path = directory / MANIFEST
    if not path.is_file():
        return Check({}, f"not built ({path} is missing; run scripts/build_native.py)")
    try:
        built = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        return Check({}, f"unreadable manifest {path}: {err}")
    if not isinstance(built, dict) or not isinstance(built.get("modules"), dict):
        return Check({}, f"manifest {path} has no modules")
    suffix = extension_suffix()
    if built.get("extension_suffix") != suffix:
        return Check({}, f"built for {built.get('extension_suffix')}, this Python is {suffix}")
    digests: dict[str, object] = built["modules"]
    if set(digests) != set(modules):
        return Check({}, "built for another list of modules; run scripts/build_native.py")
    extensions: dict[str, Path] = {}
    for module in modules:
        source = source_path(module)
        if digests.get(module) != source_digest(source):
            return Check({}, f"{source.name} changed since the build; run scripts/build_native.py")
        extension = extension_path(directory, module)
        if not extension.is_file():
            return Check({}, f"{extension} is missing")
        extensions[module] = extension
    shared = extension_path(directory, SHARED_MODULE)
    if not shared.is_file():
        return Check({}, f"{shared} is missing")
    extensions[SHARED_MODULE] = shared
    return Check(extensions, f"{len(modules)} modules compiled (mypyc) from {directory}")


class NativeFinder(importlib.abc.MetaPathFinder):
    """Finds the compiled extension of a listed module before Python finds its source."""

    def __init__(self, extensions: dict[str, Path]) -> None:
        self.extensions = extensions

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> ModuleSpec | None:
        """The extension's spec for a listed module, None for every other."""
        del path, target
        extension = self.extensions.get(fullname)
        if extension is None:
            return None
        return importlib.util.spec_from_file_location(fullname, extension)


STATUS = "plain Python (install() not called)"


def install() -> bool:
    """Load the listed modules compiled when the build matches; say which in STATUS."""
    global STATUS  # noqa: PLW0603 - set once, when the package is imported
    if os.environ.get("HUB_NATIVE", "1") == "0":
        STATUS = "plain Python (HUB_NATIVE=0)"
        return False
    if any(isinstance(f, NativeFinder) for f in sys.meta_path):
        return True
    loaded = [m for m in NATIVE_MODULES if m in sys.modules]
    if loaded:
        STATUS = f"plain Python ({', '.join(loaded)} imported before install())"
        return False
    try:
        result = check(native_dir())
    except OSError as err:
        result = Check({}, f"cannot read the build: {err}")
    if not result.usable:
        STATUS = f"plain Python: {result.reason}"
        return False
    sys.meta_path.insert(0, NativeFinder(result.extensions))
    STATUS = result.reason
    return True
