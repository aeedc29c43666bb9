-- The working calendar as data the centre maintains: each year's holidays and make-up
-- working days (a State Council notice), imported by an admin (`python -m hub calendar
-- import FILE`). A year imported here replaces the packaged calendar's days of that year
-- (the bundled 2025/2026 notices are the initial data); zone and working periods stay in
-- configuration. Deadlines beyond the last known year are flagged on the case.
CREATE TABLE calendar_years (
    year               integer PRIMARY KEY CHECK (year BETWEEN 2000 AND 2200),
    holidays           jsonb NOT NULL,      -- [{"name": …, "first": "YYYY-MM-DD", "last": …}]
    makeup_workdays    jsonb NOT NULL,      -- ["YYYY-MM-DD", …]
    source             text NOT NULL,       -- file name or route the year came from
    imported_by        text NOT NULL,
    imported_at        timestamptz NOT NULL
);

-- Every import, kept (a handful of rows a year): who changed the calendar, when, from what.
CREATE TABLE calendar_imports (
    id                 bigserial PRIMARY KEY,
    years              integer[] NOT NULL,
    source             text NOT NULL,
    imported_by        text NOT NULL,
    imported_at        timestamptz NOT NULL,
    document           jsonb NOT NULL
);

-- The running stage's deadline falls after the last day whose holidays are known: it was
-- computed by weekdays alone and must be checked by a person.
ALTER TABLE cases ADD COLUMN stage_due_beyond_calendar boolean NOT NULL DEFAULT false;
