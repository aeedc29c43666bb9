-- A recalibration is a command to the cover: pending until the cover acknowledges it on
-- cmd/ack (table command_acks), then applied (the registry baseline changes), failed
-- (the cover answered with an error) or expired (no answer before expires_at).

ALTER TABLE manhole_calibrations
    ADD COLUMN state text NOT NULL DEFAULT 'applied'
        CHECK (state IN ('pending', 'applied', 'failed', 'expired')),
    ADD COLUMN attempts integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    ADD COLUMN sent_at timestamptz,
    ADD COLUMN expires_at timestamptz,
    ADD COLUMN finished_at timestamptz,
    ADD COLUMN detail text;

CREATE UNIQUE INDEX manhole_calibrations_command_idx ON manhole_calibrations (command_id)
    WHERE command_id IS NOT NULL;
CREATE INDEX manhole_calibrations_pending_idx ON manhole_calibrations (calibrated_at)
    WHERE state = 'pending';
