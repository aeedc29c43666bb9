"""National classification of components and matters (GB/T 47678.5-2026, CJ/T 214-2007 aliases).

The table itself is data (``data/classification.csv`` and ``data/majors.csv``) so a wrong
code is corrected in one place. Matter majors 01-05 are the "异常" (fault) of the
component with the same five-digit code: a lamp that is out is the matter 01037 路灯异常,
derived here from the component 01037 路灯 by `anomaly_matter_of` instead of being
listed twice in the data.
"""

import csv
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from enum import StrEnum
from functools import cache
from importlib import resources

_CLASS_CODE_LEN = 5
_ALIAS_2007_LEN = 4
_COUNTY_LEN = 6
_SERIAL_LEN = 6
_COMPONENT_ID_LEN = _COUNTY_LEN + _CLASS_CODE_LEN + _SERIAL_LEN
_COMPONENT_ID_2007_LEN = _COUNTY_LEN + _ALIAS_2007_LEN + _SERIAL_LEN
_MATTER_CODE_LEN = _COUNTY_LEN + _CLASS_CODE_LEN
_GRID_CODE_LEN = 15

# Matter majors that mirror the component majors one to one ("X异常").
MIRRORED_MAJORS: frozenset[str] = frozenset({"01", "02", "03", "04", "05"})

# First two digits of a GB/T 2260 county code: the province-level divisions.
_PROVINCE_PREFIXES: frozenset[str] = frozenset(
    {
        *(f"{n}" for n in range(11, 16)),
        *(f"{n}" for n in range(21, 24)),
        *(f"{n}" for n in range(31, 38)),
        *(f"{n}" for n in range(41, 47)),
        *(f"{n}" for n in range(50, 55)),
        *(f"{n}" for n in range(61, 66)),
        "71",
        "81",
        "82",
    }
)


class ClassificationError(ValueError):
    """A code is malformed or not in the classification table."""


class ClassKind(StrEnum):
    """部件 (a physical asset) or 事项 (a matter, an event or situation)."""

    COMPONENT = "component"
    MATTER = "matter"


@dataclass(frozen=True, slots=True)
class MajorClass:
    """A two-digit major class of one kind."""

    kind: ClassKind
    major: str
    name_zh: str
    name_en: str


@dataclass(frozen=True, slots=True)
class CaseClass:
    """One class of the table, keyed by (kind, code); `alias_2007` is the CJ/T 214-2007 code."""

    kind: ClassKind
    code: str
    alias_2007: str | None
    name_zh: str
    name_en: str
    alias_verified: bool = False

    @property
    def major(self) -> str:
        """The two-digit major class."""
        return self.code[:2]

    @property
    def key(self) -> tuple[ClassKind, str]:
        """The table key."""
        return (self.kind, self.code)


def anomaly_matter_of(component: CaseClass) -> CaseClass:
    """The "异常" matter filed for a faulty component: same code, kind matter, majors 01-05 only."""
    if component.kind is not ClassKind.COMPONENT:
        raise ClassificationError(f"{component.kind} {component.code} is not a component")
    if component.major not in MIRRORED_MAJORS:
        raise ClassificationError(
            f"component major {component.major} has no mirrored 异常 matter major"
        )
    return replace(
        component,
        kind=ClassKind.MATTER,
        name_zh=f"{component.name_zh}异常",
        name_en=f"{component.name_en} fault",
    )


def _require_digits(text: str, length: int, what: str) -> str:
    if len(text) != length or not text.isascii() or not text.isdigit():
        raise ClassificationError(f"{what} must be {length} ASCII digits, got {text!r}")
    return text


def validate_class_code(code: str) -> str:
    """Return a well-formed five-digit 2026 class code or raise."""
    _require_digits(code, _CLASS_CODE_LEN, "class code")
    if code[2:] == "000" or code[:2] == "00":
        raise ClassificationError(f"class code {code!r} has a zero major or minor class")
    return code


