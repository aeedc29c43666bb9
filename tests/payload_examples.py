"""Valid example payloads of every kind, shared by the tests."""

from typing import Any

from hub.devices.kinds import Kind

GOOD: dict[Kind, dict[str, Any]] = {
    Kind.LIGHTING: {
        "on": True,
        "dim_pct": 80,
        "voltage_v": 221.5,
        "current_a": 0.52,
        "power_w": 110.2,
        "power_factor": 0.96,
        "energy_kwh": 1234.5,
    },
    Kind.CABINET: {
        "contactor_on": True,
        "door_open": False,
        "voltage_a_v": 229.0,
        "voltage_b_v": 230.5,
        "voltage_c_v": 228.7,
        "current_a_a": 12.1,
        "current_b_a": 11.8,
        "current_c_a": 12.4,
        "power_w": 8100.0,
        "energy_kwh": 55321.2,
    },
    Kind.TRUCK: {
        "lat": 31.2990,
        "lon": 120.5853,
        "speed_kmh": 32.5,
        "heading_deg": 270,
        "acc_on": True,
        "body_lifted": False,
        "cover_closed": True,
        "load": "full",
    },
    Kind.MANHOLE: {"tilt_deg": 1.2, "cover_open": False, "battery_pct": 87, "rssi_dbm": -91},
    Kind.PARKING: {"occupied": True, "battery_pct": 64},
}


def example(kind: Kind, ts: int | str, **changes: Any) -> dict[str, Any]:
    """A valid payload of a kind at a timestamp, with some fields changed or added."""
    payload = {"ts": ts, **GOOD[kind]}
    payload.update(changes)
    return payload
