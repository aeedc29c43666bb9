"""Registry attributes the hub reads, as data: kind, type, unit, default and who reads it.

A device's kind-specific attributes (the extra columns of `devices.csv`, the `attributes`
object of the API) are free-form; these are the ones rules, services and stores read.
docs/registry.md holds `markdown_table()` verbatim, and a test fails when code in hub/
reads an attribute that is not listed here (tests/rules/test_registry_attributes.py).
Per-device rule overrides (`rules.<rule>.<parameter>`) are a mechanism over every rule
parameter rather than single attributes: `RULE_OVERRIDE_PREFIX` and docs/registry.md.
"""

from dataclasses import dataclass

RULE_OVERRIDE_PREFIX = "rules."
"""`rules.<rule>.<parameter>` (flat column) or `{"rules": {"<rule>": {…}}}` (nested)."""


@dataclass(frozen=True, slots=True)
class RegistryAttribute:
    """One attribute: the kinds that carry it, its value, and what reads it."""

    name: str
    kinds: tuple[str, ...]
    value: str  # number, text, boolean, or a list of the accepted words
    unit: str  # "" when it has none
    default: str  # what counts when the attribute is absent
    read_by: str


ATTRIBUTES: tuple[RegistryAttribute, ...] = (
    RegistryAttribute(
        "rated_power_w",
        ("lighting",),
        "number > 0",
        "W",
        "none: checks against the rating are skipped",
        "rules `lamp_out` (dark share of rating × dim), `power_abnormal`, `over_current`",
    ),
    RegistryAttribute(
        "lamp_type",
        ("lighting",),
        "`LED`, `HPS`",
        "",
        "rated lives of an unknown type",
        "lamp life forecast (`GET /lighting/lamps/life`): default rated lives",
    ),
    RegistryAttribute(
        "rated_life_h",
        ("lighting",),
        "number ≥ 0",
        "h",
        "by `lamp_type`: LED 50,000, HPS 24,000, else 20,000",
        "lamp life forecast",
    ),
    RegistryAttribute(
        "driver_rated_life_h",
        ("lighting",),
        "number ≥ 0",
        "h",
        "50,000",
        "lamp life forecast",
    ),
    RegistryAttribute(
        "rated_switches",
        ("lighting",),
        "number ≥ 0",
        "switchings",
        "50,000",
        "lamp life forecast",
    ),
    RegistryAttribute(
        "burning_hours_before",
        ("lighting",),
        "number ≥ 0",
        "h",
        "0",
        "lamp life forecast (hours burnt before the hub's records)",
    ),
    RegistryAttribute(
        "switches_before",
        ("lighting",),
        "number ≥ 0",
        "switchings",
        "0",
        "lamp life forecast",
    ),
    RegistryAttribute(
        "cabinet_id",
        ("lighting",),
        "device id of a cabinet",
        "",
        "`parent_id` wins; neither: no cabinet",
        "lighting commands and schedules (targets by cabinet), console",
    ),
    RegistryAttribute(
        "circuit_id",
        ("lighting",),
        "text (`CAB-00001-2`)",
        "",
        "none: not addressable by circuit",
        "lighting commands and schedules (targets by circuit), command effect checks",
    ),
    RegistryAttribute(
        "group",
        ("lighting",),
        "text",
        "",
        "none",
        "lighting commands and schedules (target `group:<name>`)",
    ),
    RegistryAttribute(
        "modbus_host",
        ("cabinet",),
        "host name or address",
        "",
        "none: not polled over Modbus TCP",
        "Modbus poller (hub/ingest/modbus.py)",
    ),
    RegistryAttribute(
        "modbus_port",
        ("cabinet",),
        "integer",
        "",
        "none: not polled over Modbus TCP",
        "Modbus poller",
    ),
    RegistryAttribute("modbus_unit", ("cabinet",), "integer", "", "1", "Modbus poller (unit id)"),
    RegistryAttribute(
        "modbus_serial",
        ("cabinet",),
        "serial device path",
        "",
        "none: TCP (`modbus_host`) or not polled",
        "Modbus poller (RTU)",
    ),
    RegistryAttribute(
        "modbus_baudrate", ("cabinet",), "integer", "baud", "9600", "Modbus poller (RTU)"
    ),
    RegistryAttribute(
        "cover_type",
        ("manhole",),
        "`water_supply`, `sewage`, `storm_water`, `power`, `street_lighting`, `telecom`,"
        " `cable_tv`, `network`, `heating`, `gas`, `police`, `reclaimed_water`, `unknown`",
        "",
        "`unknown`",
        "rule `manhole_tilt` (threshold per cover type), manhole views",
    ),
    RegistryAttribute(
        "baseline_tilt_deg",
        ("manhole",),
        "number",
        "°",
        "0 (never calibrated)",
        "rule `manhole_tilt` (tilt is measured from it), manhole views",
    ),
    RegistryAttribute(
        "road_class",
        ("manhole",),
        "`main` or other text",
        "",
        "none: not a main road",
        "rules `manhole_tilt`, `manhole_cover_open` (critical on a main road), manhole views",
    ),
    RegistryAttribute(
        "zone_id",
        ("parking",),
        "id of an on-street zone (`PZ-…`)",
        "",
        "none (a spot has `zone_id` or `lot_id`)",
        "parking occupancy per zone, `hub parking import` (copies the zone's maximum stay)",
    ),
    RegistryAttribute(
        "lot_id",
        ("parking",),
        "id of an off-street lot (`LOT-…`)",
        "",
        "none",
        "parking occupancy per lot",
    ),
    RegistryAttribute(
        "max_stay_min",
        ("parking",),
        "number > 0",
        "min",
        "none: unlimited (copied from the zone at import)",
        "rule `parking_spot` (`parking_overstay`), parking views",
    ),
    RegistryAttribute(
        "permit_id",
        ("truck",),
        "a permit's id (`PMT-…`)",
        "",
        "none: the truck's permits are found by `truck_id` only",
        "truck rules (route corridor, hours, disposal sites), `GET /trucks` filter",
    ),
    RegistryAttribute(
        "company",
        ("truck",),
        "text",
        "",
        "none",
        "`GET /trucks` (shown, filter by company)",
    ),
    RegistryAttribute(
        "plate",
        ("truck",),
        "text (苏E…)",
        "",
        "the device's `name`",
        "JT/T 808 gateway (terminal registration), `GET /trucks`",
    ),
    RegistryAttribute(
        "plate_colour",
        ("truck",),
        "integer (JT/T 808 colour code)",
        "",
        "none",
        "JT/T 808 gateway (terminal registration)",
    ),
    RegistryAttribute(
        "jt808_phone",
        ("truck",),
        "terminal phone number",
        "",
        "none: no JT/T 808 terminal",
        "JT/T 808 gateway (which terminal is which truck)",
    ),
)

BY_NAME: dict[str, RegistryAttribute] = {a.name: a for a in ATTRIBUTES}


def markdown_table() -> str:
    """The table of docs/registry.md, one row per attribute."""
    rows = [
        "| attribute | kinds | value | unit | when absent | read by |",
        "|---|---|---|---|---|---|",
    ]
    for a in ATTRIBUTES:
        kinds = ", ".join(a.kinds)
        rows.append(f"| `{a.name}` | {kinds} | {a.value} | {a.unit} | {a.default} | {a.read_by} |")
    return "\n".join(rows)
