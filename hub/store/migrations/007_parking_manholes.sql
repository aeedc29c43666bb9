-- Parking lots and on-street zones (imported from GeoJSON), manhole tilt calibrations.

CREATE TABLE parking_lots (
    lot_id       text PRIMARY KEY CHECK (lot_id ~ '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$'),
    name         text NOT NULL,
    capacity     integer NOT NULL CHECK (capacity >= 0),
    grid_code    text CHECK (grid_code ~ '^[0-9]{15}$'),
    lat          double precision NOT NULL CHECK (lat BETWEEN -90 AND 90),
    lon          double precision NOT NULL CHECK (lon BETWEEN -180 AND 180),
    geometry     jsonb NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- A zone's max_stay_min is its overstay rule (NULL = unlimited).
CREATE TABLE parking_zones (
    zone_id      text PRIMARY KEY CHECK (zone_id ~ '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$'),
    name         text NOT NULL,
    capacity     integer NOT NULL CHECK (capacity >= 0),
    street       text,
    max_stay_min integer CHECK (max_stay_min > 0),
    grid_code    text CHECK (grid_code ~ '^[0-9]{15}$'),
    lat          double precision NOT NULL CHECK (lat BETWEEN -90 AND 90),
    lon          double precision NOT NULL CHECK (lon BETWEEN -180 AND 180),
    geometry     jsonb NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- Spots find their lot or zone through the registry attributes.
CREATE INDEX devices_parking_lot_idx ON devices ((attributes ->> 'lot_id'))
    WHERE kind = 'parking';
CREATE INDEX devices_parking_zone_idx ON devices ((attributes ->> 'zone_id'))
    WHERE kind = 'parking';

-- Every baseline a cover has had: at install (import) and on each recalibration.
CREATE TABLE manhole_calibrations (
    id                  bigserial PRIMARY KEY,
    device_id           text NOT NULL REFERENCES devices (device_id) ON DELETE CASCADE,
    baseline_tilt_deg   real NOT NULL CHECK (baseline_tilt_deg BETWEEN 0 AND 180),
    previous_tilt_deg   real,
    source              text NOT NULL CHECK (source IN ('install', 'recalibrate')),
    reading_ts          timestamptz,
    actor_id            text,
    command_id          text,
    calibrated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX manhole_calibrations_device_idx ON manhole_calibrations (device_id, calibrated_at DESC);

INSERT INTO retention_settings (table_name, time_column, keep) VALUES
    ('manhole_calibrations', 'calibrated_at', interval '3650 days');
