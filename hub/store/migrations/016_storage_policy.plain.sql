-- Plain PostgreSQL: daily views bucket by the city's local day (hub_meta.city_timezone),
-- the same day TimescaleDB's time_bucket(..., timezone => ...) gives the continuous
-- aggregates, instead of the session's time zone. Same names, columns and types as in 005.

CREATE OR REPLACE VIEW lighting_energy_daily AS
SELECT device_id,
    date_trunc('day', ts, city.zone) AS bucket,
    count(*) AS samples,
    count(*) FILTER (WHERE "on" OR fault_code = 'SUPPLY_LOSS') AS due_samples,
    count(*) FILTER (WHERE "on" AND power_w > 3) AS lit_samples,
    avg(dim_pct) FILTER (WHERE "on" AND power_w > 3) AS lit_dim_pct,
    min(energy_kwh) AS energy_first_kwh,
    max(energy_kwh) AS energy_last_kwh
FROM telemetry_lighting,
    (SELECT value AS zone FROM hub_meta WHERE key = 'city_timezone') AS city
GROUP BY device_id, bucket;

CREATE OR REPLACE VIEW cabinet_energy_daily AS
SELECT device_id,
    date_trunc('day', ts, city.zone) AS bucket,
    count(*) AS samples,
    min(energy_kwh) AS energy_first_kwh,
    max(energy_kwh) AS energy_last_kwh
FROM telemetry_cabinet,
    (SELECT value AS zone FROM hub_meta WHERE key = 'city_timezone') AS city
GROUP BY device_id, bucket;
