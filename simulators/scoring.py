"""Compare ground truth with the hub's alarms: recall, precision, duplicates, time to detect."""

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from simulators.faults import Incident


@dataclass(frozen=True, slots=True)
class Alarm:
    """An alarm as the hub stored it."""

    source_id: str
    alarm_type: str
    raised_at: datetime
    cleared_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class MatchRules:
    """How lenient matching is: an alarm may come this early or this late around an incident."""

    early_s: float = 60.0
    late_s: float = 900.0


@dataclass(slots=True)
class TypeScore:
    """Figures for one incident type."""

    incidents: int = 0
    detected: int = 0
    true_alarms: int = 0
    false_alarms: int = 0
    duplicates: int = 0
    detect_delays_s: list[float] = field(default_factory=list)

    @property
    def recall(self) -> float | None:
        """Detected incidents over all incidents."""
        return self.detected / self.incidents if self.incidents else None

    @property
    def precision(self) -> float | None:
        """Alarms that found a real incident over all distinct alarms (duplicates apart)."""
        total = self.true_alarms + self.false_alarms
        return self.true_alarms / total if total else None

    def delay_s(self, quantile: float) -> float | None:
        """A quantile of time-to-detect in seconds."""
        if not self.detect_delays_s:
            return None
        ordered = sorted(self.detect_delays_s)
        if len(ordered) == 1:
            return ordered[0]
        cuts = statistics.quantiles(ordered, n=100, method="inclusive")
        return cuts[max(0, min(98, round(quantile * 100) - 1))]


@dataclass(frozen=True, slots=True)
class Match:
    """An incident and the first alarm that detected it (None when missed)."""

    incident: Incident
    alarm: Alarm | None
    duplicates: tuple[Alarm, ...]


@dataclass(slots=True)
class ScoreReport:
    """Per-type figures, the matches, and alarms that matched nothing."""

    by_type: dict[str, TypeScore]
    matches: list[Match]
    false_alarms: list[Alarm]

    @property
    def total(self) -> TypeScore:
        """All types together."""
        out = TypeScore()
        for score in self.by_type.values():
            out.incidents += score.incidents
            out.detected += score.detected
            out.true_alarms += score.true_alarms
            out.false_alarms += score.false_alarms
            out.duplicates += score.duplicates
            out.detect_delays_s.extend(score.detect_delays_s)
        return out


SYMPTOMS: dict[str, frozenset[str]] = {
    # The averaged supply trend follows a sustained sag or surge of the lamp's supply: an
    # alarm of the same device during such an incident is a true alarm (not a false one),
    # though it detects no incident of its own (the ground truth labels the fault by the
    # instantaneous type only).
    "voltage_trend": frozenset({"under_voltage", "over_voltage"}),
    # At the cabinet's meter a circuit whose breaker trips and a circuit whose cable is cut
    # look the same (a phase's current gone, supply and contactor on): a cable-theft alarm
    # during a circuit loss or a trip of the same cabinet is that fault seen by the meter.
    "cable_theft": frozenset({"circuit_dark", "cabinet_trip"}),
}
"""Alarm types that are a further symptom of incidents of other types on the same source."""


def source_matches(source_id: str, device_id: str) -> bool:
    """An alarm's source is the device, or a group under it (`CAB-00001:2`, `CAB-00001/2`)."""
    return source_id == device_id or (
        source_id.startswith(device_id) and source_id[len(device_id) : len(device_id) + 1] in ":/"
    )


def _ms(value: datetime) -> int:
    return round(value.timestamp() * 1000)


