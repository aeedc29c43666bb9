-- Muck trucks: construction and disposal sites, transport permits with route corridors,
-- restricted zones and speed zones. Geometry is stored as GeoJSON-style [lon, lat] arrays
-- (jsonb) so the schema is the same with and without PostGIS; the hub does the geometry.
-- None of these tables grows with time, so none needs a retention setting.

CREATE TABLE truck_sites (
    site_id     text PRIMARY KEY,
    name        text NOT NULL DEFAULT '',
    site_type   text NOT NULL CHECK (site_type IN ('construction', 'disposal', 'illegal')),
    ring        jsonb NOT NULL,          -- outer ring [[lon, lat], ...]
    grid_code   text,
    approved    boolean NOT NULL DEFAULT true,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE truck_permits (
    permit_id          text PRIMARY KEY,
    truck_id           text NOT NULL,
    plate              text NOT NULL DEFAULT '',
    company            text NOT NULL DEFAULT '',
    origin_site_id     text,
    disposal_site_ids  text[] NOT NULL DEFAULT '{}',
    route              jsonb NOT NULL,   -- [[lon, lat], ...]
    corridor_m         double precision NOT NULL CHECK (corridor_m > 0),
    allowed_hours      text NOT NULL,    -- local HH:MM-HH:MM, wraps midnight
    valid_from         date NOT NULL,
    valid_to           date NOT NULL,
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CHECK (valid_from <= valid_to)
);
CREATE INDEX truck_permits_truck_idx ON truck_permits (truck_id);
CREATE INDEX truck_permits_company_idx ON truck_permits (company);

CREATE TABLE truck_zones (
    zone_id          text PRIMARY KEY,
    name             text NOT NULL DEFAULT '',
    zone_type        text NOT NULL CHECK (zone_type IN ('restricted', 'speed')),
    ring             jsonb NOT NULL,
    speed_limit_kmh  double precision CHECK (speed_limit_kmh IS NULL OR speed_limit_kmh > 0),
    hours            text,               -- local HH:MM-HH:MM when in force; NULL = always
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CHECK (zone_type <> 'speed' OR speed_limit_kmh IS NOT NULL)
);

-- Deletions must also change what the rules see: the hub reloads when this moves.
CREATE TABLE truck_context_version (
    id          boolean PRIMARY KEY DEFAULT true CHECK (id),
    changed_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO truck_context_version DEFAULT VALUES;
