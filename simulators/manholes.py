"""Smart manhole covers: baseline tilt, heartbeat, traffic spikes, water level, battery."""

from typing import Any

from hub.devices.kinds import Kind
from hub.rules.alarm_types import AlarmType
from simulators.city import City, Manhole
from simulators.device import SimDevice, World
from simulators.faults import WATER_ALERT_CM, WATER_DANGER_CM, ActiveFault, Incident

WATER_SENSOR_TYPES = frozenset({"storm_water", "sewage"})
TILTED_DEG = 25.0
DISPLACED_DEG = 45.0
LOW_BATTERY_PCT = 10.0
PEAK_WATER_CM = 200.0
SPIKE_EXTRA_DEG = (8.0, 14.0)
SPIKE_RECOVERY_MS = (5_000, 20_000)


class ManholeSim(SimDevice):
    """One cover's sensor; reports at once on alarm and on recovery, otherwise a heartbeat."""

    __slots__ = (
        "battery_pct",
        "cover",
        "has_water",
        "next_heartbeat_ms",
        "next_spike_ms",
        "recovery_ms",
        "rssi_dbm",
        "water_base_cm",
    )

    def __init__(self, cover: Manhole, root: str, world: World) -> None:
        super().__init__(cover.device_id, Kind.MANHOLE, root)
        rng = world.rng
        self.cover = cover
        self.battery_pct = round(rng.uniform(55.0, 100.0), 1)
        self.rssi_dbm = rng.uniform(-105.0, -70.0)
        self.has_water = cover.cover_type in WATER_SENSOR_TYPES
        self.water_base_cm = rng.uniform(5.0, 35.0)
        self.next_heartbeat_ms = 0
        self.next_spike_ms: int | None = None
        self.recovery_ms: int | None = None

    def first_due_ms(self, start_ms: int, world: World) -> int:
        self.next_heartbeat_ms = start_ms + world.rng.randint(
            0, int(world.config.manhole_heartbeat_s * 1000)
        )
        delay = world.exp_delay_ms(world.noise.tilt_spikes_per_day)
        self.next_spike_ms = None if delay is None else start_ms + delay
        return self._next_due()

    def _next_due(self) -> int:
        due = self.next_heartbeat_ms
        for other in (self.next_spike_ms, self.recovery_ms):
            if other is not None and other < due:
                due = other
        return due

    def water_level_cm(self, ts_ms: int) -> float:
        """Water above the well bottom; a rising-water fault is a triangle up to its peak."""
        fault = self.fault
        if fault is None or fault.name != "manhole_water_rising":
            return self.water_base_cm
        peak = float(fault.params.get("peak_cm", PEAK_WATER_CM))
        half = (fault.end_ms - fault.start_ms) / 2
        share = max(0.0, 1.0 - abs(ts_ms - fault.start_ms - half) / half) if half > 0 else 0.0
        return self.water_base_cm + (peak - self.water_base_cm) * share

    def act(self, now_ms: int, world: World) -> int | None:
        rng = world.rng
        cfg = world.config
        spike = False
        if self.recovery_ms is not None and now_ms >= self.recovery_ms:
            self.recovery_ms = None
        if self.next_spike_ms is not None and now_ms >= self.next_spike_ms:
            # a heavy vehicle rocks the cover: one alarm-level reading, recovery seconds later
            spike = self.fault is None
            delay = world.exp_delay_ms(world.noise.tilt_spikes_per_day)
            self.next_spike_ms = None if delay is None else now_ms + delay
            if spike:
                self.recovery_ms = now_ms + rng.randint(*SPIKE_RECOVERY_MS)
        fault = self.fault.name if self.fault is not None else None
        tilt = self.cover.baseline_tilt_deg + rng.gauss(0.0, 0.15)
        cover_open = False
        if spike:
            tilt += rng.uniform(*SPIKE_EXTRA_DEG)
        if fault == "manhole_tilt":
            tilt += float(self.param("tilt_deg", TILTED_DEG))
        elif fault == "manhole_displaced":
            tilt += DISPLACED_DEG
            cover_open = True
        elif fault == "manhole_open":
            cover_open = True
        battery = LOW_BATTERY_PCT if fault == "manhole_low_battery" else self.battery_pct
        body: dict[str, Any] = {
            "ts": now_ms,
            "tilt_deg": round(min(max(abs(tilt), 0.0), 180.0), 2),
            "cover_open": cover_open,
        }
        if self.has_water:
            body["water_level_cm"] = round(self.water_level_cm(now_ms) + rng.gauss(0.0, 0.5), 1)
        body["battery_pct"] = round(battery, 1)
        body["rssi_dbm"] = round(self.rssi_dbm + rng.gauss(0.0, 2.0), 0)
        if self.online:
            world.emit(self, self.topic_event if spike else self.topic_telemetry, body)
        if now_ms >= self.next_heartbeat_ms:
            interval = (
                cfg.manhole_alarm_interval_s if fault is not None else cfg.manhole_heartbeat_s
            )
            self.next_heartbeat_ms = now_ms + int(interval * 1000)
        return self._next_due()

    def begin_own_fault(
        self, fault: ActiveFault, now_ms: int, world: World
    ) -> list[Incident] | None:
        name = fault.name
        inc = self.incident
        self.next_heartbeat_ms = now_ms
        world.reschedule(self, now_ms)
        if name == "manhole_tilt":
            return [inc(AlarmType.TILT, now_ms, fault.end_ms, fault)]
        if name == "manhole_displaced":
            return [
                inc(AlarmType.COVER_OPEN, now_ms, fault.end_ms, fault),
                inc(AlarmType.TILT, now_ms, fault.end_ms, fault),
            ]
        if name == "manhole_open":
            return [inc(AlarmType.COVER_OPEN, now_ms, fault.end_ms, fault)]
        if name == "manhole_low_battery":
            return [inc(AlarmType.LOW_BATTERY, now_ms, fault.end_ms, fault)]
        if name == "manhole_water_rising":
            if not self.has_water:
                raise ValueError(f"{self.device_id} ({self.cover.cover_type}) has no water sensor")
            peak = float(fault.params.get("peak_cm", PEAK_WATER_CM))
            half = (fault.end_ms - now_ms) / 2
            incidents = []
            for threshold, alarm in (
                (WATER_ALERT_CM, AlarmType.WATER_ALERT),
                (WATER_DANGER_CM, AlarmType.WATER_DANGER),
            ):
                if peak > threshold:
                    share = (threshold - self.water_base_cm) / (peak - self.water_base_cm)
                    rise = int(share * half)
                    incidents.append(inc(alarm, now_ms + rise, fault.end_ms - rise, fault))
            return incidents
        raise ValueError(f"{name} does not apply to a manhole cover")

    def end_own_fault(self, fault: ActiveFault, now_ms: int, world: World) -> None:
        if fault.name == "manhole_low_battery":
            self.battery_pct = 100.0  # crew replaced the battery
        self.next_heartbeat_ms = now_ms


def build_manholes(city: City, root: str, world: World) -> list[SimDevice]:
    """One sensor per cover."""
    return [ManholeSim(m, root, world) for m in city.manholes]
