-- Access security: failed console logins are kept here, not in one process's memory, so
-- every hub of a cluster throttles alike, per address and user name and per user name
-- across addresses (hub/principals.py LoginPolicy). Passwords are argon2id from now on;
-- scrypt hashes of earlier versions are replaced at their user's next login.

CREATE TABLE login_failures (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL,
    username    text NOT NULL,            -- lower-cased as typed; may name no user
    client_ip   text NOT NULL
);
CREATE INDEX login_failures_user_idx ON login_failures (username, at);
CREATE INDEX login_failures_at_idx ON login_failures (at);

COMMENT ON COLUMN console_users.password_hash IS
    'argon2id PHC string ($argon2id$v=19$m=...), or a legacy scrypt$n$r$p$salt$hash';

INSERT INTO retention_settings (table_name, time_column, keep) VALUES
    ('login_failures', 'at', interval '1 day');