def match_alarms(
    incidents: Sequence[Incident], alarms: Iterable[Alarm], rules: MatchRules | None = None
) -> ScoreReport:
    """Match alarms to incidents of the same device and type.

    An alarm matches an incident when it was active at some point between the incident's start
    minus `early_s` and its end plus `late_s`. The earliest matching unused alarm detects the
    incident (time to detect = raised_at - start, at least 0); later matching alarms raised
    inside that window are duplicates; an alarm of a `SYMPTOMS` type that matches an incident
    of one of its causes that way is a true alarm that detects nothing; alarms matching
    nothing are false alarms.
    """
    rules = rules or MatchRules()
    early_ms, late_ms = int(rules.early_s * 1000), int(rules.late_s * 1000)
    pool = sorted(alarms, key=lambda a: (a.raised_at, a.source_id, a.alarm_type))
    used = [False] * len(pool)
    by_type: dict[str, TypeScore] = {}
    matches: list[Match] = []
    for incident in sorted(incidents, key=lambda i: (i.start_ms, i.device_id, i.type)):
        score = by_type.setdefault(incident.type.value, TypeScore())
        score.incidents += 1
        lo, hi = incident.start_ms - early_ms, incident.end_ms + late_ms
        first: Alarm | None = None
        dups: list[Alarm] = []
        for index, alarm in enumerate(pool):
            if used[index] or alarm.alarm_type != incident.type.value:
                continue
            if not source_matches(alarm.source_id, incident.device_id):
                continue
            raised = _ms(alarm.raised_at)
            cleared = _ms(alarm.cleared_at) if alarm.cleared_at is not None else None
            if raised > hi or (cleared is not None and cleared < lo):
                continue
            if first is None:
                first = alarm
            elif raised >= lo:
                dups.append(alarm)
            else:
                continue
            used[index] = True
        if first is not None:
            score.detected += 1
            score.true_alarms += 1
            score.duplicates += len(dups)
            score.detect_delays_s.append(
                max(0.0, (_ms(first.raised_at) - incident.start_ms) / 1000)
            )
        matches.append(Match(incident, first, tuple(dups)))
    for index, alarm in enumerate(pool):
        causes = SYMPTOMS.get(alarm.alarm_type)
        if used[index] or causes is None:
            continue
        if any(
            incident.type.value in causes
            and source_matches(alarm.source_id, incident.device_id)
            and _overlaps(alarm, incident.start_ms - early_ms, incident.end_ms + late_ms)
            for incident in incidents
        ):
            used[index] = True
            by_type.setdefault(alarm.alarm_type, TypeScore()).true_alarms += 1
    false_alarms = [a for a, u in zip(pool, used, strict=True) if not u]
    for alarm in false_alarms:
        by_type.setdefault(alarm.alarm_type, TypeScore()).false_alarms += 1
    return ScoreReport(dict(sorted(by_type.items())), matches, false_alarms)


def _overlaps(alarm: Alarm, lo_ms: int, hi_ms: int) -> bool:
    """Whether the alarm was active at some point between lo_ms and hi_ms."""
    cleared = _ms(alarm.cleared_at) if alarm.cleared_at is not None else None
    return _ms(alarm.raised_at) <= hi_ms and (cleared is None or cleared >= lo_ms)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _secs(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def format_report(report: ScoreReport) -> str:
    """A plain-text table, one row per incident type plus a total."""
    header = (
        f"{'type':<22}{'incidents':>10}{'detected':>10}{'recall':>9}{'alarms':>8}"
        f"{'false':>7}{'precision':>11}{'dups':>6}{'ttd_p50_s':>11}{'ttd_p90_s':>11}{'ttd_max_s':>11}"
    )
    lines = [header, "-" * len(header)]
    rows = [*report.by_type.items(), ("TOTAL", report.total)]
    for name, s in rows:
        lines.append(
            f"{name:<22}{s.incidents:>10}{s.detected:>10}{_pct(s.recall):>9}"
            f"{s.true_alarms + s.false_alarms + s.duplicates:>8}{s.false_alarms:>7}"
            f"{_pct(s.precision):>11}{s.duplicates:>6}{_secs(s.delay_s(0.5)):>11}"
            f"{_secs(s.delay_s(0.9)):>11}{_secs(max(s.detect_delays_s, default=None)):>11}"
        )
    return "\n".join(lines)
