-- Plain PostgreSQL: lighting energy and lighting-rate aggregates as views.
-- energy_first/last bound the meter within the bucket, so a period's energy per lamp is
-- max(last) - min(first) across buckets; saving_kwh is what the lit time would have cost
-- at full power minus what it cost dimmed.

CREATE VIEW lighting_energy_hourly AS
SELECT device_id,
    date_trunc('hour', ts) AS bucket,
    count(*) AS samples,
    count(*) FILTER (WHERE "on" OR fault_code = 'SUPPLY_LOSS') AS due_samples,
    count(*) FILTER (WHERE "on" AND power_w > 3) AS lit_samples,
    avg(dim_pct) FILTER (WHERE "on" AND power_w > 3) AS lit_dim_pct,
    min(energy_kwh) AS energy_first_kwh,
    max(energy_kwh) AS energy_last_kwh
FROM telemetry_lighting
GROUP BY device_id, bucket;

CREATE VIEW lighting_energy_daily AS
SELECT device_id,
    date_trunc('day', ts) AS bucket,
    count(*) AS samples,
    count(*) FILTER (WHERE "on" OR fault_code = 'SUPPLY_LOSS') AS due_samples,
    count(*) FILTER (WHERE "on" AND power_w > 3) AS lit_samples,
    avg(dim_pct) FILTER (WHERE "on" AND power_w > 3) AS lit_dim_pct,
    min(energy_kwh) AS energy_first_kwh,
    max(energy_kwh) AS energy_last_kwh
FROM telemetry_lighting
GROUP BY device_id, bucket;

CREATE VIEW cabinet_energy_daily AS
SELECT device_id,
    date_trunc('day', ts) AS bucket,
    count(*) AS samples,
    min(energy_kwh) AS energy_first_kwh,
    max(energy_kwh) AS energy_last_kwh
FROM telemetry_cabinet
GROUP BY device_id, bucket;