def validate_county_code(code: str) -> str:
    """Return a well-formed six-digit GB/T 2260 county code or raise."""
    _require_digits(code, _COUNTY_LEN, "county code")
    if code[:2] not in _PROVINCE_PREFIXES:
        raise ClassificationError(f"county code {code!r} has no province {code[:2]!r}")
    return code


class ClassificationTable:
    """Lookups by (kind, 2026 code) and by (kind, 2007 alias), with 异常 matters derived."""

    __slots__ = ("_by_alias", "_by_key", "_majors")

    def __init__(self, classes: Iterable[CaseClass], majors: Iterable[MajorClass]) -> None:
        self._majors: dict[tuple[ClassKind, str], MajorClass] = {}
        for major in majors:
            if (major.kind, major.major) in self._majors:
                raise ClassificationError(f"duplicate major {major.kind} {major.major}")
            self._majors[(major.kind, major.major)] = major
        self._by_key: dict[tuple[ClassKind, str], CaseClass] = {}
        self._by_alias: dict[tuple[ClassKind, str], CaseClass] = {}
        listed = list(classes)
        derived = [
            anomaly_matter_of(c)
            for c in listed
            if c.kind is ClassKind.COMPONENT and c.major in MIRRORED_MAJORS
        ]
        for case_class in (*listed, *derived):
            self._add(case_class)

    def _add(self, case_class: CaseClass) -> None:
        validate_class_code(case_class.code)
        if (case_class.kind, case_class.major) not in self._majors:
            raise ClassificationError(
                f"{case_class.kind} {case_class.code}: unknown major {case_class.major}"
            )
        if case_class.key in self._by_key:
            raise ClassificationError(f"duplicate class {case_class.kind} {case_class.code}")
        self._by_key[case_class.key] = case_class
        if case_class.alias_2007 is not None:
            _require_digits(case_class.alias_2007, _ALIAS_2007_LEN, "2007 class code")
            alias_key = (case_class.kind, case_class.alias_2007)
            if alias_key in self._by_alias:
                raise ClassificationError(
                    f"duplicate 2007 alias {case_class.kind} {case_class.alias_2007}"
                )
            self._by_alias[alias_key] = case_class

    def __iter__(self) -> Iterator[CaseClass]:
        return iter(self._by_key.values())

    def __len__(self) -> int:
        return len(self._by_key)

    def __contains__(self, key: object) -> bool:
        return key in self._by_key

    def get(self, kind: ClassKind, code: str) -> CaseClass:
        """The class with this 2026 code, or ClassificationError."""
        try:
            return self._by_key[(kind, code)]
        except KeyError:
            raise ClassificationError(f"no {kind} class with 2026 code {code!r}") from None

    def by_alias_2007(self, kind: ClassKind, alias: str) -> CaseClass:
        """The class whose CJ/T 214-2007 code is `alias`, or ClassificationError."""
        try:
            return self._by_alias[(kind, alias)]
        except KeyError:
            raise ClassificationError(f"no {kind} class with 2007 code {alias!r}") from None

    def resolve(self, kind: ClassKind, code: str) -> CaseClass:
        """Look up a 5-digit 2026 code or a 4-digit 2007 alias."""
        if len(code) == _ALIAS_2007_LEN:
            return self.by_alias_2007(kind, code)
        return self.get(kind, code)

    def major(self, kind: ClassKind, major: str) -> MajorClass:
        """The major class of this kind, or ClassificationError."""
        try:
            return self._majors[(kind, major)]
        except KeyError:
            raise ClassificationError(f"no {kind} major class {major!r}") from None

    def anomaly_matter(self, component_code: str) -> CaseClass:
        """The 异常 matter of a listed component, e.g. 01037 路灯 → matter 01037 路灯异常."""
        return anomaly_matter_of(self.get(ClassKind.COMPONENT, component_code))


