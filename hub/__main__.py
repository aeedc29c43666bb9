"""Command line and composition root: builds settings and wires ingest, store, rules and API."""

import argparse
import logging
import signal
import sys
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from hub.cli.access import add_access_commands
from hub.cli.calendar import add_calendar_commands
from hub.devices.registry import format_device_csv, parse_device_file
from hub.settings import Settings

if TYPE_CHECKING:
    from hub.store.storage import StoragePolicy

log = logging.getLogger("hub")


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    """Apply pending migrations and report the storage mode."""
    from hub.store.migrations import MigrationError, apply_migrations  # noqa: PLC0415

    try:
        report = apply_migrations(settings.database_url, args.mode, _storage_policy(settings))
    except (MigrationError, ValueError) as err:
        print(f"migrate: {err}", file=sys.stderr)
        return 1
    print(f"storage mode: {report.mode}; schema version {report.current_version}")
    for name in report.applied:
        print(f"applied {name}")
    if not report.applied:
        print("schema is up to date")
    return 0


def _storage_policy(settings: Settings) -> "StoragePolicy":
    from hub.store.storage import StoragePolicy  # noqa: PLC0415

    return StoragePolicy(
        telemetry_keep=timedelta(days=settings.retention_days),
        dead_letters_keep=timedelta(days=settings.deadletter_retention_days),
        compress_after=timedelta(days=settings.compress_after_days),
        accepted_age=settings.max_age,
        city_timezone=settings.city_timezone,
    )


def cmd_storage(settings: Settings, args: argparse.Namespace) -> int:
    """Show the storage ages and policies in force, after applying the settings' if asked."""
    import psycopg  # noqa: PLC0415

    from hub.store.storage import (  # noqa: PLC0415
        StorageMode,
        format_storage_report,
        read_storage_report,
        write_storage_policy,
    )

    try:
        policy = _storage_policy(settings)
    except ValueError as err:
        print(f"storage: {err}", file=sys.stderr)
        return 1
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        row = conn.execute("SELECT value FROM hub_meta WHERE key = 'storage_mode'").fetchone()
        if row is None:
            print("storage: database is not migrated: run `python -m hub migrate`", file=sys.stderr)
            return 2
        mode = StorageMode(str(row[0]))
        if args.storage_command == "apply":
            write_storage_policy(conn, mode, policy)
        print(format_storage_report(read_storage_report(conn, mode)))
    return 0


def cmd_run(settings: Settings, args: argparse.Namespace) -> int:
    """Run ingest, rules and the HTTP API in this process until SIGINT/SIGTERM."""
    from hub.services.runtime import HubProcess  # noqa: PLC0415

    process = HubProcess(settings, api_enabled=settings.api_enabled and not args.no_api)
    return process.run()


def cmd_devices_import(settings: Settings, args: argparse.Namespace) -> int:
    """Validate a registry file and upsert its devices (all or nothing unless --partial)."""
    from hub.store.database import Database  # noqa: PLC0415

    path = Path(args.file)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as err:
        print(f"cannot read {path}: {err.strerror}", file=sys.stderr)
        return 2
    parsed = parse_device_file(path.name, text)
    for problem in parsed.problems:
        print(f"{path}: {problem}", file=sys.stderr)
    if parsed.problems and not args.partial:
        print(
            f"{len(parsed.problems)} bad row(s); nothing imported "
            "(fix them, or pass --partial to import the good rows)",
            file=sys.stderr,
        )
        return 1
    db = Database(settings.database_url, max_size=2)
    db.open()
    try:
        created, updated = db.upsert_devices(parsed.records)
    finally:
        db.close()
    skipped = f", {len(parsed.problems)} bad row(s) skipped" if parsed.problems else ""
    print(f"imported {len(parsed.records)} device(s): {created} new, {updated} updated{skipped}")
    return 0


def cmd_devices_list(settings: Settings, args: argparse.Namespace) -> int:
    """Print registered devices as a table, CSV or JSON lines."""
    from hub.devices.kinds import Kind  # noqa: PLC0415
    from hub.store.database import Database  # noqa: PLC0415

    db = Database(settings.database_url, max_size=2)
    db.open()
    try:
        devices = db.list_devices(Kind(args.kind) if args.kind else None, args.limit, 0)
    finally:
        db.close()
    if args.format == "json":
        for device in devices:
            sys.stdout.write(device.model_dump_json() + "\n")
    elif args.format == "csv":
        sys.stdout.write(format_device_csv(devices))
    else:
        print(f"{'device_id':<24} {'kind':<9} {'lat':>10} {'lon':>11}  {'class':<5} department")
        for d in devices:
            print(
                f"{d.device_id:<24} {d.kind.value:<9} {d.lat:>10.6f} {d.lon:>11.6f}  "
                f"{d.class_code or '':<5} {d.department or ''}"
            )
        print(f"{len(devices)} device(s)")
    return 0


