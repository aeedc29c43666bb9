"""Alarm types the rules raise; the simulators' ground truth and `score` use the same names."""

from enum import StrEnum


class AlarmType(StrEnum):
    """What went wrong; one active alarm per (source, type)."""

    OFFLINE = "offline"
    # lighting (lamp and cabinet)
    LAMP_OUT = "lamp_out"
    LIT_BY_DAY = "lit_by_day"
    DARK_AT_NIGHT = "dark_at_night"  # reports off at night with supply, not meant to be dark
    OVER_VOLTAGE = "over_voltage"
    UNDER_VOLTAGE = "under_voltage"
    OVER_CURRENT = "over_current"
    POWER_ABNORMAL = "power_abnormal"
    FLICKER = "flicker"
    CABINET_TRIP = "cabinet_trip"
    CIRCUIT_DARK = "circuit_dark"
    DOOR_OPEN = "door_open"
    CONTACTOR_ANOMALY = "contactor_anomaly"
    SUPPLY_LOSS = "supply_loss"
    COMMAND_NOT_EFFECTIVE = "command_not_effective"  # acked, telemetry shows otherwise
    CABLE_THEFT = "cable_theft"  # a phase's current lost at night, supply and contactor on
    POWER_FACTOR_LOW = "power_factor_low"  # a lit lamp's power factor low over hours
    VOLTAGE_TREND = "voltage_trend"  # a lamp's supply drifting out of band over hours
    # muck trucks
    ROUTE_DEVIATION = "route_deviation"
    ILLEGAL_DUMPING = "illegal_dumping"
    UNAPPROVED_DISPOSAL = "unapproved_disposal"
    OUTSIDE_HOURS = "outside_hours"
    NO_PERMIT = "no_permit"
    COVER_OPEN_MOVING = "cover_open_moving"
    OVERSPEED = "overspeed"
    TRACK_GAP = "track_gap"
    TRACK_JUMP = "track_jump"
    RESTRICTED_ZONE = "restricted_zone"
    # manhole covers
    TILT = "tilt"
    COVER_OPEN = "cover_open"
    WATER_ALERT = "water_alert"
    WATER_DANGER = "water_danger"
    GAS = "gas"
    LOW_BATTERY = "low_battery"
    # parking
    OVERSTAY = "overstay"
    STUCK_SENSOR = "stuck_sensor"


class Severity(StrEnum):
    """Alarm severity, most severe first in `SEVERITY_ORDER`."""

    CRITICAL = "critical"
    MAJOR = "major"
    MINOR = "minor"
    WARNING = "warning"


SEVERITY_ORDER: tuple[Severity, ...] = (
    Severity.CRITICAL,
    Severity.MAJOR,
    Severity.MINOR,
    Severity.WARNING,
)
