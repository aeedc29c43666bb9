"""Case policy: routing (class + area → department), filing per alarm type, deadlines, weights.

All of it lives in one validated YAML file, ``policy.yaml``, so a city changes who gets
which case, what becomes a case and how long each stage may take without code changes.
"""

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from functools import cache
from importlib import resources
from typing import Literal, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from hub.cases.attachments import AttachmentKind
from hub.cases.calendar import Urgency, require_aware
from hub.cases.classification import (
    CaseClass,
    ClassificationError,
    ClassificationTable,
    ClassKind,
    load_classification,
    parse_unit_grid_code,
    validate_class_code,
)
from hub.cases.deadlines import DeadlineTable, class_specificity
from hub.cases.evaluation import EvaluationConfig
from hub.cases.workflow import Action, CaseSource
from hub.rules.alarm_types import SEVERITY_ORDER, AlarmType, Severity

_GRID_CODE_LEN = 15


class PolicyError(ValueError):
    """The policy file is invalid, or a decision cannot be made from it."""


def severity_at_least(severity: Severity, threshold: Severity) -> bool:
    """True when `severity` is as severe as `threshold` or more."""
    return SEVERITY_ORDER.index(severity) <= SEVERITY_ORDER.index(threshold)


class RouteRule(BaseModel):
    """Cases of these classes (codes or majors; empty = any) in this area go to a department."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    class_codes: list[str] = []
    area: str = Field(default="", pattern=r"^\d{0,15}$")
    department: str = Field(min_length=1)

    @model_validator(mode="after")
    def _selectors(self) -> Self:
        for selector in self.class_codes:
            if not (len(selector) == 2 and selector.isdigit()):
                validate_class_code(selector)
        return self

    def specificity(self, class_code: str, grid_code: str | None) -> tuple[int, int] | None:
        """(class match, area prefix length) for ranking, or None when the rule does not apply."""
        class_rank = class_specificity(self.class_codes, class_code)
        if class_rank is None:
            return None
        if self.area and (grid_code is None or not grid_code.startswith(self.area)):
            return None
        return (class_rank, len(self.area))


class RoutingModel(BaseModel):
    """Route rules with a default; the most specific rule wins: class first, then area."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    default_department: str = Field(min_length=1)
    routes: list[RouteRule] = []

    @model_validator(mode="after")
    def _unambiguous(self) -> Self:
        seen: dict[tuple[str, str], int] = {}
        for index, rule in enumerate(self.routes):
            for selector in rule.class_codes or ["*"]:
                key = (selector, rule.area)
                if key in seen:
                    raise ValueError(
                        f"routes {seen[key]} and {index} both route class {selector} "
                        f"in area {rule.area or 'any'}"
                    )
                seen[key] = index
        return self

    def route(self, class_code: str, grid_code: str | None) -> str:
        """The responsible department for a class in a unit grid (or the default)."""
        validate_class_code(class_code)
        if grid_code is not None:
            parse_unit_grid_code(grid_code)
        ranked = [
            (rank, rule.department)
            for rule in self.routes
            if (rank := rule.specificity(class_code, grid_code)) is not None
        ]
        if not ranked:
            return self.default_department
        return max(ranked, key=lambda pair: pair[0])[1]


class FilingMode(StrEnum):
    """When an alarm becomes a case: at once, after it stays active a while, or never."""

    AT_ONCE = "at_once"
    AFTER = "after"
    NEVER = "never"


class FilingRule(BaseModel):
    """How one alarm type is filed: when, under which class, how urgent, how automatic."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: FilingMode
    after_min: float | None = Field(default=None, gt=0)
    min_severity: Severity | None = None
    urgency: Urgency = Urgency.NORMAL
    urgent_at_severity: Severity | None = None
    class_kind: ClassKind = ClassKind.MATTER
    class_code: str | None = None
    class_from_device: bool = False
    description: str = ""
    auto_register: bool = False
    auto_dispatch: bool = False
    department: str | None = Field(
        default=None, description="responsible department, overriding routing by class"
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if (self.mode is FilingMode.AFTER) != (self.after_min is not None):
            raise ValueError("after_min is required with mode 'after' and only with it")
        if self.mode is not FilingMode.NEVER and not (self.class_code or self.class_from_device):
            raise ValueError("a filed alarm needs class_code, class_from_device, or both")
        if self.class_from_device and self.class_kind is not ClassKind.MATTER:
            raise ValueError("class_from_device files the component's 异常 matter: kind matter")
        if self.class_code is not None:
            validate_class_code(self.class_code)
        if self.auto_dispatch and not self.auto_register:
            raise ValueError("auto_dispatch needs auto_register")
        return self

    def case_class(self, table: ClassificationTable, device_class_code: str | None) -> CaseClass:
        """The class to file under: the device component's 异常 matter, else `class_code`."""
        if self.class_from_device and device_class_code is not None:
            return table.anomaly_matter(device_class_code)
        if self.class_code is None:
            raise PolicyError("alarm needs the device's component class code to be filed")
        return table.get(self.class_kind, self.class_code)


