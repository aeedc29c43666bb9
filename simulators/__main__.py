"""Command line: `python -m simulators city|run|score|modbus ...`."""

import argparse
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from zoneinfo import ZoneInfo

import orjson

from hub.devices.kinds import Kind
from simulators.city import CitySpec, load_city
from simulators.engine import Simulation, run_paced
from simulators.faults import (
    FAULTS,
    NoiseModel,
    ScenarioModel,
    TruthWriter,
    format_ts,
    load_scenario,
    parse_duration_s,
    parse_fault_flag,
    read_truth,
)
from simulators.generator import generate_city, write_city
from simulators.lighting import CommandInbox, listen_for_commands
from simulators.mqtt import DEFAULT_MQTT_URL
from simulators.progress import ProgressLine
from simulators.publisher import CountingPublisher, Publisher
from simulators.scenario import plan_faults
from simulators.scoring import MatchRules, format_report, match_alarms

logger = logging.getLogger("simulators")


class _SystemClock:
    """The real clock."""

    def monotonic(self) -> float:
        return time.monotonic()

    def wall_ms(self) -> int:
        return int(time.time() * 1000)


def _parse_time(text: str) -> datetime:
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} needs a UTC offset, e.g. 2026-11-20T16:00+08:00"
        )
    return parsed