def cmd_deadletters_list(settings: Settings, args: argparse.Namespace) -> int:
    """Print dead letters with their reason and a preview of the payload."""
    from hub.store.database import Database  # noqa: PLC0415

    db = Database(settings.database_url, max_size=2)
    db.open()
    try:
        letters = db.list_dead_letters(args.reason, not args.all, 0, args.limit)
        counts = db.count_dead_letters()
    finally:
        db.close()
    for letter in letters:
        preview = letter.payload[:80].decode("utf-8", "replace").replace("\n", " ")
        state = f" replayed {letter.replayed_at:%Y-%m-%d %H:%M}" if letter.replayed_at else ""
        print(f"#{letter.id} {letter.received_at:%Y-%m-%dT%H:%M:%SZ} {letter.reason}{state}")
        print(f"    topic:   {letter.topic}")
        print(f"    detail:  {letter.detail}")
        print(f"    payload: {preview}{'…' if len(letter.payload) > 80 else ''}")
    summary = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "none"
    print(f"pending dead letters by reason: {summary}")
    return 0


def cmd_deadletters_replay(settings: Settings, args: argparse.Namespace) -> int:
    """Replay pending dead letters; those that now pass are stored as readings."""
    from datetime import UTC, datetime  # noqa: PLC0415

    from hub.store.database import Database  # noqa: PLC0415
    from hub.store.replay import replay_dead_letters  # noqa: PLC0415

    db = Database(settings.database_url, max_size=2)
    db.open()
    try:
        with db.connection() as conn:
            report = replay_dead_letters(
                conn,
                root=settings.mqtt_root,
                limits=settings.decode_limits,
                now=datetime.now(UTC),
                reason=args.reason,
                ids=args.id or None,
            )
    finally:
        db.close()
    print(f"replayed: {report.stored} stored, {report.still_dead} still rejected")
    for reason, n in sorted(report.reasons.items()):
        print(f"    still {reason}: {n}")
    if report.sampled:
        print(f"    not replayable (only a sample of an oversize payload kept): {report.sampled}")
    return 0


def cmd_trucks_import(settings: Settings, args: argparse.Namespace) -> int:
    """Import truck sites, permits or zones (GeoJSON, or permits.json) into the store."""
    from hub.rules import truck_records  # noqa: PLC0415
    from hub.store.database import Database  # noqa: PLC0415
    from hub.store.trucks import TruckStore  # noqa: PLC0415

    path = Path(args.file)
    try:
        data = path.read_bytes()
        if args.command == "sites":
            sites = truck_records.parse_sites(data)
        elif args.command == "permits":
            permits = truck_records.parse_permits(data)
        else:
            zones = truck_records.parse_zones(data)
    except OSError as err:
        print(f"cannot read {path}: {err.strerror}", file=sys.stderr)
        return 2
    except ValueError as err:
        print(f"{path}: {err}; nothing imported", file=sys.stderr)
        return 1
    db = Database(settings.database_url, max_size=2)
    db.open()
    try:
        store = TruckStore(db)
        if args.command == "sites":
            created, updated = store.upsert_sites(sites)
        elif args.command == "permits":
            created, updated = store.upsert_permits(permits)
        else:
            created, updated = store.upsert_zones(zones)
    finally:
        db.close()
    print(f"imported {created + updated} {args.command}: {created} new, {updated} updated")
    return 0


def cmd_services(settings: Settings, args: argparse.Namespace) -> int:
    """Start or stop the local PostgreSQL and Mosquitto of the demo."""
    from hub.cli.local_stack import LocalMosquitto, LocalPostgres  # noqa: PLC0415

    data = settings.data_dir.resolve()
    pg = LocalPostgres(data / "postgres", args.pg_port)
    broker = LocalMosquitto(data / "mosquitto", args.mqtt_port)
    if args.action == "up":
        pg.start()
        pid_file = data / "mosquitto" / "mosquitto.pid"
        running = pid_file.exists() and _pid_alive(int(pid_file.read_text() or 0))
        if not running:
            broker.start()
            if broker.process is not None:
                pid_file.write_text(str(broker.process.pid))
        print(f"HUB_DATABASE_URL={pg.url}")
        print(f"HUB_MQTT_URL={broker.url}")
    else:
        pg.stop()
        pid_file = data / "mosquitto" / "mosquitto.pid"
        if pid_file.exists():
            pid = int(pid_file.read_text() or 0)
            if _pid_alive(pid):
                import os  # noqa: PLC0415

                os.kill(pid, signal.SIGTERM)
            pid_file.unlink()
        print("local services stopped")
    return 0


