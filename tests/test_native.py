"""The compiled hot modules (hub/native.py): used when built, the same alarms as the plain ones.

scripts/test builds them (scripts/setup.sh runs scripts/build_native.py), so the whole
suite runs on the compiled modules; here a child process on the plain modules
(HUB_NATIVE=0) judges the same generated streams of every kind (trucks on a loaded
context: sites, a permit, a speed zone) as this one, signal for
signal (that these streams raise and clear alarms of every kind is
tests/rules/test_quiet_screening.py's test_the_streams_raise_and_clear_alarms_of_every_kind).
The loader's refusals (not built, a source edited since, another Python) are
checked on builds laid out in a temporary folder.
"""

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub import native
from tests.rules.streams import draw_modes, engine, play, stream_of

ROOT = Path(__file__).resolve().parent.parent
WANTED = os.environ.get("HUB_NATIVE", "1") != "0"


def _plain_env() -> dict[str, str]:
    return {**os.environ, "HUB_NATIVE": "0", "PYTHONPATH": str(ROOT)}


def test_the_hot_modules_run_compiled() -> None:
    """scripts/test builds them: a failed or stale build must not pass unnoticed."""
    if not WANTED:
        pytest.skip("HUB_NATIVE=0: this run is of the plain modules")
    assert native.STATUS.startswith(f"{len(native.NATIVE_MODULES)} modules compiled"), native.STATUS
    for name in native.NATIVE_MODULES:
        module = sys.modules.get(name) or __import__(name, fromlist=["_"])
        assert str(module.__file__).endswith(native.extension_suffix()), name


def test_hub_native_0_runs_the_plain_modules() -> None:
    code = "import hub.native, hub.rules.engine as e; print(hub.native.STATUS); print(e.__file__)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=_plain_env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert out == ["plain Python (HUB_NATIVE=0)", str(ROOT / "hub" / "rules" / "engine.py")]


@pytest.fixture(scope="module")
def plain_player() -> Iterator[subprocess.Popen[str]]:
    """tests/rules/streams.py's `serve` on the plain modules."""
    child = subprocess.Popen(
        [sys.executable, "-c", "from tests.rules.streams import serve; serve()"],
        env=_plain_env(),
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    yield child
    assert child.stdin is not None
    child.stdin.close()
    child.wait(timeout=30)


@pytest.mark.skipif(not WANTED, reason="HUB_NATIVE=0: nothing compiled to compare")
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_compiled_rules_give_the_alarms_of_the_plain_ones(
    plain_player: subprocess.Popen[str], data: st.DataObject
) -> None:
    modes = draw_modes(data)
    assert plain_player.stdin is not None
    assert plain_player.stdout is not None
    plain_player.stdin.write(json.dumps(modes) + "\n")
    plain_player.stdin.flush()
    plain = json.loads(plain_player.stdout.readline())

    compiled = [repr(s) for s in play(engine(screen_quiet=True), stream_of(modes))]

    assert compiled == plain


# -- the loader's checks -------------------------------------------------------------------


def _lay_out(directory: Path, modules: tuple[str, ...]) -> None:
    """A build's files and manifest for `modules` (empty extensions: never imported here)."""
    for name in modules:
        path = native.extension_path(directory, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
    native.extension_path(directory, native.SHARED_MODULE).write_bytes(b"")
    (directory / native.MANIFEST).write_text(json.dumps(native.manifest_for(modules)))


MODULES = ("hub.rules.engine", "hub.rules.condition")


def test_a_build_of_the_current_sources_is_used(tmp_path: Path) -> None:
    _lay_out(tmp_path, MODULES)

    result = native.check(tmp_path, MODULES)

    assert result.usable
    assert set(result.extensions) == {*MODULES, native.SHARED_MODULE}


def test_no_build_is_not_used(tmp_path: Path) -> None:
    result = native.check(tmp_path, MODULES)
    assert not result.usable
    assert "not built" in result.reason
    assert "scripts/build_native.py" in result.reason


def test_a_source_edited_since_the_build_turns_all_of_it_off(tmp_path: Path) -> None:
    _lay_out(tmp_path, MODULES)
    manifest = json.loads((tmp_path / native.MANIFEST).read_text())
    manifest["modules"]["hub.rules.condition"] = "0" * 64
    (tmp_path / native.MANIFEST).write_text(json.dumps(manifest))

    result = native.check(tmp_path, MODULES)

    assert not result.usable
    assert result.extensions == {}
    assert result.reason.startswith("condition.py changed since the build")


def test_a_build_for_another_python_is_not_used(tmp_path: Path) -> None:
    _lay_out(tmp_path, MODULES)
    manifest = json.loads((tmp_path / native.MANIFEST).read_text())
    manifest["extension_suffix"] = ".cpython-312-x86_64-linux-gnu.so"
    (tmp_path / native.MANIFEST).write_text(json.dumps(manifest))

    result = native.check(tmp_path, MODULES)

    assert not result.usable
    assert "cpython-312" in result.reason


def test_a_build_of_another_list_of_modules_is_not_used(tmp_path: Path) -> None:
    _lay_out(tmp_path, (*MODULES, "hub.geometry"))

    result = native.check(tmp_path, MODULES)

    assert not result.usable
    assert "another list of modules" in result.reason


def test_a_missing_extension_is_not_used(tmp_path: Path) -> None:
    _lay_out(tmp_path, MODULES)
    native.extension_path(tmp_path, "hub.rules.engine").unlink()

    result = native.check(tmp_path, MODULES)

    assert not result.usable
    assert "missing" in result.reason


@pytest.mark.parametrize("name", native.NATIVE_MODULES)
def test_no_compiled_module_defines_a_pydantic_model(name: str) -> None:
    """mypyc keeps a compiled class's annotations as bare runtime types (`dict`, not
    `Annotated[dict[str, float], Field(...)]`): a pydantic model defined in a compiled
    module would silently lose its constraints. The rules' parameters live in *_params.py."""
    from pydantic import BaseModel

    module = __import__(name, fromlist=["_"])
    models = [
        value.__name__
        for value in vars(module).values()
        if isinstance(value, type) and issubclass(value, BaseModel) and value.__module__ == name
    ]
    assert models == []
