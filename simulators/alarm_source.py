"""Read the hub's alarms from PostgreSQL for scoring (table `alarms`)."""

from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg import errors

from simulators.scoring import Alarm

ALARMS_SQL = (
    "SELECT source_id, alarm_type, raised_at, cleared_at FROM alarms"
    " WHERE (%(since)s::timestamptz IS NULL OR raised_at >= %(since)s)"
    " AND (%(until)s::timestamptz IS NULL OR raised_at <= %(until)s)"
    " ORDER BY raised_at"
)


class AlarmSourceError(RuntimeError):
    """The alarms cannot be read; the message says what to fix."""


@dataclass(frozen=True, slots=True)
class AlarmQuery:
    """Which alarms to read."""

    since: datetime | None = None
    until: datetime | None = None


def fetch_alarms(database_url: str, query: AlarmQuery) -> list[Alarm]:
    """Read alarms raised in the window; raise AlarmSourceError with a clear reason on failure."""
    try:
        with psycopg.connect(database_url, connect_timeout=10) as conn:
            rows = conn.execute(ALARMS_SQL, {"since": query.since, "until": query.until}).fetchall()
    except errors.UndefinedTable as err:
        raise AlarmSourceError(
            "table `alarms` does not exist in that database; run the hub's migrations "
            "(python -m hub migrate) or point HUB_DATABASE_URL at the hub's database"
        ) from err
    except errors.UndefinedColumn as err:
        raise AlarmSourceError(
            f"table `alarms` lacks an expected column (source_id, alarm_type, raised_at, "
            f"cleared_at): {err}"
        ) from err
    except psycopg.OperationalError as err:
        raise AlarmSourceError(f"cannot connect to the database: {err}") from err
    return [Alarm(str(r[0]), str(r[1]), r[2], r[3]) for r in rows]
