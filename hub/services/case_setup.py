"""The case configuration a hub runs with: policy, classification, calendar and grids.

From the packaged files or the paths in the settings, with the holidays an admin imported
into the database in place of the packaged calendar's own for those years.
"""

import logging
from dataclasses import replace
from datetime import datetime

from hub.cases.calendar import calendar_expiry_warning, load_calendar, parse_calendar_yaml
from hub.cases.classification import load_classification
from hub.cases.grid_file import parse_grid_geojson
from hub.cases.intake import CaseSetup
from hub.cases.routing import load_case_policy, parse_case_policy
from hub.settings import Settings
from hub.store.calendar import fetch_working_calendar
from hub.store.database import Database

log = logging.getLogger(__name__)


def load_case_setup(settings: Settings) -> CaseSetup:
    """Policy, classification, calendar and grids from the packaged files or the settings' paths."""
    policy = (
        parse_case_policy(settings.case_policy_file.read_text("utf-8"))
        if settings.case_policy_file
        else load_case_policy()
    )
    calendar = (
        parse_calendar_yaml(settings.calendar_file.read_text("utf-8"))
        if settings.calendar_file
        else load_calendar()
    )
    grids = parse_grid_geojson(settings.grid_file.read_bytes()) if settings.grid_file else None
    return CaseSetup(
        policy=policy,
        classes=load_classification(),
        calendar=calendar,
        grids=grids,
        number_prefix=settings.case_number_prefix,
    )


def with_imported_calendar(setup: CaseSetup, db: Database, now: datetime) -> CaseSetup:
    """The setup with the holidays imported into the database (`calendar_years`) in place of
    the configured calendar's own for those years; warns when the calendar runs out soon."""
    with db.connection() as conn:
        calendar = fetch_working_calendar(conn, setup.calendar)
    warning = calendar_expiry_warning(calendar, calendar.local_date(now))
    if warning is not None:
        log.warning("%s", warning)
    return replace(setup, calendar=calendar)
