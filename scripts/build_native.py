"""Compile the hub's hot modules with mypyc into build/native (see hub/native.py).

Skips the build when the manifest there already matches the sources (`--force` builds
anyway). Needs mypy (a dev dependency, with mypyc), setuptools and a C compiler with
Python's headers. The hub runs the plain modules when there is no usable build.

    python scripts/build_native.py [--force] [--out DIR]
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from mypyc.build import mypycify
from setuptools import setup

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hub import native  # noqa: E402 - the checkout's hub, not an installed one

# mypy's settings are the project's own (pyproject.toml: strict, the pydantic plugin).
MYPY_CONFIG = ROOT / "pyproject.toml"


def build(out: Path) -> float:
    """Compile every listed module into `out`, replacing what was there; seconds taken."""
    started = time.perf_counter()
    sources = [str(native.source_path(m).relative_to(ROOT)) for m in native.NATIVE_MODULES]
    with tempfile.TemporaryDirectory(prefix="hub-native-") as scratch:
        work = Path(scratch)
        staging = work / "lib"
        extensions = mypycify(
            ["--config-file", str(MYPY_CONFIG), *sources],
            opt_level="3",
            group_name=native.GROUP,
            target_dir=str(work / "c"),
        )
        setup(
            name="hub-native",
            ext_modules=extensions,
            script_args=[
                "--quiet",
                "build_ext",
                "--build-lib",
                str(staging),
                "--build-temp",
                str(work / "temp"),
            ],
        )
        (staging / native.MANIFEST).write_text(
            json.dumps(native.manifest_for(native.NATIVE_MODULES), indent=1), encoding="utf-8"
        )
        if out.exists():
            shutil.rmtree(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(staging, out)
    return time.perf_counter() - started


def main() -> int:
    """Build unless up to date; print what happened."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="build even when up to date")
    parser.add_argument("--out", type=Path, default=native.native_dir(), help="output folder")
    args = parser.parse_args()
    if not args.force and native.check(args.out).usable:
        print(f"native modules up to date in {args.out}")
        return 0

    os.chdir(ROOT)  # mypyc names modules by their paths relative to here
    seconds = build(args.out)
    result = native.check(args.out)
    if not result.usable:
        print(f"the build is not usable: {result.reason}", file=sys.stderr)
        return 1
    print(f"compiled {len(native.NATIVE_MODULES)} modules with mypyc in {seconds:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