def _pid_alive(pid: int) -> bool:
    import os  # noqa: PLC0415

    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def cmd_parking_import(settings: Settings, args: argparse.Namespace) -> int:
    """Upsert parking lots and zones from the simulators' GeoJSON; zones' max stay onto spots."""
    from hub.store import parking  # noqa: PLC0415
    from hub.store.database import Database  # noqa: PLC0415

    areas: list[parking.ParkingArea] = []
    for path_text, kind in ((args.lots, parking.AreaKind.LOT), (args.zones, parking.AreaKind.ZONE)):
        if path_text is None:
            continue
        try:
            areas += parking.parse_areas_geojson(Path(path_text).read_bytes(), kind)
        except (OSError, parking.AreaImportError) as err:
            print(f"{path_text}: {err}", file=sys.stderr)
            return 1
    db = Database(settings.database_url, max_size=1)
    db.open()
    try:
        with db.connection() as conn:
            written = parking.upsert_areas(conn, areas)
            spots = parking.apply_zone_max_stay(conn)
    finally:
        db.close()
    print(f"imported {written} lot(s)/zone(s); max stay set on {spots} spot(s)")
    return 0


def cmd_manholes_recalibrate(settings: Settings, args: argparse.Namespace) -> int:
    """Send a cover a recalibrate command to its newest tilt (or --baseline-deg)."""
    import uuid  # noqa: PLC0415
    from datetime import UTC, datetime, timedelta  # noqa: PLC0415

    from hub.store import manholes  # noqa: PLC0415
    from hub.store.database import Database  # noqa: PLC0415

    db = Database(settings.database_url, max_size=1)
    db.open()
    try:
        with db.connection() as conn:
            saved = manholes.request_recalibration(
                conn,
                args.device_id,
                command_id=f"recal-{uuid.uuid4().hex[:16]}",
                expires_at=datetime.now(UTC) + timedelta(hours=args.ttl_h),
                baseline_tilt_deg=args.baseline_deg,
            )
    except manholes.NoReadingError as err:
        print(str(err), file=sys.stderr)
        return 1
    finally:
        db.close()
    if saved is None:
        print(f"no manhole cover {args.device_id}", file=sys.stderr)
        return 1
    print(
        f"{saved.device_id}: recalibrate to {saved.baseline_tilt_deg} deg"
        f" (now {saved.previous_tilt_deg}) queued as command {saved.command_id};"
        " the running hub sends it and changes the baseline when the cover acknowledges"
    )
    return 0


def cmd_jt808_serve(settings: Settings, args: argparse.Namespace) -> int:
    """Serve JT/T 808 truck terminals and relay them to and from the broker."""
    from hub.services.jt808 import run_gateway  # noqa: PLC0415

    port = settings.jt808_port if args.port is None else args.port
    return run_gateway(settings, args.host or settings.jt808_host, port)


