-- TimescaleDB: the same names and columns as continuous aggregates (see the .plain file).

CREATE MATERIALIZED VIEW lighting_energy_hourly
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT device_id,
    time_bucket(INTERVAL '1 hour', ts) AS bucket,
    count(*) AS samples,
    count(*) FILTER (WHERE "on" OR fault_code = 'SUPPLY_LOSS') AS due_samples,
    count(*) FILTER (WHERE "on" AND power_w > 3) AS lit_samples,
    avg(dim_pct) FILTER (WHERE "on" AND power_w > 3) AS lit_dim_pct,
    min(energy_kwh) AS energy_first_kwh,
    max(energy_kwh) AS energy_last_kwh
FROM telemetry_lighting
GROUP BY device_id, bucket
WITH NO DATA;
SELECT add_continuous_aggregate_policy('lighting_energy_hourly',
    start_offset => INTERVAL '3 days', end_offset => INTERVAL '1 hour',
    schedule_interval => INTERVAL '1 hour', if_not_exists => TRUE);

CREATE MATERIALIZED VIEW lighting_energy_daily
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT device_id,
    time_bucket(INTERVAL '1 day', ts) AS bucket,
    count(*) AS samples,
    count(*) FILTER (WHERE "on" OR fault_code = 'SUPPLY_LOSS') AS due_samples,
    count(*) FILTER (WHERE "on" AND power_w > 3) AS lit_samples,
    avg(dim_pct) FILTER (WHERE "on" AND power_w > 3) AS lit_dim_pct,
    min(energy_kwh) AS energy_first_kwh,
    max(energy_kwh) AS energy_last_kwh
FROM telemetry_lighting
GROUP BY device_id, bucket
WITH NO DATA;
SELECT add_continuous_aggregate_policy('lighting_energy_daily',
    start_offset => INTERVAL '7 days', end_offset => INTERVAL '1 hour',
    schedule_interval => INTERVAL '1 hour', if_not_exists => TRUE);

CREATE MATERIALIZED VIEW cabinet_energy_daily
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT device_id,
    time_bucket(INTERVAL '1 day', ts) AS bucket,
    count(*) AS samples,
    min(energy_kwh) AS energy_first_kwh,
    max(energy_kwh) AS energy_last_kwh
FROM telemetry_cabinet
GROUP BY device_id, bucket
WITH NO DATA;
SELECT add_continuous_aggregate_policy('cabinet_energy_daily',
    start_offset => INTERVAL '7 days', end_offset => INTERVAL '1 hour',
    schedule_interval => INTERVAL '1 hour', if_not_exists => TRUE);
