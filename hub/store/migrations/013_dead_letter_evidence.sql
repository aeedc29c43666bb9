-- Dead letters keep evidence of what they were without keeping everything: the size and
-- SHA-256 of the payload as received (an oversize payload keeps only a sample of its first
-- bytes), and whether it arrived as a retained message. A retained message is delivered
-- again whenever the hub subscribes afresh; it is kept once, not once per delivery.
ALTER TABLE dead_letters
    ADD COLUMN payload_bytes integer,
    ADD COLUMN payload_sha256 bytea,
    ADD COLUMN retained boolean NOT NULL DEFAULT false;
UPDATE dead_letters SET payload_bytes = length(payload), payload_sha256 = sha256(payload);
ALTER TABLE dead_letters
    ALTER COLUMN payload_bytes SET NOT NULL,
    ALTER COLUMN payload_sha256 SET NOT NULL;
CREATE UNIQUE INDEX dead_letters_retained_once ON dead_letters (topic, payload_sha256)
    WHERE retained AND replayed_at IS NULL;