def build_parser() -> argparse.ArgumentParser:
    """The `python -m hub` argument parser."""
    parser = argparse.ArgumentParser(
        prog="python -m hub",
        description="City telemetry hub. Settings come from HUB_* environment variables "
        "(HUB_DATABASE_URL, HUB_MQTT_URL, HUB_API_HOST, HUB_API_PORT, ...); see README.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    migrate = commands.add_parser("migrate", help="create or update the database schema")
    migrate.add_argument(
        "--mode",
        choices=["auto", "timescale", "plain"],
        default="auto",
        help="storage mode at first migration (default: timescale if available)",
    )
    migrate.set_defaults(handler=cmd_migrate)
    store = commands.add_parser("storage", help="retention, compression and aggregate refresh")
    store.add_argument(
        "storage_command",
        choices=["show", "apply"],
        help="show what is in force; apply: write the HUB_* ages first (migrate also does)",
    )
    store.set_defaults(handler=cmd_storage)

    run = commands.add_parser("run", help="run ingest, rules and the HTTP API")
    run.add_argument("--no-api", action="store_true", help="do not serve the HTTP API")
    run.set_defaults(handler=cmd_run)

    devices = commands.add_parser("devices", help="the device registry")
    device_cmds = devices.add_subparsers(dest="devices_command", required=True, metavar="ACTION")
    imp = device_cmds.add_parser("import", help="import devices from CSV or GeoJSON")
    imp.add_argument("file", help="CSV with header device_id,kind,lat,lon[,...] or GeoJSON")
    imp.add_argument(
        "--partial", action="store_true", help="import the good rows even if some rows are bad"
    )
    imp.set_defaults(handler=cmd_devices_import)
    lst = device_cmds.add_parser("list", help="list registered devices")
    lst.add_argument("--kind", choices=["lighting", "cabinet", "truck", "manhole", "parking"])
    lst.add_argument("--limit", type=int, default=1000)
    lst.add_argument("--format", choices=["table", "csv", "json"], default="table")
    lst.set_defaults(handler=cmd_devices_list)

    dead = commands.add_parser("deadletters", help="rejected messages")
    dead_cmds = dead.add_subparsers(dest="deadletters_command", required=True, metavar="ACTION")
    dlist = dead_cmds.add_parser("list", help="list dead letters with their reasons")
    dlist.add_argument("--reason", help="only this reason, e.g. unregistered")
    dlist.add_argument("--all", action="store_true", help="include already replayed ones")
    dlist.add_argument("--limit", type=int, default=50)
    dlist.set_defaults(handler=cmd_deadletters_list)
    replay = dead_cmds.add_parser("replay", help="store dead letters that now pass validation")
    replay.add_argument("--reason", help="only this reason, e.g. unregistered")
    replay.add_argument("--id", type=int, action="append", help="only this id (repeatable)")
    replay.set_defaults(handler=cmd_deadletters_replay)

    for noun, what, example in (
        ("sites", "truck construction/disposal sites", "sites.geojson"),
        ("permits", "truck transport permits", "permits.json or permits.geojson"),
        ("truck-zones", "truck restricted and speed zones", "zones GeoJSON"),
    ):
        truck_cmd = commands.add_parser(noun, help=what)
        truck_actions = truck_cmd.add_subparsers(
            dest=f"{noun}_command", required=True, metavar="ACTION"
        )
        truck_imp = truck_actions.add_parser("import", help=f"import {what} (upsert by id)")
        truck_imp.add_argument("file", help=example)
        truck_imp.set_defaults(handler=cmd_trucks_import)

    park = commands.add_parser("parking", help="parking lots and on-street zones")
    park_cmds = park.add_subparsers(dest="parking_command", required=True, metavar="ACTION")
    park_imp = park_cmds.add_parser("import", help="import lots/zones GeoJSON (upsert by id)")
    park_imp.add_argument("--lots", help="lots.geojson")
    park_imp.add_argument("--zones", help="zones.geojson (max_stay_min is the overstay rule)")
    park_imp.set_defaults(handler=cmd_parking_import)
    covers = commands.add_parser("manholes", help="smart manhole covers")
    cover_cmds = covers.add_subparsers(dest="manholes_command", required=True, metavar="ACTION")
    recal = cover_cmds.add_parser("recalibrate", help="send a cover a recalibrate command")
    recal.add_argument("device_id")
    recal.add_argument("--baseline-deg", type=float, help="default: the newest reported tilt")
    recal.add_argument("--ttl-h", type=float, default=24.0, help="give up without an ack after")
    recal.set_defaults(handler=cmd_manholes_recalibrate)

    jt808 = commands.add_parser("jt808", help="JT/T 808 gateway for truck terminals")
    jt808_cmds = jt808.add_subparsers(dest="jt808_command", required=True, metavar="ACTION")
    jt808_serve = jt808_cmds.add_parser("serve", help="accept terminals over TCP")
    jt808_serve.add_argument("--host", help="listen address (default HUB_JT808_HOST, 0.0.0.0)")
    jt808_serve.add_argument("--port", type=int, help="TCP port (default HUB_JT808_PORT, 7808)")
    jt808_serve.set_defaults(handler=cmd_jt808_serve)

    add_access_commands(commands)
    add_calendar_commands(commands)

    services = commands.add_parser("services", help="local PostgreSQL and Mosquitto for the demo")
    services.add_argument("action", choices=["up", "down"])
    services.add_argument("--pg-port", type=int, default=55432)
    services.add_argument("--mqtt-port", type=int, default=51883)
    services.set_defaults(handler=cmd_services)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, build settings from the environment, run the command."""
    args = build_parser().parse_args(argv)
    settings = Settings()
    _configure_logging(settings.log_level)
    handler = args.handler
    try:
        code: int = handler(settings, args)
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