def _duration(text: str) -> float:
    try:
        return parse_duration_s(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from err


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with its four commands."""
    parser = argparse.ArgumentParser(
        prog="python -m simulators",
        description="Synthetic city for the telemetry hub: generate, run, score, serve Modbus.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    city = sub.add_parser("city", help="generate a city's files from a seed")
    city.add_argument("--out", type=Path, required=True, help="directory to write")
    city.add_argument("--seed", type=int, default=1)
    city.add_argument("--devices", type=int, help="total devices, split over kinds (e.g. 100000)")
    city.add_argument("--lamps", type=int)
    city.add_argument("--trucks", type=int)
    city.add_argument("--manholes", type=int)
    city.add_argument("--spots", type=int, help="parking spots")
    city.add_argument("--lamps-per-cabinet", type=int, default=120)
    city.add_argument("--lamps-per-circuit", type=int, default=30)
    city.add_argument("--lat", type=float, default=31.30, help="city centre latitude")
    city.add_argument("--lon", type=float, default=120.62, help="city centre longitude")
    city.add_argument("--timezone", default="Asia/Shanghai")
    city.add_argument("--county", default="320506", help="6-digit GB/T 2260 county code")
    city.add_argument("--modbus-host", default="127.0.0.1", help="host written for cabinets")
    city.add_argument("--modbus-port", type=int, default=5020, help="first Modbus TCP port")
    city.add_argument("--quiet", action="store_true", help="no progress display")

    for name, help_text in (
        ("run", "publish the city's devices over MQTT with faults and ground truth"),
        ("modbus", "serve the city's cabinets over Modbus TCP (lighting simulated, no MQTT)"),
    ):
        cmd = sub.add_parser(name, help=help_text)
        cmd.add_argument("--city", type=Path, required=True, help="directory from `city`")
        cmd.add_argument(
            "--speed",
            type=float,
            default=0.0,
            help="time acceleration until simulated time reaches the wall clock, real time"
            " after; 0 (default) = as fast as the broker takes it, so the history since"
            " --start is replayed in seconds and the devices then report in current time",
        )
        cmd.add_argument(
            "--start", type=_parse_time, help="simulated start (default: yesterday 16:00 local)"
        )
        cmd.add_argument("--duration", type=_duration, help="stop after this much simulated time")
        cmd.add_argument("--seed", type=int, help="behaviour seed (default: the city's)")
        cmd.add_argument("--quiet", action="store_true", help="no progress display")
        cmd.add_argument(
            "--modbus-bind", default="127.0.0.1", help="address the Modbus server binds"
        )
        if name == "run":
            cmd.add_argument(
                "--mqtt-url",
                default=os.environ.get("HUB_MQTT_URL", DEFAULT_MQTT_URL),
                help="broker (env HUB_MQTT_URL; default %(default)s)",
            )
            cmd.add_argument("--root", default="city", help="topic root")
            cmd.add_argument("--client-id", default="city-simulator")
            cmd.add_argument("--scenario", type=Path, help="YAML scenario file")
            cmd.add_argument(
                "--fault",
                action="append",
                default=[],
                metavar="SPEC",
                help="TYPE[,device=ID][,at=30m][,duration=2h][,KEY=VALUE]; repeatable. Types: "
                + ", ".join(sorted(FAULTS)),
            )
            cmd.add_argument("--random-faults", type=int, default=0, help="add N random faults")
            cmd.add_argument("--random-within", type=_duration, help="window for random faults")
            cmd.add_argument(
                "--truth", type=Path, help="ground truth JSON lines (default CITY/truth.jsonl)"
            )
            cmd.add_argument(
                "--no-noise", action="store_true", help="no duplicates, late reports, jitter"
            )
            cmd.add_argument("--kinds", help="comma list of kinds to simulate (default all)")
            cmd.add_argument(
                "--modbus", action="store_true", help="also serve cabinets over Modbus TCP"
            )
            cmd.add_argument(
                "--offline-on-exit", action="store_true", help="publish offline for all on exit"
            )
            cmd.add_argument(
                "--dry-run", action="store_true", help="count messages, do not connect"
            )
            cmd.add_argument(
                "--disobey",
                default="",
                help="comma list of lamp/cabinet ids that ack commands but do not carry them out",
            )
            cmd.add_argument(
                "--validate", action="store_true", help="serialise through hub models (slow)"
            )
            cmd.add_argument(
                "--trucks-via-jt808",
                metavar="HOST:PORT",
                help="trucks connect to this JT/T 808 gateway as terminals instead of MQTT"
                " (import CITY/devices-jt808.csv first: simulators/jt808_terminal.py)",
            )

    score = sub.add_parser("score", help="compare ground truth with the hub's alarms")
    score.add_argument("--truth", type=Path, required=True)
    score.add_argument(
        "--database-url",
        default=os.environ.get("HUB_DATABASE_URL"),
        help="PostgreSQL URL (env HUB_DATABASE_URL)",
    )
    score.add_argument("--since", type=_parse_time, help="ignore alarms raised before")
    score.add_argument("--until", type=_parse_time, help="ignore alarms raised after")
    score.add_argument(
        "--early", type=_duration, default=60.0, help="alarm may precede an incident by"
    )
    score.add_argument("--late", type=_duration, default=900.0, help="alarm may follow its end by")
    score.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return parser


def default_start_ms(timezone: str, duration_s: float | None, now: datetime) -> int:
    """Yesterday 16:00 local (a night comes soon), earlier if the duration needs it."""
    zone = ZoneInfo(timezone)
    local = now.astimezone(zone)
    start = datetime(local.year, local.month, local.day, 16, tzinfo=zone) - timedelta(days=1)
    if duration_s is not None:
        start = min(start, now - timedelta(seconds=duration_s))
    return int(start.timestamp() * 1000)


def cmd_city(args: argparse.Namespace) -> int:
    """Generate and write a city."""
    overrides = {
        k: v
        for k, v in (
            ("lamps", args.lamps),
            ("trucks", args.trucks),
            ("manholes", args.manholes),
            ("spots", args.spots),
        )
        if v is not None
    }
    common = {
        "seed": args.seed,
        "lamps_per_cabinet": args.lamps_per_cabinet,
        "lamps_per_circuit": args.lamps_per_circuit,
        "centre_lat": args.lat,
        "centre_lon": args.lon,
        "timezone": args.timezone,
        "county_code": args.county,
        "modbus_host": args.modbus_host,
        "modbus_base_port": args.modbus_port,
    }
    if args.devices is not None:
        spec = CitySpec.for_devices(args.devices, **overrides, **common)
    else:
        spec = CitySpec(**overrides, **common)
    progress = ProgressLine(enabled=not args.quiet)
    city = generate_city(spec, progress)
    counts = write_city(city, args.out, progress)
    progress.close()
    print(f"wrote {city.device_count()} devices to {args.out}")
    for name, count in counts.items():
        print(f"  {name:<18} {count}")
    return 0


class _StopFlag:
    """Set by the first SIGINT/SIGTERM so the run loop ends and flushes; a second one kills."""

    def __init__(self) -> None:
        self.stop = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        del frame
        logger.info("signal %s: stopping after this tick", signum)
        self.stop = True
        # A second signal ends the process at once: a run stuck reconnecting to a broker
        # that is gone would otherwise never reach the end of its tick.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def cmd_run(args: argparse.Namespace, *, modbus_only: bool = False) -> int:
    """Run the simulation until interrupted or the duration is reached."""
    city = load_city(args.city)
    seed = args.seed if args.seed is not None else city.spec.seed
    scenario = load_scenario(args.scenario) if getattr(args, "scenario", None) else ScenarioModel()
    if scenario.seed is not None and args.seed is None:
        seed = scenario.seed
    duration_s = args.duration
    now = datetime.now(UTC)
    if args.start is not None:
        start_ms = int(args.start.timestamp() * 1000)
    elif scenario.start is not None:
        start_ms = int(scenario.start.timestamp() * 1000)
    else:
        start_ms = default_start_ms(city.spec.timezone, duration_s, now)
    until_ms = start_ms + int(duration_s * 1000) if duration_s is not None else None
    noise = NoiseModel.silent() if getattr(args, "no_noise", False) else scenario.noise
    kinds: list[Kind] | None = None
    if modbus_only:
        kinds = [Kind.LIGHTING, Kind.CABINET]
    elif args.kinds:
        kinds = [Kind(k.strip()) for k in args.kinds.split(",")]

    publisher: Publisher
    paho_publisher = None
    if modbus_only or args.dry_run:
        publisher = CountingPublisher()
    else:
        from simulators.mqtt import PahoPublisher  # noqa: PLC0415  (paho only when publishing)

        first = city.cabinets[0].device_id if city.cabinets else None
        will = (f"{args.root}/cabinet/{first}/status", b"offline") if first else None
        paho_publisher = PahoPublisher(args.mqtt_url, client_id=args.client_id, will=will)
        publisher = paho_publisher
    if not modbus_only and args.trucks_via_jt808:
        from simulators import jt808_terminal  # noqa: PLC0415  (only when asked)

        print(
            f"terminal numbers for the registry: {jt808_terminal.write_terminal_devices(args.city)}"
        )
        address = jt808_terminal.parse_address(args.trucks_via_jt808)
        plates = {truck.device_id: truck.plate for truck in city.trucks}
        publisher = jt808_terminal.Jt808Fleet(publisher, address, args.root, plates)

    truth_path = None if modbus_only else (args.truth or args.city / "truth.jsonl")
    truth_handle = truth_path.open("wb") if truth_path is not None else None
    truth = TruthWriter(truth_handle) if truth_handle is not None else None
    simulation = Simulation(
        city,
        publisher,
        start_ms=start_ms,
        root=getattr(args, "root", "city"),
        seed=seed,
        noise=noise,
        validate=getattr(args, "validate", False),
        truth=truth,
        kinds=kinds,
    )
    if not modbus_only:
        extra = [parse_fault_flag(text) for text in args.fault]
        faults = plan_faults(
            city,
            scenario,
            start_ms,
            seed=seed,
            extra=extra,
            random_count=args.random_faults,
            random_within_s=args.random_within,
        )
        simulation.add_faults(faults)
        logger.info("%d faults scheduled; ground truth goes to %s", len(faults), truth_path)

    modbus_server = None
    if modbus_only or args.modbus:
        from simulators.modbus import CabinetModbusServer  # noqa: PLC0415  (pymodbus only if asked)

        modbus_server = CabinetModbusServer(
            args.modbus_bind, {c.device_id: (c.modbus_port, c.modbus_unit) for c in city.cabinets}
        )
        modbus_server.start()
        simulation.world.cabinet_listeners.append(modbus_server.update)
        print(f"Modbus TCP on {args.modbus_bind} ports {modbus_server.ports} (unit per cabinet)")

    inbox: CommandInbox | None = None  # lamps and cabinets obey `cmd` (docs/lighting.md)
    stop_listening: Callable[[], None] = CommandInbox.nothing_to_stop
    if paho_publisher is not None:
        inbox = CommandInbox(args.root)
        stop_listening = listen_for_commands(args.mqtt_url, f"{args.client_id}-cmd", inbox)
        inbox.disobey(simulation.world, args.disobey.split(","))

    stop = _StopFlag()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    progress = ProgressLine(enabled=not args.quiet)
    tz = ZoneInfo(city.spec.timezone)
    last = {"t": time.monotonic(), "n": 0}

    def on_tick(sim: Simulation) -> None:
        if inbox is not None:
            inbox.drain(sim.world)
        now_s = time.monotonic()
        if now_s - last["t"] < 1.0:
            return
        rate = (sim.messages - last["n"]) / (now_s - last["t"])
        last.update(t=now_s, n=sim.messages)
        local = datetime.fromtimestamp(sim.now_ms / 1000, tz=tz).strftime("%Y-%m-%d %H:%M:%S")
        progress.message(
            f"sim {local} | {sim.messages} msgs | {rate:,.0f} msg/s"
            f" | incidents {len(sim.incidents)}"
        )

    print(
        f"simulating {city.device_count()} devices from {format_ts(start_ms)} at x{args.speed:g}"
        + ("" if modbus_only or args.dry_run else f" to {args.mqtt_url}")
    )
    try:
        report = run_paced(
            simulation,
            publisher,
            _SystemClock(),
            speed=args.speed,
            should_stop=lambda: stop.stop,
            until_ms=until_ms,
            on_tick=on_tick,
        )
    finally:
        progress.close()
        stop_listening()
        simulation.stop(offline=getattr(args, "offline_on_exit", False))
        flushed = publisher.flush(10.0)
        publisher.close()
        if modbus_server is not None:
            modbus_server.stop()
        if truth_handle is not None:
            truth_handle.close()
    print(
        f"published {report.messages} messages, simulated {format_ts(report.sim_start_ms)} .. "
        f"{format_ts(report.sim_end_ms)}; {len(simulation.incidents)} incidents"
        + ("" if flushed else " (some messages were not acknowledged)")
    )
    return 0 if flushed else 1


def cmd_score(args: argparse.Namespace) -> int:
    """Score ground truth against the hub's alarms."""
    from simulators.alarm_source import (  # noqa: PLC0415  (psycopg only for scoring)
        AlarmQuery,
        AlarmSourceError,
        fetch_alarms,
    )

    if not args.database_url:
        print("error: set HUB_DATABASE_URL or pass --database-url", file=sys.stderr)
        return 2
    incidents = read_truth(args.truth)
    try:
        alarms = fetch_alarms(args.database_url, AlarmQuery(args.since, args.until))
    except AlarmSourceError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    report = match_alarms(incidents, alarms, MatchRules(early_s=args.early, late_s=args.late))
    if args.json:
        out = {
            name: {
                "incidents": s.incidents,
                "detected": s.detected,
                "recall": s.recall,
                "precision": s.precision,
                "true_alarms": s.true_alarms,
                "false_alarms": s.false_alarms,
                "duplicates": s.duplicates,
                "ttd_p50_s": s.delay_s(0.5),
                "ttd_p90_s": s.delay_s(0.9),
                "ttd_max_s": max(s.detect_delays_s, default=None),
            }
            for name, s in [*report.by_type.items(), ("TOTAL", report.total)]
        }
        print(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode())
    else:
        print(format_report(report))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        if args.command == "city":
            return cmd_city(args)
        if args.command == "run":
            return cmd_run(args)
        if args.command == "modbus":
            return cmd_run(args, modbus_only=True)
        return cmd_score(args)
    except (ValueError, FileNotFoundError, ConnectionError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
