"""`python -m hub calendar import FILE | show`: the working calendar's holidays as data."""

import argparse
import getpass
import sys
from datetime import UTC, datetime
from pathlib import Path

from hub.settings import Settings


def cmd_calendar_import(settings: Settings, args: argparse.Namespace) -> int:
    """Import whole years of holidays and make-up working days (YAML or JSON) into the database."""
    from hub.cases.calendar import CalendarError, parse_holiday_years  # noqa: PLC0415
    from hub.store.calendar import import_holiday_years  # noqa: PLC0415
    from hub.store.database import Database  # noqa: PLC0415

    path = Path(args.file)
    try:
        document = parse_holiday_years(path.read_bytes())
        document.by_year()  # refuse a year without holidays before touching the database
    except OSError as err:
        print(f"cannot read {path}: {err.strerror}", file=sys.stderr)
        return 2
    except CalendarError as err:
        print(f"{path}: {err}", file=sys.stderr)
        return 1
    actor = args.actor or f"cli:{getpass.getuser()}"
    db = Database(settings.database_url, max_size=2)
    db.open()
    try:
        with db.connection() as conn:
            years = import_holiday_years(
                conn, document, source=path.name, actor=actor, now=datetime.now(UTC)
            )
    finally:
        db.close()
    print(f"imported the holidays of {', '.join(map(str, years))} from {path.name} as {actor}")
    print("running hubs use them from their next start")
    return 0


def cmd_calendar_show(settings: Settings, args: argparse.Namespace) -> int:
    """Print the calendar in force: the years known, when it ends, and the latest imports."""
    del args
    from hub.cases.calendar import calendar_expiry_warning  # noqa: PLC0415
    from hub.services.case_setup import load_case_setup  # noqa: PLC0415
    from hub.store.calendar import (  # noqa: PLC0415
        fetch_holiday_years,
        fetch_imports,
        fetch_working_calendar,
    )
    from hub.store.database import Database  # noqa: PLC0415

    base = load_case_setup(settings).calendar
    db = Database(settings.database_url, max_size=2)
    db.open()
    try:
        with db.connection() as conn:
            calendar = fetch_working_calendar(conn, base)
            imported = sorted(fetch_holiday_years(conn))
            imports = fetch_imports(conn)
    finally:
        db.close()
    now = datetime.now(UTC)
    print(f"known until: {calendar.covers_until or 'unbounded'}")
    print(f"years imported into the database: {', '.join(map(str, imported)) or 'none'}")
    for years, source, who, at in imports:
        print(f"  {at.isoformat()} {who} imported {years} from {source}")
    warning = calendar_expiry_warning(calendar, calendar.local_date(now))
    if warning is not None:
        print(f"warning: {warning}")
    return 0


def add_calendar_commands(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add the calendar subcommands to the hub's parser."""
    calendar = commands.add_parser("calendar", help="the working calendar's holidays")
    actions = calendar.add_subparsers(dest="calendar_command", required=True, metavar="ACTION")
    imp = actions.add_parser(
        "import", help="import years of holidays and make-up days (YAML/JSON, per notice)"
    )
    imp.add_argument("file", help="e.g. holidays-2027.yaml: years, holidays, makeup_workdays")
    imp.add_argument("--actor", help="who imports (recorded); default cli:<login>")
    imp.set_defaults(handler=cmd_calendar_import)
    show = actions.add_parser("show", help="the calendar in force and its imports")
    show.set_defaults(handler=cmd_calendar_show)
