-- TimescaleDB (2.8 or later; the compose stack runs 2.17): local-day buckets, policies that
-- follow retention_settings, and a full refresh of every continuous aggregate.
--
-- 1. The daily aggregates are rebuilt with time_bucket(INTERVAL '1 day', ts, timezone => zone)
--    (docs: api/latest/hyperfunctions/time_bucket, "timezone"; continuous aggregates accept
--    it since 2.8). The zone is a constant in the view, so it is spliced in from hub_meta.
-- 2. A trigger keeps the retention and compression policies of each hypertable equal to its
--    retention_settings row: add_retention_policy/remove_retention_policy and
--    add_compression_policy/remove_compression_policy (2.18 renamed the latter
--    add_columnstore_policy/remove_columnstore_policy and kept the old names), so editing
--    the table, by the hub at migrate or by hand, changes the policy.
-- 3. The refresh policies are replaced by the hub after this file runs
--    (hub/store/storage.py), with start_offset covering everything the hub accepts
--    (HUB_MAX_AGE_S). Aggregates that earlier policies left incomplete (a refresh of the last
--    3 days moved the watermark past older, never materialized buckets) are refreshed in
--    full once: refresh_continuous_aggregate cannot run inside a transaction, so this file
--    leaves a mark and the hub refreshes after the commit.

DO $$
DECLARE
    zone text := (SELECT value FROM hub_meta WHERE key = 'city_timezone');
BEGIN
    DROP MATERIALIZED VIEW IF EXISTS lighting_energy_daily;
    EXECUTE format($view$
        CREATE MATERIALIZED VIEW lighting_energy_daily
        WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
        SELECT device_id,
            time_bucket(INTERVAL '1 day', ts, timezone => %L) AS bucket,
            count(*) AS samples,
            count(*) FILTER (WHERE "on" OR fault_code = 'SUPPLY_LOSS') AS due_samples,
            count(*) FILTER (WHERE "on" AND power_w > 3) AS lit_samples,
            avg(dim_pct) FILTER (WHERE "on" AND power_w > 3) AS lit_dim_pct,
            min(energy_kwh) AS energy_first_kwh,
            max(energy_kwh) AS energy_last_kwh
        FROM telemetry_lighting
        GROUP BY device_id, bucket
        WITH NO DATA$view$, zone);

    DROP MATERIALIZED VIEW IF EXISTS cabinet_energy_daily;
    EXECUTE format($view$
        CREATE MATERIALIZED VIEW cabinet_energy_daily
        WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
        SELECT device_id,
            time_bucket(INTERVAL '1 day', ts, timezone => %L) AS bucket,
            count(*) AS samples,
            min(energy_kwh) AS energy_first_kwh,
            max(energy_kwh) AS energy_last_kwh
        FROM telemetry_cabinet
        GROUP BY device_id, bucket
        WITH NO DATA$view$, zone);
END
$$;

CREATE FUNCTION hub_apply_storage_policy() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    target regclass := to_regclass(NEW.table_name);
BEGIN
    IF target IS NULL OR NOT EXISTS (
        SELECT 1 FROM timescaledb_information.hypertables
        WHERE format('%I.%I', hypertable_schema, hypertable_name)::regclass = target
    ) THEN
        RETURN NEW;  -- an ordinary table: the hub's periodic delete keeps it
    END IF;
    IF TG_OP = 'INSERT' OR NEW.keep IS DISTINCT FROM OLD.keep THEN
        PERFORM remove_retention_policy(target, if_exists => true);
        PERFORM add_retention_policy(target, NEW.keep);
    END IF;
    IF TG_OP = 'INSERT' OR NEW.compress_after IS DISTINCT FROM OLD.compress_after THEN
        PERFORM remove_compression_policy(target, if_exists => true);
        IF NEW.compress_after IS NOT NULL THEN
            PERFORM add_compression_policy(target, NEW.compress_after);
        END IF;
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER retention_settings_policy
    AFTER INSERT OR UPDATE ON retention_settings
    FOR EACH ROW EXECUTE FUNCTION hub_apply_storage_policy();

-- Every hypertable is compressed after 7 days until the settings say otherwise (003's value).
UPDATE retention_settings SET compress_after = interval '7 days'
WHERE table_name LIKE 'telemetry\_%';

INSERT INTO hub_meta (key, value) VALUES ('aggregates_need_full_refresh', 'yes')
    ON CONFLICT (key) DO UPDATE SET value = 'yes';
