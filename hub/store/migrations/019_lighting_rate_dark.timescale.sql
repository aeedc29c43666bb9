-- TimescaleDB: lighting_energy_hourly gains dark_supplied_samples (see the .plain file).
--
-- A continuous aggregate's query cannot be altered, so it is dropped and created again with
-- the same name, bucket and columns plus the new one (docs: use-timescale continuous-
-- aggregates/create-a-continuous-aggregate: time_bucket on the hypertable's time column in
-- GROUP BY, immutable functions only, WITH NO DATA to leave the first refresh to a policy;
-- FILTER aggregates as in 005). Its refresh policy is put back by the hub after this file
-- runs (hub/store/storage.py replaces every AGGREGATES policy), and the mark below makes the
-- hub refresh it in full once, after the commit (refresh_continuous_aggregate cannot run in
-- a transaction), so hours already aggregated are rebuilt from the stored readings.

DROP MATERIALIZED VIEW IF EXISTS lighting_energy_hourly;

CREATE MATERIALIZED VIEW lighting_energy_hourly
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT device_id,
    time_bucket(INTERVAL '1 hour', ts) AS bucket,
    count(*) AS samples,
    count(*) FILTER (WHERE "on" OR fault_code = 'SUPPLY_LOSS') AS due_samples,
    count(*) FILTER (WHERE "on" AND power_w > 3) AS lit_samples,
    avg(dim_pct) FILTER (WHERE "on" AND power_w > 3) AS lit_dim_pct,
    min(energy_kwh) AS energy_first_kwh,
    max(energy_kwh) AS energy_last_kwh,
    count(*) FILTER (
        WHERE NOT "on" AND voltage_v >= 100 AND fault_code IS DISTINCT FROM 'SUPPLY_LOSS'
    ) AS dark_supplied_samples
FROM telemetry_lighting
GROUP BY device_id, bucket
WITH NO DATA;

SELECT add_continuous_aggregate_policy('lighting_energy_hourly',
    start_offset => INTERVAL '3 days', end_offset => INTERVAL '1 hour',
    schedule_interval => INTERVAL '1 hour', if_not_exists => TRUE);

INSERT INTO hub_meta (key, value) VALUES ('aggregates_need_full_refresh', 'yes')
    ON CONFLICT (key) DO UPDATE SET value = 'yes';
