-- Plain PostgreSQL: views with the same names and columns as the continuous aggregates.

CREATE VIEW lighting_hourly AS
SELECT device_id,
    date_trunc('hour', ts) AS bucket,
    count(*) AS samples,
    count(*) FILTER (WHERE "on" AND power_w > 1) AS lit_samples,
    avg(power_w) AS avg_power_w,
    max(power_w) AS max_power_w,
    avg(dim_pct) AS avg_dim_pct,
    avg(voltage_v) AS avg_voltage_v,
    max(energy_kwh) - min(energy_kwh) AS energy_kwh,
    max(energy_kwh) AS energy_total_kwh
FROM telemetry_lighting
GROUP BY device_id, bucket;

CREATE VIEW cabinet_hourly AS
SELECT device_id,
    date_trunc('hour', ts) AS bucket,
    count(*) AS samples,
    count(*) FILTER (WHERE contactor_on) AS contactor_on_samples,
    count(*) FILTER (WHERE door_open) AS door_open_samples,
    avg(power_w) AS avg_power_w,
    least(min(voltage_a_v), min(voltage_b_v), min(voltage_c_v)) AS min_phase_voltage_v,
    max(energy_kwh) - min(energy_kwh) AS energy_kwh
FROM telemetry_cabinet
GROUP BY device_id, bucket;

CREATE VIEW truck_hourly AS
SELECT device_id,
    date_trunc('hour', ts) AS bucket,
    count(*) AS fixes,
    count(*) FILTER (WHERE speed_kmh > 5) AS moving_fixes,
    avg(speed_kmh) AS avg_speed_kmh,
    max(speed_kmh) AS max_speed_kmh,
    count(*) FILTER (WHERE body_lifted) AS body_lifted_fixes
FROM telemetry_truck
GROUP BY device_id, bucket;

CREATE VIEW manhole_hourly AS
SELECT device_id,
    date_trunc('hour', ts) AS bucket,
    count(*) AS samples,
    avg(tilt_deg) AS avg_tilt_deg,
    max(tilt_deg) AS max_tilt_deg,
    count(*) FILTER (WHERE cover_open) AS cover_open_samples,
    max(water_level_cm) AS max_water_level_cm,
    min(battery_pct) AS min_battery_pct
FROM telemetry_manhole
GROUP BY device_id, bucket;

CREATE VIEW parking_5min AS
SELECT device_id,
    date_bin(INTERVAL '5 minutes', ts, TIMESTAMPTZ '2000-01-01 00:00:00+00') AS bucket,
    count(*) AS samples,
    count(*) FILTER (WHERE occupied) AS occupied_samples,
    bool_or(occupied) AS any_occupied,
    min(battery_pct) AS min_battery_pct
FROM telemetry_parking
GROUP BY device_id, bucket;
