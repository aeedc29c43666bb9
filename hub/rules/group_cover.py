"""Group cover: while a group alarm is active, its members' alarms of listed types are quiet.

A group rule (a circuit or cabinet gone dark) may list member alarm types it covers
(`suppresses`). Member signals of those types raised at the instant the group is judged
are held (`defer`) until the group rules have seen that instant, then emitted or silenced
(`flush`). When the group alarm is raised, members' alarms it covers are retracted with a
reason; when it clears, those still active are announced again. The engine owns one
`GroupCover` and shares with it its condition table and its group membership.
"""

from collections.abc import Callable, Iterable, Mapping, Sequence

from hub.rules.alarm_types import AlarmType
from hub.rules.condition import ConditionKey, ConditionTable
from hub.rules.config import RuleConfigError
from hub.rules.interface import AnyGroupRule
from hub.rules.signals import AlarmSignal, SignalAction, SourceKind


class GroupCover:
    """Which groups cover which member alarm types now, and the member signals held."""

    __slots__ = ("_by_type", "_covers", "_group_of", "_members", "_table", "coverable", "deferred")

    def __init__(
        self,
        group_rules: Sequence[AnyGroupRule],
        table: ConditionTable,
        members: Mapping[str, set[str]],
        group_of: Callable[[str], str | None],
    ) -> None:
        self._by_type: dict[AlarmType, AnyGroupRule] = {}
        for group_rule in group_rules:
            for alarm_type in group_rule.alarm_types:
                if alarm_type in self._by_type:
                    raise RuleConfigError(f"two group rules raise {alarm_type}")
                self._by_type[alarm_type] = group_rule
        self.coverable: frozenset[AlarmType] = frozenset().union(
            *(g.suppresses for g in group_rules)
        )
        self._table = table
        self._members = members
        self._group_of = group_of
        self._covers: dict[str, dict[str, frozenset[AlarmType]]] = {}
        # Member signals of coverable types held until their instant's groups are judged.
        self.deferred: list[AlarmSignal] = []

    def rule_raising(self, alarm_type: AlarmType) -> AnyGroupRule | None:
        """The group rule whose group alarm has this type."""
        return self._by_type.get(alarm_type)

    def restore(self, group_id: str, group_rule: AnyGroupRule) -> None:
        """A group alarm still open in the store covers its members again."""
        if group_rule.suppresses:
            self._covers.setdefault(group_id, {})[group_rule.name] = group_rule.suppresses

    def flush(self, signals: list[AlarmSignal]) -> None:
        """Emit member signals held during an instant, now that covers are up to date."""
        deferred, self.deferred = self.deferred, []
        silenced: set[ConditionKey] = set()
        for signal in deferred:
            key: ConditionKey = (signal.source_kind, signal.source_id, signal.alarm_type)
            if key in silenced:
                continue
            if signal.action is SignalAction.RAISE and self.is_covered(signal):
                silenced.add(key)
                continue
            if signal.action is SignalAction.UPDATE:
                state = self._table.get(key)
                if state is not None and not state.announced:
                    continue  # retracted by a group alarm raised at this instant
            signals.append(signal)
        for key in silenced:
            state = self._table.get(key)
            if state is not None and state.active:
                state.announced = False

    def emit_all(self, raw: Iterable[AlarmSignal], signals: list[AlarmSignal]) -> None:
        """Emit signals of any source (offline checks, persisting verdicts) with cover applied."""
        for signal in raw:
            group_rule = None
            if signal.source_kind is SourceKind.GROUP:
                group_rule = self._by_type.get(signal.alarm_type)
            self.emit(signal, signals, group_rule)

    def emit(
        self,
        signal: AlarmSignal,
        signals: list[AlarmSignal],
        group_rule: AnyGroupRule | None = None,
    ) -> None:
        """Append a signal, applying group cover: silence covered members, re-announce after."""
        if signal.source_kind is SourceKind.DEVICE:
            if signal.action is SignalAction.RAISE and self.is_covered(signal):
                state = self._table.get((SourceKind.DEVICE, signal.source_id, signal.alarm_type))
                if state is not None:
                    state.announced = False
                return
            signals.append(signal)
            return
        signals.append(signal)
        if group_rule is None or not group_rule.suppresses:
            return
        group_id = signal.source_id
        covers = self._covers.setdefault(group_id, {})
        if signal.action is SignalAction.RAISE:
            covers[group_rule.name] = group_rule.suppresses
            reason = f"covered by {signal.alarm_type} alarm of group {group_id}"
            held = {
                (s.source_id, s.alarm_type) for s in self.deferred if s.action is SignalAction.RAISE
            }
            for member in sorted(self._members.get(group_id, ())):
                for alarm_type in sorted(group_rule.suppresses):
                    if (member, alarm_type) in held:
                        continue
                    retracted = self._table.retract(
                        (SourceKind.DEVICE, member, alarm_type), signal.at, reason
                    )
                    if retracted is not None:
                        signals.append(retracted)
        elif signal.action is SignalAction.CLEAR:
            covers.pop(group_rule.name, None)
            still = frozenset().union(*covers.values()) if covers else frozenset()
            if not covers:
                del self._covers[group_id]
            reason = f"{signal.alarm_type} alarm of group {group_id} cleared"
            for member in sorted(self._members.get(group_id, ())):
                for alarm_type in sorted(group_rule.suppresses - still):
                    announced = self._table.announce(
                        (SourceKind.DEVICE, member, alarm_type), signal.at, reason
                    )
                    if announced is not None:
                        signals.append(announced)

    def is_covered(self, signal: AlarmSignal) -> bool:
        """Whether a member's signal falls under an active group alarm of its group."""
        group_id = self._group_of(signal.source_id)
        if group_id is None:
            return False
        covers = self._covers.get(group_id)
        return covers is not None and any(signal.alarm_type in c for c in covers.values())