class IncidentJoin(BaseModel):
    """Alarm types that describe one fault and so join one open case (one incident, one case).

    Alarms of `alarm_types` on one source (a device, or the group of the same id: a
    cabinet and its lamp group) join the open case filed from any of them; alarms of
    `member_alarm_types` on a device whose registry parent is that source join it too.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    incident: str = Field(min_length=1)
    alarm_types: frozenset[AlarmType] = Field(min_length=1)
    member_alarm_types: frozenset[AlarmType] = frozenset()


class JoinScope(StrEnum):
    """Whose open cases an alarm may join: its own source's, or its registry parent's."""

    SOURCE = "source"
    PARENT = "parent"


@dataclass(frozen=True, slots=True)
class JoinLookup:
    """One place to look for the open case an alarm joins, in order of preference."""

    scope: JoinScope
    incident: str
    alarm_types: frozenset[AlarmType]


RECURRENCE = "recurrence"


class CentrePolicy(BaseModel):
    """How the centre runs its steps: which reports are checked on site (核实) before 立案,
    how a public report's hazard answer sets its urgency, and which duties stay separate."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    check_before_register: frozenset[CaseSource] = frozenset({CaseSource.OPEN311})
    hazard_urgency: dict[str, Urgency] = Field(
        default_factory=lambda: {"yes": Urgency.URGENT},
        description="Open311 attribute[hazard] answer -> urgency of the case",
    )
    separate_dispatch_and_verify: bool = Field(
        default=True, description="the one who dispatched a case may not verify it (核查)"
    )
    callback_sources: frozenset[CaseSource] = Field(
        default=frozenset({CaseSource.OPEN311, CaseSource.HOTLINE}),
        description="reports whose reporter is called back (回访) after 结案",
    )
    photos_required: dict[Action, frozenset[AttachmentKind]] = Field(
        default_factory=dict,
        description=(
            "workflow action -> attachment kinds one of which must have been uploaded in the"
            " running stage before it is taken (e.g. feedback: [after])"
        ),
    )
    attachment_max_kib: int = Field(
        default=1000, ge=1, le=100 * 1024, description="largest attachment (photo) accepted"
    )


