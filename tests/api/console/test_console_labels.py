"""Every workflow action and case status the API can return has a label in both languages."""

import json
from pathlib import Path

import pytest

from hub.cases.workflow import Action, CaseStatus

I18N = Path(__file__).resolve().parents[3] / "hub" / "api" / "console_static" / "i18n.json"
TABLES: dict[str, dict[str, str]] = json.loads(I18N.read_text("utf-8"))


@pytest.mark.parametrize("language", sorted(TABLES))
def test_every_action_has_a_label(language: str) -> None:
    missing = [
        a.value for a in Action if f"action.{a.value.replace('_', '-')}" not in TABLES[language]
    ]
    assert missing == []


@pytest.mark.parametrize("language", sorted(TABLES))
def test_every_status_has_a_label(language: str) -> None:
    missing = [s.value for s in CaseStatus if f"status.{s.value}" not in TABLES[language]]
    assert missing == []
