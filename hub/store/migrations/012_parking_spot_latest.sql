-- Each parking spot's newest stored report, kept up to date by the telemetry writer in the
-- same transaction as the readings (hub.store.parking.record_latest_reports). Occupancy now
-- reads one row per spot from here instead of six hours of reports: a spot's debounced state
-- equals its newest report's once that report is older than the confirmation time, so only
-- spots heard from within the last minute still need their reports (hub.api.parking).
-- A plain table in both storage modes: it has one row per spot and does not grow with time.

CREATE TABLE parking_spot_latest (
    device_id    text PRIMARY KEY,
    ts           timestamptz NOT NULL,
    received_at  timestamptz NOT NULL,
    occupied     boolean NOT NULL,
    battery_pct  real
);

INSERT INTO parking_spot_latest (device_id, ts, received_at, occupied, battery_pct)
SELECT DISTINCT ON (device_id) device_id, ts, received_at, occupied, battery_pct
FROM telemetry_parking
ORDER BY device_id, ts DESC;
