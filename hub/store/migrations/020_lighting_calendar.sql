-- Lighting calendars (holidays, festivals: date rules), scenes (named dimming profiles) and
-- the schedules' day rules (ISO weekday mask, a calendar used only/except) and scene.
-- A calendar or scene a schedule names cannot be deleted (the foreign keys refuse it).

CREATE TABLE lighting_calendars (
    name        text PRIMARY KEY,
    spec        jsonb NOT NULL,                 -- CalendarSpec: dates, ranges, annual 'MM-DD'
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE lighting_scenes (
    name        text PRIMARY KEY,
    spec        jsonb NOT NULL,                 -- SceneSpec: steps of offset_min, dim_pct
    created_at  timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE lighting_schedules
    ADD COLUMN weekdays smallint[] NOT NULL DEFAULT '{}',   -- ISO 1..7; empty: every day
    ADD COLUMN calendar text REFERENCES lighting_calendars (name),
    ADD COLUMN calendar_mode text NOT NULL DEFAULT 'only'
        CHECK (calendar_mode IN ('only', 'except')),
    ADD COLUMN scene text REFERENCES lighting_scenes (name);
