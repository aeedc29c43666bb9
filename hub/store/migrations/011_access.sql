-- Access: API tokens and console users (secrets hashed at rest), console sessions, the
-- audit log of every write through the API, and city map layers for the console.

CREATE TABLE api_tokens (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL,
    role        text NOT NULL,
    department  text,
    token_hash  text NOT NULL UNIQUE,     -- sha256 hex of the secret; the secret is shown once
    created_by  text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz,              -- NULL = does not expire
    revoked_at  timestamptz,
    CHECK (role <> 'department' OR department IS NOT NULL)
);

CREATE TABLE console_users (
    username       text PRIMARY KEY CHECK (username ~ '^[A-Za-z0-9_.@-]{1,64}$'),
    display_name   text NOT NULL DEFAULT '',
    role           text NOT NULL,
    department     text,
    password_hash  text NOT NULL,         -- scrypt$n$r$p$salt$hash
    disabled       boolean NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CHECK (role <> 'department' OR department IS NOT NULL)
);

CREATE TABLE console_sessions (
    session_hash  text PRIMARY KEY,       -- sha256 hex of the cookie value
    username      text NOT NULL REFERENCES console_users (username) ON DELETE CASCADE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL
);
CREATE INDEX console_sessions_expires_idx ON console_sessions (expires_at);

CREATE TABLE audit_log (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    actor       text NOT NULL,            -- user:<name> or token:<id>:<name>
    role        text NOT NULL,
    department  text,
    method      text NOT NULL,
    path        text NOT NULL,            -- the request path
    route       text NOT NULL,            -- the route template, e.g. /cases/{case_id}/dispatch
    status      integer NOT NULL,
    client_ip   text,
    before      jsonb,
    after       jsonb
);
CREATE INDEX audit_log_at_idx ON audit_log (at);
CREATE INDEX audit_log_actor_idx ON audit_log (actor, at);

CREATE TABLE city_layers (
    name        text PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_]{0,31}$'),
    geojson     jsonb NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

INSERT INTO retention_settings (table_name, time_column, keep) VALUES
    ('audit_log', 'at', interval '1095 days'),
    ('console_sessions', 'expires_at', interval '1 day');
