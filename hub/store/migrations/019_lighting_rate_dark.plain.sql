-- Plain PostgreSQL: lighting_energy_hourly gains dark_supplied_samples, the readings of a
-- lamp reporting off while its supply is live (voltage >= 100 V, no SUPPLY_LOSS code). The
-- lighting rate counts them as due-but-unlit in the hours that lie wholly in the night at
-- the lamp's position and that no commanded off or lockout explains (hub/store/lighting.py
-- decides which hours, the view only counts). The new column is appended, so the view is
-- replaced in place; every other column is as in 005.

CREATE OR REPLACE VIEW lighting_energy_hourly AS
SELECT device_id,
    date_trunc('hour', ts) AS bucket,
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
GROUP BY device_id, bucket;
