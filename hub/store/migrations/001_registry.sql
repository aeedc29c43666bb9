-- Device registry, device status, dead letters, command acknowledgements.

CREATE TABLE devices (
    device_id   text PRIMARY KEY CHECK (device_id ~ '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$'),
    kind        text NOT NULL CHECK (kind IN ('lighting', 'cabinet', 'truck', 'manhole', 'parking')),
    name        text,
    lat         double precision NOT NULL CHECK (lat BETWEEN -90 AND 90),
    lon         double precision NOT NULL CHECK (lon BETWEEN -180 AND 180),
    grid_code   text CHECK (grid_code ~ '^[0-9]{15}$'),
    class_code  text CHECK (class_code ~ '^[0-9]{4,5}$'),
    department  text,
    parent_id   text,
    attributes  jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX devices_kind_idx ON devices (kind);
CREATE INDEX devices_parent_idx ON devices (parent_id) WHERE parent_id IS NOT NULL;
CREATE INDEX devices_grid_idx ON devices (grid_code);
CREATE INDEX devices_updated_idx ON devices (updated_at);

CREATE TABLE device_status (
    device_id    text PRIMARY KEY REFERENCES devices (device_id) ON DELETE CASCADE,
    online       boolean NOT NULL,
    changed_at   timestamptz NOT NULL,
    received_at  timestamptz NOT NULL
);

CREATE TABLE dead_letters (
    id             bigserial PRIMARY KEY,
    received_at    timestamptz NOT NULL,
    topic          text NOT NULL,
    payload        bytea NOT NULL,
    reason         text NOT NULL,
    detail         text NOT NULL,
    replayed_at    timestamptz,
    replay_count   integer NOT NULL DEFAULT 0
);
CREATE INDEX dead_letters_received_idx ON dead_letters (received_at);
CREATE INDEX dead_letters_pending_idx ON dead_letters (reason, id) WHERE replayed_at IS NULL;

CREATE TABLE command_acks (
    device_id    text NOT NULL,
    command_id   text NOT NULL,
    result       text NOT NULL,
    detail       text,
    ts           timestamptz NOT NULL,
    received_at  timestamptz NOT NULL,
    PRIMARY KEY (device_id, command_id, ts)
);

-- How long each growing table keeps rows; the hub enforces it (TimescaleDB policies or
-- a periodic delete on plain PostgreSQL).
CREATE TABLE retention_settings (
    table_name   text PRIMARY KEY,
    time_column  text NOT NULL,
    keep         interval NOT NULL CHECK (keep > interval '0')
);
INSERT INTO retention_settings (table_name, time_column, keep) VALUES
    ('dead_letters', 'received_at', interval '90 days'),
    ('command_acks', 'received_at', interval '365 days');
