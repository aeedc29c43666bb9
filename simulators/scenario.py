"""Turn a scenario (file and flags) into concrete faults on concrete devices of a city."""

import random
from collections.abc import Sequence
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from hub.devices.kinds import Kind
from simulators.city import City
from simulators.faults import (
    FAULTS,
    ActiveFault,
    FaultSpecModel,
    ScenarioModel,
    parse_duration_s,
    resolve_start_ms,
)
from simulators.manholes import WATER_SENSOR_TYPES


def eligible_devices(city: City, fault: str) -> list[str]:
    """Devices a fault can be placed on."""
    kind = FAULTS[fault].kind
    if fault == "manhole_water_rising":
        return [m.device_id for m in city.manholes if m.cover_type in WATER_SENSOR_TYPES]
    if fault == "parking_overstay":
        return [s.device_id for s in city.spots if s.max_stay_min is not None]
    by_kind: dict[Kind, list[str]] = {
        Kind.LIGHTING: [d.device_id for d in city.lamps],
        Kind.CABINET: [d.device_id for d in city.cabinets],
        Kind.TRUCK: [d.device_id for d in city.trucks],
        Kind.MANHOLE: [d.device_id for d in city.manholes],
        Kind.PARKING: [d.device_id for d in city.spots],
    }
    return by_kind[kind]


def _minutes_until_allowed(city: City, truck_id: str, at_ms: int) -> int:
    """Minutes from `at_ms` until the truck's permit lets it drive (a day if it never does)."""
    truck = next(t for t in city.trucks if t.device_id == truck_id)
    permit = city.permit_by_id().get(truck.permit_id)
    if permit is None:
        return 24 * 60
    local = datetime.fromtimestamp(at_ms / 1000, UTC).astimezone(ZoneInfo(city.spec.timezone))
    minute = local.hour * 60 + local.minute
    return next(
        (w for w in range(24 * 60) if permit.allows_local_minute((minute + w) % (24 * 60))),
        24 * 60,
    )


def soonest_trucks(city: City, truck_ids: Sequence[str], at_ms: int) -> list[str]:
    """The trucks whose permit lets them drive soonest after `at_ms`: a truck fault waits for
    its truck to drive, so it goes to one that drives that night rather than the next day."""
    waits = {t: _minutes_until_allowed(city, t, at_ms) for t in truck_ids}
    least = min(waits.values(), default=0)
    return [t for t in truck_ids if waits[t] == least]


def plan_faults(
    city: City,
    scenario: ScenarioModel,
    start_ms: int,
    *,
    seed: int,
    extra: Sequence[FaultSpecModel] = (),
    random_count: int = 0,
    random_within_s: float | None = None,
) -> list[ActiveFault]:
    """Explicit faults first, then random ones on distinct devices; deterministic for a seed."""
    rng = random.Random(seed * 7919 + 17)
    taken: set[str] = set()
    planned: list[ActiveFault] = []

    def place(spec: FaultSpecModel, at_ms: int) -> None:
        definition = FAULTS[spec.fault]
        duration_s = (
            parse_duration_s(spec.duration)
            if spec.duration is not None
            else definition.default_duration_s
        )
        device = spec.device
        if device is None:
            choices = [d for d in eligible_devices(city, spec.fault) if d not in taken]
            if not choices:
                raise ValueError(f"no free device for fault {spec.fault}")
            if definition.kind is Kind.TRUCK:
                choices = soonest_trucks(city, choices, at_ms)
            device = rng.choice(choices)
        taken.add(device)
        planned.append(
            ActiveFault(
                spec.fault, device, at_ms, at_ms + int(duration_s * 1000), dict(spec.params)
            )
        )

    for spec in [*scenario.faults, *extra]:
        place(spec, resolve_start_ms(spec, start_ms))
    count = scenario.random.count + random_count
    within_s = (
        random_within_s if random_within_s is not None else parse_duration_s(scenario.random.within)
    )
    eligible = {n: eligible_devices(city, n) for n in scenario.random.faults or sorted(FAULTS)}
    for _ in range(count):
        # a fault whose devices all carry one already (a few trucks, many truck faults) is
        # left out of the draw rather than failing the run
        names = [n for n, devices in eligible.items() if any(d not in taken for d in devices)]
        if not names:
            break
        name = rng.choice(names)
        at_ms = start_ms + int(rng.uniform(0, within_s) * 1000)
        place(FaultSpecModel(fault=name), at_ms)
    return planned
