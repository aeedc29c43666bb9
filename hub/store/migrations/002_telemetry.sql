-- One telemetry table per kind: the contract's fields, receipt time, event flag and extras.
-- Idempotent on (device_id, ts): the primary key; a redelivered message is stored once.

CREATE TABLE telemetry_lighting (
    device_id    text NOT NULL,
    ts           timestamptz NOT NULL,
    received_at  timestamptz NOT NULL,
    is_event     boolean NOT NULL DEFAULT false,
    "on" boolean NOT NULL,
    dim_pct real NOT NULL,
    voltage_v real NOT NULL,
    current_a real NOT NULL,
    power_w real NOT NULL,
    power_factor real NOT NULL,
    energy_kwh double precision NOT NULL,
    fault_code text,
    extra        jsonb,
    PRIMARY KEY (device_id, ts)
);
CREATE INDEX telemetry_lighting_ts_idx ON telemetry_lighting (ts DESC);

CREATE TABLE telemetry_cabinet (
    device_id    text NOT NULL,
    ts           timestamptz NOT NULL,
    received_at  timestamptz NOT NULL,
    is_event     boolean NOT NULL DEFAULT false,
    contactor_on boolean NOT NULL,
    door_open boolean NOT NULL,
    voltage_a_v real NOT NULL,
    voltage_b_v real NOT NULL,
    voltage_c_v real NOT NULL,
    current_a_a real NOT NULL,
    current_b_a real NOT NULL,
    current_c_a real NOT NULL,
    power_w real NOT NULL,
    energy_kwh double precision NOT NULL,
    extra        jsonb,
    PRIMARY KEY (device_id, ts)
);
CREATE INDEX telemetry_cabinet_ts_idx ON telemetry_cabinet (ts DESC);

CREATE TABLE telemetry_truck (
    device_id    text NOT NULL,
    ts           timestamptz NOT NULL,
    received_at  timestamptz NOT NULL,
    is_event     boolean NOT NULL DEFAULT false,
    lat double precision NOT NULL,
    lon double precision NOT NULL,
    speed_kmh real NOT NULL,
    heading_deg real NOT NULL,
    acc_on boolean NOT NULL,
    body_lifted boolean NOT NULL,
    cover_closed boolean NOT NULL,
    load text NOT NULL CHECK (load IN ('empty', 'half', 'full')),
    alarm_flags bigint,
    extra        jsonb,
    PRIMARY KEY (device_id, ts)
);
CREATE INDEX telemetry_truck_ts_idx ON telemetry_truck (ts DESC);

CREATE TABLE telemetry_manhole (
    device_id    text NOT NULL,
    ts           timestamptz NOT NULL,
    received_at  timestamptz NOT NULL,
    is_event     boolean NOT NULL DEFAULT false,
    tilt_deg real NOT NULL,
    cover_open boolean NOT NULL,
    water_level_cm real,
    battery_pct real,
    rssi_dbm real,
    extra        jsonb,
    PRIMARY KEY (device_id, ts)
);
CREATE INDEX telemetry_manhole_ts_idx ON telemetry_manhole (ts DESC);

CREATE TABLE telemetry_parking (
    device_id    text NOT NULL,
    ts           timestamptz NOT NULL,
    received_at  timestamptz NOT NULL,
    is_event     boolean NOT NULL DEFAULT false,
    occupied boolean NOT NULL,
    battery_pct real,
    extra        jsonb,
    PRIMARY KEY (device_id, ts)
);
CREATE INDEX telemetry_parking_ts_idx ON telemetry_parking (ts DESC);

INSERT INTO retention_settings (table_name, time_column, keep) VALUES
    ('telemetry_lighting', 'ts', interval '365 days'),
    ('telemetry_cabinet', 'ts', interval '365 days'),
    ('telemetry_truck', 'ts', interval '365 days'),
    ('telemetry_manhole', 'ts', interval '365 days'),
    ('telemetry_parking', 'ts', interval '365 days');
