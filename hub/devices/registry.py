"""Device registry records and the parsing of registry import files (CSV and GeoJSON)."""

import csv
import io
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hub.devices.decode import DEVICE_ID_PATTERN
from hub.devices.kinds import Kind

CORE_COLUMNS = (
    "device_id",
    "kind",
    "lat",
    "lon",
    "name",
    "grid_code",
    "class_code",
    "department",
    "parent_id",
)
REQUIRED_COLUMNS = ("device_id", "kind", "lat", "lon")
AttributeValue = str | int | float | bool | None | list[Any] | dict[str, Any]


class DeviceRecord(BaseModel):
    """One registered asset: where it is, what it is, who owns it, and kind-specific attributes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    device_id: str = Field(pattern=DEVICE_ID_PATTERN.pattern)
    kind: Kind
    lat: float = Field(ge=-90, le=90, allow_inf_nan=False)
    lon: float = Field(ge=-180, le=180, allow_inf_nan=False)
    name: str | None = Field(default=None, max_length=200)
    grid_code: str | None = Field(default=None, pattern=r"^[0-9]{15}$")
    class_code: str | None = Field(default=None, pattern=r"^[0-9]{4,5}$")
    department: str | None = Field(default=None, max_length=200)
    parent_id: str | None = Field(default=None, pattern=DEVICE_ID_PATTERN.pattern)
    attributes: dict[str, AttributeValue] = Field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ImportProblem:
    """A row that cannot be imported: where it is and what to fix."""

    line: int
    device_id: str | None
    reason: str

    def __str__(self) -> str:
        who = f" ({self.device_id})" if self.device_id else ""
        return f"line {self.line}{who}: {self.reason}"


@dataclass(frozen=True, slots=True)
class ParsedImport:
    """The good records and the problems found in an import file."""

    records: list[DeviceRecord]
    problems: list[ImportProblem]


def _attribute_value(text: str) -> AttributeValue:
    """Numbers and booleans as such, JSON objects/arrays decoded, everything else as text."""
    stripped = text.strip()
    lowered = stripped.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for convert in (int, float):
        try:
            return convert(stripped)
        except ValueError:
            continue
    if stripped[:1] in ("{", "["):
        try:
            decoded: AttributeValue = json.loads(stripped)
        except json.JSONDecodeError:
            return stripped
        return decoded
    return stripped


def _describe(err: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'row'}: {e['msg']}"
        for e in err.errors(include_url=False, include_input=False)
    )


def _check_record(
    line: int, raw: dict[str, Any], seen: dict[str, int]
) -> DeviceRecord | ImportProblem:
    device_id = raw.get("device_id") if isinstance(raw.get("device_id"), str) else None
    try:
        record = DeviceRecord.model_validate(raw)
    except ValidationError as err:
        return ImportProblem(line, device_id, _describe(err))
    if record.device_id in seen:
        return ImportProblem(
            line,
            record.device_id,
            f"duplicate device_id, first seen on line {seen[record.device_id]}",
        )
    seen[record.device_id] = line
    return record


def _split(results: Iterator[DeviceRecord | ImportProblem]) -> ParsedImport:
    records: list[DeviceRecord] = []
    problems: list[ImportProblem] = []
    for result in results:
        if isinstance(result, DeviceRecord):
            records.append(result)
        else:
            problems.append(result)
    return ParsedImport(records, problems)


def parse_device_csv(text: str) -> ParsedImport:
    """Parse a registry CSV: core columns by name, every other column a kind-specific attribute."""
    reader = csv.DictReader(io.StringIO(text))
    header = reader.fieldnames or []
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        return ParsedImport([], [ImportProblem(1, None, f"header lacks {', '.join(missing)}")])

    def rows() -> Iterator[DeviceRecord | ImportProblem]:
        seen: dict[str, int] = {}
        for row in reader:
            line = reader.line_num
            if None in row:
                yield ImportProblem(line, row.get("device_id"), "more cells than header columns")
                continue
            raw: dict[str, Any] = {}
            attributes: dict[str, AttributeValue] = {}
            for column, cell in row.items():
                if cell is None or cell.strip() == "":
                    continue
                if column in CORE_COLUMNS:
                    raw[column] = cell.strip()
                else:
                    attributes[column] = _attribute_value(cell)
            raw["attributes"] = attributes
            yield _check_record(line, raw, seen)

    return _split(rows())


def parse_device_geojson(text: str) -> ParsedImport:
    """Parse a FeatureCollection of Point features whose properties carry the registry columns."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        return ParsedImport([], [ImportProblem(err.lineno, None, f"invalid JSON: {err.msg}")])
    features = data.get("features") if isinstance(data, dict) else None
    if not isinstance(features, list):
        return ParsedImport([], [ImportProblem(1, None, "expected a GeoJSON FeatureCollection")])

    def rows() -> Iterator[DeviceRecord | ImportProblem]:
        seen: dict[str, int] = {}
        for index, feature in enumerate(features, start=1):
            geometry = feature.get("geometry") if isinstance(feature, dict) else None
            props = feature.get("properties") if isinstance(feature, dict) else None
            if not isinstance(props, dict):
                yield ImportProblem(index, None, "feature has no properties object")
                continue
            coords = geometry.get("coordinates") if isinstance(geometry, dict) else None
            if not (
                isinstance(geometry, dict)
                and geometry.get("type") == "Point"
                and isinstance(coords, list)
                and len(coords) >= 2
            ):
                yield ImportProblem(index, props.get("device_id"), "geometry must be a Point")
                continue
            raw: dict[str, Any] = {"lon": coords[0], "lat": coords[1], "attributes": {}}
            for key, value in props.items():
                if value is None:
                    continue
                if key in CORE_COLUMNS and key not in ("lat", "lon"):
                    raw[key] = value
                elif key == "attributes" and isinstance(value, dict):
                    raw["attributes"].update(value)
                elif key not in ("lat", "lon"):
                    raw["attributes"][key] = value
            yield _check_record(index, raw, seen)

    return _split(rows())


def _cell(value: AttributeValue) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def format_device_csv(records: Sequence[DeviceRecord]) -> str:
    """Registry CSV in the import format: core columns, then one column per attribute key."""
    attribute_keys = sorted({key for r in records for key in r.attributes})
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*CORE_COLUMNS, *attribute_keys])
    for r in records:
        core = r.model_dump(mode="json", exclude={"attributes"})
        writer.writerow(
            [_cell(core.get(c)) for c in CORE_COLUMNS]
            + [_cell(r.attributes.get(k)) for k in attribute_keys]
        )
    return out.getvalue()


def parse_device_file(name: str, text: str) -> ParsedImport:
    """Pick the parser by file name: `.geojson`/`.json` as GeoJSON, anything else as CSV."""
    if name.lower().endswith((".geojson", ".json")):
        return parse_device_geojson(text)
    return parse_device_csv(text)


# A change is re-read for this long: a transaction that committed a little after a refresh
# (its updated_at earlier than what that refresh saw) is still picked up, and changes older
# than this are not read again (a bulk import shares one updated_at; re-reading the newest
# of them on every refresh re-read the whole registry).
REGISTRY_SLACK = timedelta(seconds=10)


def resume_point(newest: datetime | None, now: datetime) -> datetime | None:
    """Where the next refresh starts: after the newest change seen, less the slack."""
    return None if newest is None else min(newest, now - REGISTRY_SLACK)