class CasePolicy(BaseModel):
    """The whole case policy file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1]
    departments: dict[str, str] = Field(min_length=1)
    routing: RoutingModel
    filing: dict[AlarmType, FilingRule]
    joining: list[IncidentJoin] = []
    deadlines: DeadlineTable
    evaluation: EvaluationConfig = EvaluationConfig()
    centre: CentrePolicy = CentrePolicy()

    def files(self, alarm_type: AlarmType, severity: Severity) -> bool:
        """Whether an alarm of this type and severity is ever filed (`decide_filing` skips
        it otherwise, whatever the device and however long it holds)."""
        rule = self.filing.get(alarm_type)
        if rule is None or rule.mode is FilingMode.NEVER:
            return False
        return rule.min_severity is None or severity_at_least(severity, rule.min_severity)

    @model_validator(mode="after")
    def _one_incident_per_type(self) -> Self:
        seen: dict[AlarmType, str] = {}
        for join in self.joining:
            both = join.alarm_types & join.member_alarm_types
            if both:
                raise ValueError(
                    f"joining {join.incident}: {sorted(both)} cannot be both the source's"
                    " and its members' alarm types"
                )
            for alarm_type in sorted(join.alarm_types | join.member_alarm_types):
                if alarm_type in seen:
                    raise ValueError(
                        f"joining: {alarm_type} is in both {seen[alarm_type]} and {join.incident}"
                    )
                seen[alarm_type] = join.incident
        return self

    def join_lookups(self, alarm_type: AlarmType) -> tuple[JoinLookup, ...]:
        """Where a filed alarm looks for an open case to join before opening its own.

        Always the same source's open case of the same type (a recurrence) or of a type
        of its incident; then, for a member type, its parent's open case of the incident.
        """
        for join in self.joining:
            if alarm_type in join.alarm_types:
                return (
                    JoinLookup(JoinScope.SOURCE, join.incident, join.alarm_types | {alarm_type}),
                )
            if alarm_type in join.member_alarm_types:
                return (
                    JoinLookup(JoinScope.SOURCE, RECURRENCE, frozenset({alarm_type})),
                    JoinLookup(JoinScope.PARENT, join.incident, join.alarm_types),
                )
        return (JoinLookup(JoinScope.SOURCE, RECURRENCE, frozenset({alarm_type})),)

    @model_validator(mode="after")
    def _references(self) -> Self:
        targets = [
            self.routing.default_department,
            *(r.department for r in self.routing.routes),
            *(f.department for f in self.filing.values() if f.department is not None),
        ]
        unknown = sorted({d for d in targets if d not in self.departments})
        if unknown:
            raise ValueError(f"routing names departments not listed under departments: {unknown}")
        table = load_classification()
        for alarm_type, rule in self.filing.items():
            if rule.class_code is None:
                continue
            try:
                if rule.class_from_device:
                    table.anomaly_matter(rule.class_code)
                else:
                    table.get(rule.class_kind, rule.class_code)
            except ClassificationError as err:
                raise ValueError(f"filing.{alarm_type}: {err}") from err
        return self


def parse_case_policy(text: str) -> CasePolicy:
    """Validate a policy YAML document; PolicyError lists every problem found."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise PolicyError(f"policy is not valid YAML: {err}") from err
    try:
        return CasePolicy.model_validate(document)
    except ValidationError as err:
        raise PolicyError(f"policy is invalid:\n{err}") from err


@cache
def load_case_policy() -> CasePolicy:
    """The packaged `policy.yaml`, validated once per process."""
    text = resources.files("hub.cases").joinpath("policy.yaml").read_text(encoding="utf-8")
    return parse_case_policy(text)


class FilingOutcome(StrEnum):
    """What to do with an alarm now."""

    FILE = "file"
    WAIT = "wait"
    SKIP = "skip"


@dataclass(frozen=True, slots=True)
class FilingDecision:
    """The filing decision for one alarm at one instant; WAIT says when to look again."""

    outcome: FilingOutcome
    reason: str
    case_class: CaseClass | None = None
    urgency: Urgency = Urgency.NORMAL
    description: str = ""
    auto_register: bool = False
    auto_dispatch: bool = False
    file_at: datetime | None = None
    department: str | None = None


def decide_filing(
    policy: CasePolicy,
    table: ClassificationTable,
    *,
    alarm_type: AlarmType,
    severity: Severity,
    active_since_at: datetime,
    now_at: datetime,
    device_class_code: str | None = None,
) -> FilingDecision:
    """Decide whether an active alarm becomes a case now, later, or never."""
    rule = policy.filing.get(alarm_type)
    if rule is None or rule.mode is FilingMode.NEVER:
        return FilingDecision(FilingOutcome.SKIP, f"policy never files {alarm_type} alarms")
    if rule.min_severity is not None and not severity_at_least(severity, rule.min_severity):
        return FilingDecision(
            FilingOutcome.SKIP,
            f"{alarm_type} is filed from severity {rule.min_severity}, this one is {severity}",
        )
    urgency = rule.urgency
    if rule.urgent_at_severity is not None and severity_at_least(severity, rule.urgent_at_severity):
        urgency = Urgency.URGENT
    filed = FilingDecision(
        FilingOutcome.FILE,
        f"policy files {alarm_type} alarms",
        case_class=rule.case_class(table, device_class_code),
        urgency=urgency,
        description=rule.description,
        auto_register=rule.auto_register,
        auto_dispatch=rule.auto_dispatch,
        department=rule.department,
    )
    if rule.after_min is not None:
        file_at = require_aware(active_since_at, "active_since_at") + timedelta(
            minutes=rule.after_min
        )
        if require_aware(now_at, "now_at") < file_at:
            return replace(
                filed,
                outcome=FilingOutcome.WAIT,
                reason=f"{alarm_type} is filed once active for {rule.after_min:g} min",
                file_at=file_at,
            )
    return filed
