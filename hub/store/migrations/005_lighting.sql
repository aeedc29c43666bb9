-- Street lighting, both storage modes: remote commands and schedules (the aggregates are in the .plain and .timescale variants).

CREATE TABLE lighting_commands (
    command_id      text PRIMARY KEY,
    device_id       text NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('lighting', 'cabinet')),
    action          text NOT NULL CHECK (action IN ('on', 'off', 'dim')),
    params          jsonb NOT NULL DEFAULT '{}'::jsonb,
    state           text NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'sent', 'acked', 'failed', 'expired')),
    target          text NOT NULL,              -- what was asked: a lamp, circuit, cabinet or schedule
    request_id      text NOT NULL,              -- one request fans out to many commands
    created_at      timestamptz NOT NULL,
    expires_at      timestamptz NOT NULL,
    attempts        integer NOT NULL DEFAULT 0,
    max_attempts    integer NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
    next_attempt_at timestamptz NOT NULL,
    sent_at         timestamptz,
    finished_at     timestamptz,
    result          text,
    detail          text
);
CREATE INDEX lighting_commands_device_idx ON lighting_commands (device_id, created_at DESC);
CREATE INDEX lighting_commands_open_idx ON lighting_commands (next_attempt_at)
    WHERE state IN ('pending', 'sent');
CREATE INDEX lighting_commands_request_idx ON lighting_commands (request_id);

CREATE TABLE lighting_schedules (
    schedule_id     bigserial PRIMARY KEY,
    name            text NOT NULL,
    target          text NOT NULL,              -- 'all', a cabinet id, a circuit id or a lamp id
    action          text NOT NULL CHECK (action IN ('on', 'off', 'dim')),
    params          jsonb NOT NULL DEFAULT '{}'::jsonb,
    at_local        time,                       -- fixed local time, or
    sun_event       text CHECK (sun_event IN ('dusk', 'dawn')),  -- astronomical, with offset
    offset_min      integer NOT NULL DEFAULT 0,
    enabled         boolean NOT NULL DEFAULT true,
    last_fired_at   timestamptz,
    CHECK ((at_local IS NULL) <> (sun_event IS NULL))
);

INSERT INTO retention_settings (table_name, time_column, keep) VALUES
    ('lighting_commands', 'created_at', interval '365 days');

