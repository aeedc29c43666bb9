-- TimescaleDB: hypertables, compression, retention and one continuous aggregate per kind.
-- Documented 2.x calls; the classic create_hypertable signature works on every 2.x release.

DROP INDEX IF EXISTS telemetry_lighting_ts_idx;
SELECT create_hypertable('telemetry_lighting', 'ts', chunk_time_interval => INTERVAL '1 day',
    if_not_exists => TRUE, migrate_data => TRUE);
ALTER TABLE telemetry_lighting SET (
    timescaledb.compress,
    timescaledb.compress_segmentby = 'device_id',
    timescaledb.compress_orderby = 'ts DESC'
);
SELECT add_compression_policy('telemetry_lighting', INTERVAL '7 days', if_not_exists => TRUE);
SELECT add_retention_policy('telemetry_lighting', INTERVAL '365 days', if_not_exists => TRUE);
CREATE MATERIALIZED VIEW lighting_hourly
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT device_id,
    time_bucket(INTERVAL '1 hour', ts) AS bucket,
    count(*) AS samples,
    count(*) FILTER (WHERE "on" AND power_w > 1) AS lit_samples,
    avg(power_w) AS avg_power_w,
    max(power_w) AS max_power_w,
    avg(dim_pct) AS avg_dim_pct,
    avg(voltage_v) AS avg_voltage_v,
    max(energy_kwh) - min(energy_kwh) AS energy_kwh,
    max(energy_kwh) AS energy_total_kwh
FROM telemetry_lighting
GROUP BY device_id, bucket
WITH NO DATA;
SELECT add_continuous_aggregate_policy('lighting_hourly',
    start_offset => INTERVAL '3 days', end_offset => INTERVAL '1 hour',
    schedule_interval => INTERVAL '1 hour', if_not_exists => TRUE);

DROP INDEX IF EXISTS telemetry_cabinet_ts_idx;
SELECT create_hypertable('telemetry_cabinet', 'ts', chunk_time_interval => INTERVAL '1 day',
    if_not_exists => TRUE, migrate_data => TRUE);
ALTER TABLE telemetry_cabinet SET (
    timescaledb.compress,
    timescaledb.compress_segmentby = 'device_id',
    timescaledb.compress_orderby = 'ts DESC'
);
SELECT add_compression_policy('telemetry_cabinet', INTERVAL '7 days', if_not_exists => TRUE);
SELECT add_retention_policy('telemetry_cabinet', INTERVAL '365 days', if_not_exists => TRUE);
CREATE MATERIALIZED VIEW cabinet_hourly
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT device_id,
    time_bucket(INTERVAL '1 hour', ts) AS bucket,
    count(*) AS samples,
    count(*) FILTER (WHERE contactor_on) AS contactor_on_samples,
    count(*) FILTER (WHERE door_open) AS door_open_samples,
    avg(power_w) AS avg_power_w,
    least(min(voltage_a_v), min(voltage_b_v), min(voltage_c_v)) AS min_phase_voltage_v,
    max(energy_kwh) - min(energy_kwh) AS energy_kwh
FROM telemetry_cabinet
GROUP BY device_id, bucket
WITH NO DATA;
SELECT add_continuous_aggregate_policy('cabinet_hourly',
    start_offset => INTERVAL '3 days', end_offset => INTERVAL '1 hour',
    schedule_interval => INTERVAL '1 hour', if_not_exists => TRUE);

DROP INDEX IF EXISTS telemetry_truck_ts_idx;
SELECT create_hypertable('telemetry_truck', 'ts', chunk_time_interval => INTERVAL '1 day',
    if_not_exists => TRUE, migrate_data => TRUE);
ALTER TABLE telemetry_truck SET (
    timescaledb.compress,
    timescaledb.compress_segmentby = 'device_id',
    timescaledb.compress_orderby = 'ts DESC'
);
SELECT add_compression_policy('telemetry_truck', INTERVAL '7 days', if_not_exists => TRUE);
SELECT add_retention_policy('telemetry_truck', INTERVAL '365 days', if_not_exists => TRUE);
CREATE MATERIALIZED VIEW truck_hourly
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT device_id,
    time_bucket(INTERVAL '1 hour', ts) AS bucket,
    count(*) AS fixes,
    count(*) FILTER (WHERE speed_kmh > 5) AS moving_fixes,
    avg(speed_kmh) AS avg_speed_kmh,
    max(speed_kmh) AS max_speed_kmh,
    count(*) FILTER (WHERE body_lifted) AS body_lifted_fixes
FROM telemetry_truck
GROUP BY device_id, bucket
WITH NO DATA;
SELECT add_continuous_aggregate_policy('truck_hourly',
    start_offset => INTERVAL '3 days', end_offset => INTERVAL '1 hour',
    schedule_interval => INTERVAL '1 hour', if_not_exists => TRUE);

DROP INDEX IF EXISTS telemetry_manhole_ts_idx;
SELECT create_hypertable('telemetry_manhole', 'ts', chunk_time_interval => INTERVAL '1 day',
    if_not_exists => TRUE, migrate_data => TRUE);
ALTER TABLE telemetry_manhole SET (
    timescaledb.compress,
    timescaledb.compress_segmentby = 'device_id',
    timescaledb.compress_orderby = 'ts DESC'
);
SELECT add_compression_policy('telemetry_manhole', INTERVAL '7 days', if_not_exists => TRUE);
SELECT add_retention_policy('telemetry_manhole', INTERVAL '365 days', if_not_exists => TRUE);
CREATE MATERIALIZED VIEW manhole_hourly
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT device_id,
    time_bucket(INTERVAL '1 hour', ts) AS bucket,
    count(*) AS samples,
    avg(tilt_deg) AS avg_tilt_deg,
    max(tilt_deg) AS max_tilt_deg,
    count(*) FILTER (WHERE cover_open) AS cover_open_samples,
    max(water_level_cm) AS max_water_level_cm,
    min(battery_pct) AS min_battery_pct
FROM telemetry_manhole
GROUP BY device_id, bucket
WITH NO DATA;
SELECT add_continuous_aggregate_policy('manhole_hourly',
    start_offset => INTERVAL '3 days', end_offset => INTERVAL '1 hour',
    schedule_interval => INTERVAL '1 hour', if_not_exists => TRUE);

DROP INDEX IF EXISTS telemetry_parking_ts_idx;
SELECT create_hypertable('telemetry_parking', 'ts', chunk_time_interval => INTERVAL '1 day',
    if_not_exists => TRUE, migrate_data => TRUE);
ALTER TABLE telemetry_parking SET (
    timescaledb.compress,
    timescaledb.compress_segmentby = 'device_id',
    timescaledb.compress_orderby = 'ts DESC'
);
SELECT add_compression_policy('telemetry_parking', INTERVAL '7 days', if_not_exists => TRUE);
SELECT add_retention_policy('telemetry_parking', INTERVAL '365 days', if_not_exists => TRUE);
CREATE MATERIALIZED VIEW parking_5min
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT device_id,
    time_bucket(INTERVAL '5 minutes', ts) AS bucket,
    count(*) AS samples,
    count(*) FILTER (WHERE occupied) AS occupied_samples,
    bool_or(occupied) AS any_occupied,
    min(battery_pct) AS min_battery_pct
FROM telemetry_parking
GROUP BY device_id, bucket
WITH NO DATA;
SELECT add_continuous_aggregate_policy('parking_5min',
    start_offset => INTERVAL '3 days', end_offset => INTERVAL '5 minutes',
    schedule_interval => INTERVAL '5 minutes', if_not_exists => TRUE);
