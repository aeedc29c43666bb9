-- Alarms, 数字城管 cases with their event log, daily case numbers, and the outbox
-- towards external case systems.

CREATE TABLE alarms (
    id                 bigserial PRIMARY KEY,
    source_kind        text NOT NULL CHECK (source_kind IN ('device', 'group')),
    source_id          text NOT NULL,
    alarm_type         text NOT NULL,
    severity           text NOT NULL CHECK (severity IN ('critical', 'major', 'minor', 'warning')),
    state              text NOT NULL DEFAULT 'active'
                       CHECK (state IN ('active', 'acknowledged', 'cleared')),
    raised_at          timestamptz NOT NULL,  -- event time of the raise
    last_seen_at       timestamptz NOT NULL,  -- event time of the latest trigger
    cleared_at         timestamptz,
    count              integer NOT NULL DEFAULT 1 CHECK (count >= 1),
    message            text NOT NULL DEFAULT '',
    evidence           jsonb NOT NULL DEFAULT '[]'::jsonb,
    details            jsonb NOT NULL DEFAULT '{}'::jsonb,
    acknowledged_by    text,
    acknowledged_at    timestamptz,
    cleared_by         text,                  -- NULL when the rules cleared it
    case_id            bigint,
    -- When the filing policy should look at this alarm (again); NULL once decided for good.
    filing_due_at      timestamptz,
    -- When the clearance of an alarm behind a case was checked (stayed clear or not).
    clear_checked_at   timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CHECK ((state = 'cleared') = (cleared_at IS NOT NULL))
);
-- The database, not the code, guarantees one open alarm per source and type: concurrent
-- raises from several hub processes meet in INSERT ... ON CONFLICT on this index.
CREATE UNIQUE INDEX alarms_one_open_idx ON alarms (source_id, alarm_type) WHERE state <> 'cleared';
CREATE INDEX alarms_raised_idx ON alarms (raised_at);
CREATE INDEX alarms_cleared_idx ON alarms (cleared_at) WHERE cleared_at IS NOT NULL;
CREATE INDEX alarms_source_idx ON alarms (source_id, alarm_type, id);
CREATE INDEX alarms_filing_due_idx ON alarms (filing_due_at)
    WHERE filing_due_at IS NOT NULL AND case_id IS NULL AND state <> 'cleared';
CREATE INDEX alarms_clear_check_idx ON alarms (cleared_at)
    WHERE case_id IS NOT NULL AND state = 'cleared' AND clear_checked_at IS NULL;

CREATE TABLE cases (
    id                 bigserial PRIMARY KEY,
    case_number        text NOT NULL UNIQUE,
    source             text NOT NULL,
    class_kind         text NOT NULL CHECK (class_kind IN ('component', 'matter')),
    class_code         text NOT NULL CHECK (class_code ~ '^[0-9]{5}$'),
    urgency            text NOT NULL CHECK (urgency IN ('normal', 'urgent')),
    status             text NOT NULL,
    grid_code          text CHECK (grid_code ~ '^[0-9]{15}$'),
    department         text,
    lat                double precision CHECK (lat BETWEEN -90 AND 90),
    lon                double precision CHECK (lon BETWEEN -180 AND 180),
    address            text,
    description        text NOT NULL DEFAULT '',
    alarm_id           bigint REFERENCES alarms (id) ON DELETE SET NULL,
    device_id          text,
    evidence           jsonb NOT NULL DEFAULT '{}'::jsonb,
    state              jsonb NOT NULL,        -- the serialised hub.cases.workflow.CaseState
    version            integer NOT NULL CHECK (version >= 1),
    external_id        text,                  -- the id an external case system gave it
    reported_at        timestamptz NOT NULL,
    registered_at      timestamptz,
    dispatched_at      timestamptz,
    handled_at         timestamptz,
    closed_at          timestamptz,
    finished_at        timestamptz,           -- closed, rejected or voided
    updated_at         timestamptz NOT NULL,
    -- The running stage and its deadlines, kept with every change so lists filter in SQL:
    -- yellow from stage_yellow_at, red (overdue) from stage_overdue_at.
    stage              text,
    stage_started_at   timestamptz,
    stage_due_at       timestamptz,
    stage_yellow_at    timestamptz,
    stage_overdue_at   timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX cases_status_idx ON cases (status);
CREATE INDEX cases_department_idx ON cases (department, status);
CREATE INDEX cases_grid_idx ON cases (grid_code text_pattern_ops);
CREATE INDEX cases_class_idx ON cases (class_code);
CREATE INDEX cases_reported_idx ON cases (reported_at);
CREATE INDEX cases_registered_idx ON cases (registered_at);
CREATE INDEX cases_overdue_idx ON cases (stage_overdue_at) WHERE finished_at IS NULL;
CREATE INDEX cases_alarm_idx ON cases (alarm_id) WHERE alarm_id IS NOT NULL;

ALTER TABLE alarms
    ADD CONSTRAINT alarms_case_fk FOREIGN KEY (case_id) REFERENCES cases (id) ON DELETE SET NULL;

CREATE TABLE case_events (
    case_id            bigint NOT NULL REFERENCES cases (id) ON DELETE CASCADE,
    seq                integer NOT NULL CHECK (seq >= 1),
    action             text NOT NULL,
    from_status        text,
    to_status          text NOT NULL,
    actor_role         text NOT NULL,
    actor_id           text,
    at                 timestamptz NOT NULL,
    note               text NOT NULL DEFAULT '',
    payload            jsonb NOT NULL DEFAULT '{}'::jsonb,
    recorded_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (case_id, seq)
);

-- One counter per local date: case numbers are date + daily sequence.
CREATE TABLE case_number_seq (
    local_date         date PRIMARY KEY,
    last_seq           integer NOT NULL CHECK (last_seq >= 1)
);

-- Case events waiting for (or done with) delivery to an external system; delivered in
-- id order per (case, target), retried with backoff, kept across restarts.
CREATE TABLE outbox (
    id                 bigserial PRIMARY KEY,
    case_id            bigint NOT NULL REFERENCES cases (id) ON DELETE CASCADE,
    seq                integer NOT NULL,
    target             text NOT NULL,
    event_type         text NOT NULL,
    body               jsonb NOT NULL,
    idempotency_key    text NOT NULL UNIQUE,
    created_at         timestamptz NOT NULL DEFAULT now(),
    delivered_at       timestamptz,
    attempts           integer NOT NULL DEFAULT 0,
    next_attempt_at    timestamptz NOT NULL DEFAULT now(),
    last_error         text,
    UNIQUE (case_id, target, seq)
);
CREATE INDEX outbox_pending_idx ON outbox (next_attempt_at, id) WHERE delivered_at IS NULL;
CREATE INDEX outbox_case_pending_idx ON outbox (case_id, target, id) WHERE delivered_at IS NULL;
CREATE INDEX outbox_delivered_idx ON outbox (delivered_at) WHERE delivered_at IS NOT NULL;

-- Rows with a NULL time column are never deleted: open alarms, open cases and undelivered
-- outbox rows stay until they are finished.
INSERT INTO retention_settings (table_name, time_column, keep) VALUES
    ('alarms', 'cleared_at', interval '365 days'),
    ('outbox', 'delivered_at', interval '90 days'),
    ('cases', 'finished_at', interval '3650 days'),
    ('case_number_seq', 'local_date', interval '400 days');