def parse_classification_csv(classes_text: str, majors_text: str) -> ClassificationTable:
    """Build a table from the CSV texts of the packaged data files."""
    majors = [
        MajorClass(
            kind=ClassKind(row["kind"]),
            major=_require_digits(row["major"], 2, "major class"),
            name_zh=row["name_zh"],
            name_en=row["name_en"],
        )
        for row in csv.DictReader(io.StringIO(majors_text))
    ]
    classes = [
        CaseClass(
            kind=ClassKind(row["kind"]),
            code=row["code"],
            alias_2007=row["alias_2007"] or None,
            name_zh=row["name_zh"],
            name_en=row["name_en"],
            alias_verified=row["alias_verified"].strip().lower() == "true",
        )
        for row in csv.DictReader(io.StringIO(classes_text))
    ]
    return ClassificationTable(classes, majors)


@cache
def load_classification() -> ClassificationTable:
    """The packaged classification table (read once per process)."""
    data = resources.files("hub.cases").joinpath("data")
    return parse_classification_csv(
        data.joinpath("classification.csv").read_text(encoding="utf-8"),
        data.joinpath("majors.csv").read_text(encoding="utf-8"),
    )


@dataclass(frozen=True, slots=True)
class ComponentInstanceId:
    """A component instance: county (6) + class (5, or 4 in 2007 ids) + serial (6)."""

    county_code: str
    class_code: str
    serial: str

    def __str__(self) -> str:
        return f"{self.county_code}{self.class_code}{self.serial}"


def parse_component_instance_id(
    text: str, table: ClassificationTable | None = None
) -> ComponentInstanceId:
    """Split a 17-digit (2026) or 16-digit (2007) component id; check the class if given a table."""
    if len(text) == _COMPONENT_ID_2007_LEN:
        _require_digits(text, _COMPONENT_ID_2007_LEN, "2007 component id")
        class_len = _ALIAS_2007_LEN
    else:
        _require_digits(text, _COMPONENT_ID_LEN, "component id")
        class_len = _CLASS_CODE_LEN
    county = validate_county_code(text[:_COUNTY_LEN])
    class_code = text[_COUNTY_LEN : _COUNTY_LEN + class_len]
    serial = text[_COUNTY_LEN + class_len :]
    if class_len == _CLASS_CODE_LEN:
        validate_class_code(class_code)
    if table is not None:
        table.resolve(ClassKind.COMPONENT, class_code)
    return ComponentInstanceId(county_code=county, class_code=class_code, serial=serial)


@dataclass(frozen=True, slots=True)
class MatterCode:
    """A matter code: county (6) + 2026 class (5)."""

    county_code: str
    class_code: str

    def __str__(self) -> str:
        return f"{self.county_code}{self.class_code}"


def parse_matter_code(text: str, table: ClassificationTable | None = None) -> MatterCode:
    """Split an 11-digit matter code; check the class if given a table."""
    _require_digits(text, _MATTER_CODE_LEN, "matter code")
    county = validate_county_code(text[:_COUNTY_LEN])
    class_code = validate_class_code(text[_COUNTY_LEN:])
    if table is not None:
        table.get(ClassKind.MATTER, class_code)
    return MatterCode(county_code=county, class_code=class_code)


@dataclass(frozen=True, slots=True)
class UnitGridCode:
    """A 单元网格 code: county (6) + 街道 (3) + 社区 (3) + grid sequence (3)."""

    county_code: str
    street_code: str
    community_code: str
    grid_seq: str

    def __str__(self) -> str:
        return f"{self.county_code}{self.street_code}{self.community_code}{self.grid_seq}"

    @property
    def community_prefix(self) -> str:
        """The 12-digit prefix shared by all grids of the community."""
        return f"{self.county_code}{self.street_code}{self.community_code}"


def parse_unit_grid_code(text: str) -> UnitGridCode:
    """Split a 15-digit unit-grid code; street, community and grid parts must be non-zero."""
    _require_digits(text, _GRID_CODE_LEN, "unit grid code")
    county = validate_county_code(text[:6])
    street, community, grid = text[6:9], text[9:12], text[12:15]
    for part, name in ((street, "street"), (community, "community"), (grid, "grid")):
        if part == "000":
            raise ClassificationError(f"unit grid code {text!r} has a zero {name} part")
    return UnitGridCode(
        county_code=county, street_code=street, community_code=community, grid_seq=grid
    )
