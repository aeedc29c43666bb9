-- Storage ages from the settings (issue 19). The hub writes HUB_RETENTION_DAYS,
-- HUB_DEADLETTER_RETENTION_DAYS and HUB_COMPRESS_AFTER_DAYS into retention_settings at each
-- migrate (hub/store/storage.py); plain PostgreSQL enforces `keep` with periodic deletes,
-- TimescaleDB with its policies (the .timescale variant keeps them in step with this table).
-- compress_after is NULL for tables that are never compressed.

ALTER TABLE retention_settings
    ADD COLUMN compress_after interval CHECK (compress_after > interval '0');

-- The city's day: daily aggregates bucket by local midnight in this zone in both modes
-- (HUB_CITY_TIMEZONE, recorded at the first migrate; hub/store/migrations.py writes it
-- before this file runs, the default covers a database migrated by hand).
INSERT INTO hub_meta (key, value) VALUES ('city_timezone', 'Asia/Shanghai')
    ON CONFLICT (key) DO NOTHING;
