"""The working calendar's holidays in PostgreSQL: whole years imported by an admin, audited."""

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from hub.cases.calendar import HolidayYearsModel, WorkingCalendar, with_years

Conn = psycopg.Connection[tuple[Any, ...]]


def import_holiday_years(
    conn: Conn, document: HolidayYearsModel, *, source: str, actor: str, now: datetime
) -> list[int]:
    """Replace the holidays of every year the document covers; keep the import on record.

    Raises CalendarError (from the document) when a year has no holidays. Returns the years.
    """
    years = document.by_year()
    for year, model in years.items():
        conn.execute(
            "INSERT INTO calendar_years (year, holidays, makeup_workdays, source, imported_by,"
            " imported_at) VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (year) DO UPDATE SET"
            " holidays = excluded.holidays, makeup_workdays = excluded.makeup_workdays,"
            " source = excluded.source, imported_by = excluded.imported_by,"
            " imported_at = excluded.imported_at",
            (
                year,
                Jsonb(model.model_dump(mode="json")["holidays"]),
                Jsonb([d.isoformat() for d in model.makeup_workdays]),
                source,
                actor,
                now,
            ),
        )
    conn.execute(
        "INSERT INTO calendar_imports (years, source, imported_by, imported_at, document)"
        " VALUES (%s, %s, %s, %s, %s)",
        (sorted(years), source, actor, now, Jsonb(document.model_dump(mode="json"))),
    )
    return sorted(years)


def fetch_holiday_years(conn: Conn) -> dict[int, HolidayYearsModel]:
    """The imported years, each as its own document."""
    rows = conn.execute(
        "SELECT year, holidays, makeup_workdays FROM calendar_years ORDER BY year"
    ).fetchall()
    return {
        int(year): HolidayYearsModel.model_validate(
            {"years": [year], "holidays": holidays, "makeup_workdays": makeup}
        )
        for year, holidays, makeup in rows
    }


def fetch_working_calendar(conn: Conn, base: WorkingCalendar) -> WorkingCalendar:
    """The configured calendar with the imported years' holidays in place of its own."""
    years: Mapping[int, HolidayYearsModel] = fetch_holiday_years(conn)
    return with_years(base, years) if years else base


def fetch_imports(conn: Conn, limit: int = 20) -> list[tuple[list[int], str, str, datetime]]:
    """The latest imports: (years, source, who, when), newest first."""
    rows = conn.execute(
        "SELECT years, source, imported_by, imported_at FROM calendar_imports"
        " ORDER BY id DESC LIMIT %s",
        (limit,),
    ).fetchall()
    return [(list(r[0]), str(r[1]), str(r[2]), r[3]) for r in rows]


def known_until(calendar: WorkingCalendar) -> date | None:
    """The last day whose holidays the calendar knows."""
    return calendar.covers_until
