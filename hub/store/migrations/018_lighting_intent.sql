-- Lighting control a crew can rely on (issue 25): whether an acked command took effect,
-- cancelled and superseded commands, maintenance lockouts, schedule creation times.

ALTER TABLE lighting_commands DROP CONSTRAINT IF EXISTS lighting_commands_state_check;
ALTER TABLE lighting_commands ADD CONSTRAINT lighting_commands_state_check
    CHECK (state IN ('pending', 'sent', 'acked', 'failed', 'expired', 'cancelled', 'superseded'));
ALTER TABLE lighting_commands
    ADD COLUMN acked_at          timestamptz,
    -- effective / not_effective / unverified (no telemetry in the window); NULL: not judged yet
    ADD COLUMN effect            text CHECK (effect IN ('effective', 'not_effective', 'unverified')),
    ADD COLUMN effect_checked_at timestamptz,
    ADD COLUMN effect_evidence   jsonb;
CREATE INDEX lighting_commands_unjudged_idx ON lighting_commands (acked_at)
    WHERE state = 'acked' AND effect IS NULL;

-- A crew's maintenance lockout: the devices a target named when it was set, for a window.
-- While it holds, the rules raise nothing that the lockout explains (lamp dark, contactor
-- open, circuit dark).
CREATE TABLE lighting_lockouts (
    lockout_id   bigserial PRIMARY KEY,
    target       text NOT NULL,
    device_ids   text[] NOT NULL,
    starts_at    timestamptz NOT NULL,
    ends_at      timestamptz NOT NULL,
    reason       text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL,
    cancelled_at timestamptz,
    CHECK (ends_at > starts_at)
);
CREATE INDEX lighting_lockouts_window_idx ON lighting_lockouts (ends_at);

ALTER TABLE lighting_schedules
    ADD COLUMN created_at timestamptz NOT NULL DEFAULT now();

INSERT INTO retention_settings (table_name, time_column, keep) VALUES
    ('lighting_lockouts', 'ends_at', interval '365 days')
    ON CONFLICT DO NOTHING;
