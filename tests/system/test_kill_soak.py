"""kill -9 under paced load, a short run of the soak command's own code (bench/soak_kill.py)."""

import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
if str(BENCH) not in sys.path:  # bench/ holds scripts, not a package
    sys.path.insert(0, str(BENCH))

from soak_kill import SoakPlan, run_kill_soak  # noqa: E402

pytestmark = pytest.mark.integration


def test_two_kills_at_a_thousand_per_second_store_every_message_once(
    database_url: str, mqtt_url: str, mqtt_root: str, tmp_path: Path
) -> None:
    # Seed 4 kills early (about 1.5 s and 3 s in), so both land while messages still flow.
    plan = SoakPlan(rate_per_s=1000, seconds=8, kills=2, devices=300, seed=4, drain_timeout_s=120)
    figures = run_kill_soak(database_url, mqtt_url, mqtt_root, tmp_path, plan)
    assert figures.restarts == 2
    assert all(rows < figures.published for rows in figures.stored_at_kills), (
        "a kill came after everything was stored and proves nothing"
    )
    assert figures.sessions_resumed >= 2, "each restart should resume the persistent session"
    assert figures.drain_after_last_restart_s is not None, "the backlog never drained"
    assert (figures.lost, figures.duplicates, figures.stray, figures.dead_letters) == (0, 0, 0, 0)
    assert figures.stored == figures.published == 8000
