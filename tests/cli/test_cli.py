"""The command line: --help everywhere, registry import rules, device listing."""

import subprocess
import sys
from pathlib import Path

import pytest

COMMANDS = [
    [],
    ["migrate"],
    ["run"],
    ["devices"],
    ["devices", "import"],
    ["devices", "list"],
    ["deadletters"],
    ["deadletters", "list"],
    ["deadletters", "replay"],
    ["services"],
]


def hub(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hub", *args], capture_output=True, text=True, env=env, check=False
    )


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "hub")
def test_help_everywhere(command: list[str]) -> None:
    result = hub(*command, "--help")
    assert result.returncode == 0
    assert "usage: python -m hub" in result.stdout


def test_simulators_help() -> None:
    for command in ([], ["city"], ["run"], ["score"], ["modbus"]):
        result = subprocess.run(
            [sys.executable, "-m", "simulators", *command, "--help"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, command


def test_import_all_or_nothing_then_partial_then_update(database_url: str, tmp_path: Path) -> None:
    import os

    env = {**os.environ, "HUB_DATABASE_URL": database_url}
    csv = tmp_path / "devices.csv"
    csv.write_text(
        "device_id,kind,lat,lon,department,rated_power_w\n"
        "L-1,lighting,31.3,120.6,照明,150\n"
        "L-2,lighting,31.3,999,照明,150\n"
    )
    result = hub("devices", "import", str(csv), env=env)
    assert result.returncode == 1
    assert "line 3 (L-2): lon" in result.stderr
    assert "nothing imported" in result.stderr
    assert "0 device(s)" in hub("devices", "list", env=env).stdout

    result = hub("devices", "import", "--partial", str(csv), env=env)
    assert result.returncode == 0
    assert "1 new, 0 updated, 1 bad row(s) skipped" in result.stdout

    csv.write_text("device_id,kind,lat,lon,department\nL-1,lighting,31.4,120.7,新部门\n")
    result = hub("devices", "import", str(csv), env=env)
    assert "0 new, 1 updated" in result.stdout
    listing = hub("devices", "list", "--format", "csv", env=env).stdout
    assert "L-1,lighting,31.4,120.7,,,,新部门," in listing
    assert listing.splitlines()[0].endswith(",parent_id")


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    result = hub("devices", "import", str(tmp_path / "nope.csv"))
    assert result.returncode == 2
    assert "cannot read" in result.stderr


def test_run_refuses_an_unmigrated_database(empty_database_url: str) -> None:
    import os

    env = {
        **os.environ,
        "HUB_DATABASE_URL": empty_database_url,
        "HUB_MQTT_URL": "mqtt://127.0.0.1:9",
    }
    result = subprocess.run(
        [sys.executable, "-m", "hub", "run", "--no-api"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "python -m hub migrate" in result.stderr
