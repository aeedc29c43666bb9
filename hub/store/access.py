"""API tokens, console users and sessions, the audit log and the console's city layers."""

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from hub.principals import (
    TOKEN_PREFIX,
    AccessRole,
    Principal,
    PrincipalKind,
    hash_secret,
    new_secret,
)
from hub.store.database import Database

log = logging.getLogger(__name__)

Document = dict[str, Any]


class AccessError(ValueError):
    """A token, user or layer cannot be stored as asked."""


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """A stored API token (without its secret)."""

    id: int
    name: str
    role: AccessRole
    department: str | None
    created_by: str | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None

    def document(self) -> Document:
        """As the API shows it."""
        return {
            "id": self.id,
            "name": self.name,
            "role": self.role.value,
            "department": self.department,
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat(),
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
        }


@dataclass(frozen=True, slots=True)
class UserRecord:
    """A console user (with the password hash, never shown)."""

    username: str
    display_name: str
    role: AccessRole
    department: str | None
    password_hash: str
    disabled: bool


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One write through the API."""

    actor: str
    role: str
    department: str | None
    method: str
    path: str
    route: str
    status: int
    client_ip: str | None
    before: object
    after: object


_TOKEN_FIELDS = "id, name, role, department, created_by, created_at, expires_at, revoked_at"  # noqa: S105


def _token(row: tuple[Any, ...]) -> TokenRecord:
    return TokenRecord(
        id=int(row[0]),
        name=str(row[1]),
        role=AccessRole(row[2]),
        department=row[3],
        created_by=row[4],
        created_at=row[5],
        expires_at=row[6],
        revoked_at=row[7],
    )


def _check_role(role: AccessRole, department: str | None) -> None:
    if role is AccessRole.DEPARTMENT and not department:
        raise AccessError("the department role needs a department")


class AccessStore:
    """Reads and writes of the access tables through the hub's pool."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # tokens
    def create_token(
        self,
        name: str,
        role: AccessRole,
        *,
        department: str | None = None,
        expires_at: datetime | None = None,
        created_by: str | None = None,
    ) -> tuple[TokenRecord, str]:
        """A new token and its secret; only the secret's hash is stored."""
        _check_role(role, department)
        secret = new_secret(TOKEN_PREFIX)
        with self.db.connection() as conn:
            row = conn.execute(
                "INSERT INTO api_tokens (name, role, department, token_hash, created_by,"
                f" expires_at) VALUES (%s, %s, %s, %s, %s, %s) RETURNING {_TOKEN_FIELDS}",
                (name, role.value, department, hash_secret(secret), created_by, expires_at),
            ).fetchone()
        if row is None:  # pragma: no cover - INSERT ... RETURNING returns its row
            raise AccessError("the token was not stored")
        return _token(row), secret

    def list_tokens(self, include_revoked: bool = False) -> list[TokenRecord]:
        """Tokens by id."""
        where = "" if include_revoked else "WHERE revoked_at IS NULL"
        with self.db.connection() as conn:
            rows = conn.execute(f"SELECT {_TOKEN_FIELDS} FROM api_tokens {where} ORDER BY id")
            return [_token(r) for r in rows]

    def get_token(self, token_id: int) -> TokenRecord | None:
        """One token by id."""
        with self.db.connection() as conn:
            row = conn.execute(
                f"SELECT {_TOKEN_FIELDS} FROM api_tokens WHERE id = %s", (token_id,)
            ).fetchone()
        return _token(row) if row else None

    def revoke_token(self, token_id: int, at: datetime) -> TokenRecord | None:
        """Revoke a token (idempotent); None when there is no such token."""
        with self.db.connection() as conn:
            row = conn.execute(
                "UPDATE api_tokens SET revoked_at = coalesce(revoked_at, %s) WHERE id = %s"
                f" RETURNING {_TOKEN_FIELDS}",
                (at, token_id),
            ).fetchone()
        return _token(row) if row else None

    def principal_for_token(self, secret: str, now: datetime) -> Principal | None:
        """The caller a bearer token stands for, if it is known, unexpired and not revoked."""
        with self.db.connection() as conn:
            row = conn.execute(
                "SELECT id, name, role, department FROM api_tokens WHERE token_hash = %s"
                " AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > %s)",
                (hash_secret(secret), now),
            ).fetchone()
        if row is None:
            return None
        return Principal(
            kind=PrincipalKind.TOKEN,
            name=str(row[1]),
            role=AccessRole(row[2]),
            department=row[3],
            token_id=int(row[0]),
        )

    # users
    def save_user(
        self,
        username: str,
        role: AccessRole,
        password_hash: str,
        *,
        department: str | None = None,
        display_name: str = "",
    ) -> bool:
        """Create a user or replace its role, department and password; True when created."""
        _check_role(role, department)
        with self.db.connection() as conn:
            try:
                row = conn.execute(
                    "INSERT INTO console_users (username, display_name, role, department,"
                    " password_hash) VALUES (%s, %s, %s, %s, %s)"
                    " ON CONFLICT (username) DO UPDATE SET display_name = EXCLUDED.display_name,"
                    " role = EXCLUDED.role, department = EXCLUDED.department,"
                    " password_hash = EXCLUDED.password_hash, disabled = false, updated_at = now()"
                    " RETURNING (xmax = 0)",
                    (username, display_name, role.value, department, password_hash),
                ).fetchone()
            except psycopg.errors.CheckViolation as err:
                raise AccessError(f"invalid user name {username!r}") from err
        return bool(row and row[0])

    def get_user(self, username: str) -> UserRecord | None:
        """One user."""
        with self.db.connection() as conn:
            row = conn.execute(
                "SELECT username, display_name, role, department, password_hash, disabled"
                " FROM console_users WHERE username = %s",
                (username,),
            ).fetchone()
        if row is None:
            return None
        return UserRecord(row[0], row[1], AccessRole(row[2]), row[3], row[4], bool(row[5]))

    def list_users(self) -> list[UserRecord]:
        """Every user by name."""
        with self.db.connection() as conn:
            rows = conn.execute(
                "SELECT username, display_name, role, department, password_hash, disabled"
                " FROM console_users ORDER BY username"
            ).fetchall()
        return [UserRecord(r[0], r[1], AccessRole(r[2]), r[3], r[4], bool(r[5])) for r in rows]

    def set_user_disabled(self, username: str, disabled: bool) -> bool:
        """Disable (ending its sessions) or enable a user; False when there is none."""
        with self.db.connection() as conn:
            cursor = conn.execute(
                "UPDATE console_users SET disabled = %s, updated_at = now() WHERE username = %s",
                (disabled, username),
            )
            if disabled:
                conn.execute("DELETE FROM console_sessions WHERE username = %s", (username,))
        return cursor.rowcount > 0

    def replace_password_hash(self, username: str, old_hash: str, new_hash: str) -> bool:
        """Store a new hash of the same password (an upgrade at login), unless the password
        was changed meanwhile; True when replaced."""
        with self.db.connection() as conn:
            cursor = conn.execute(
                "UPDATE console_users SET password_hash = %s, updated_at = now()"
                " WHERE username = %s AND password_hash = %s",
                (new_hash, username, old_hash),
            )
        return cursor.rowcount > 0

    # failed logins, shared by every hub of a cluster
    def recent_login_failures(
        self, username: str, client_ip: str, since: datetime, per_address: int, per_user: int
    ) -> tuple[list[datetime], list[datetime]]:
        """Failed logins of a user name after `since`, newest first: (from this address, at
        most `per_address`; from any address, at most `per_user`)."""
        name = username.lower()
        with self.db.connection() as conn:
            from_address = conn.execute(
                "SELECT at FROM login_failures WHERE username = %s AND client_ip = %s"
                " AND at > %s ORDER BY at DESC LIMIT %s",
                (name, client_ip, since, per_address),
            ).fetchall()
            from_anywhere = conn.execute(
                "SELECT at FROM login_failures WHERE username = %s AND at > %s"
                " ORDER BY at DESC LIMIT %s",
                (name, since, per_user),
            ).fetchall()
        return [r[0] for r in from_address], [r[0] for r in from_anywhere]

    def record_login_failure(self, username: str, client_ip: str, at: datetime) -> None:
        """Count one failed login of a user name (known or not) from an address."""
        with self.db.connection() as conn:
            conn.execute(
                "INSERT INTO login_failures (at, username, client_ip) VALUES (%s, %s, %s)",
                (at, username.lower(), client_ip),
            )

    def forget_login_failures(self, username: str, client_ip: str) -> None:
        """Forget a user name's failures from the address it has just logged in from."""
        with self.db.connection() as conn:
            conn.execute(
                "DELETE FROM login_failures WHERE username = %s AND client_ip = %s",
                (username.lower(), client_ip),
            )

    # sessions
    def create_session(self, username: str, secret: str, expires_at: datetime) -> None:
        """Store a new session by the hash of its cookie value."""
        with self.db.connection() as conn:
            conn.execute(
                "INSERT INTO console_sessions (session_hash, username, expires_at)"
                " VALUES (%s, %s, %s)",
                (hash_secret(secret), username, expires_at),
            )

    def delete_session(self, secret: str) -> None:
        """End a session."""
        with self.db.connection() as conn:
            conn.execute(
                "DELETE FROM console_sessions WHERE session_hash = %s", (hash_secret(secret),)
            )

    def principal_for_session(self, secret: str, now: datetime) -> Principal | None:
        """The user a session cookie stands for, if the session is live and the user enabled."""
        with self.db.connection() as conn:
            row = conn.execute(
                "SELECT u.username, u.role, u.department, u.display_name"
                " FROM console_sessions s JOIN console_users u USING (username)"
                " WHERE s.session_hash = %s AND s.expires_at > %s AND NOT u.disabled",
                (hash_secret(secret), now),
            ).fetchone()
        if row is None:
            return None
        return Principal(
            kind=PrincipalKind.USER,
            name=str(row[0]),
            role=AccessRole(row[1]),
            department=row[2],
            display_name=str(row[3]),
        )

    # audit
    def write_audit(self, entry: AuditEntry) -> None:
        """Append one line to the audit log."""
        with self.db.connection() as conn:
            conn.execute(
                "INSERT INTO audit_log (actor, role, department, method, path, route, status,"
                " client_ip, before, after) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (
                    entry.actor,
                    entry.role,
                    entry.department,
                    entry.method,
                    entry.path,
                    entry.route,
                    entry.status,
                    entry.client_ip,
                    None if entry.before is None else Jsonb(entry.before),
                    None if entry.after is None else Jsonb(entry.after),
                ),
            )

    def search_audit(
        self,
        *,
        actor: str | None = None,
        path_prefix: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Document]:
        """Audit lines, newest first."""
        clauses: list[str] = []
        params: list[object] = []
        for clause, value in (
            ("actor = %s", actor),
            ("path LIKE %s", None if path_prefix is None else _like_prefix(path_prefix)),
            ("at >= %s", since),
            ("at < %s", until),
        ):
            if value is not None:
                clauses.append(clause)
                params.append(value)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        with self.db.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            cur.execute(
                "SELECT id, at, actor, role, department, method, path, route, status, client_ip,"
                f" before, after FROM audit_log {where} ORDER BY id DESC LIMIT %s OFFSET %s",
                (*params, limit, offset),
            )
            return list(cur.fetchall())

    # city layers
    def save_layer(self, name: str, geojson: Document) -> None:
        """Create or replace a named GeoJSON layer."""
        with self.db.connection() as conn:
            try:
                conn.execute(
                    "INSERT INTO city_layers (name, geojson) VALUES (%s, %s)"
                    " ON CONFLICT (name) DO UPDATE SET geojson = EXCLUDED.geojson,"
                    " updated_at = now()",
                    (name, Jsonb(geojson)),
                )
            except psycopg.errors.CheckViolation as err:
                raise AccessError(f"invalid layer name {name!r}") from err

    def layer_names(self) -> list[str]:
        """Stored layer names."""
        with self.db.connection() as conn:
            return [str(r[0]) for r in conn.execute("SELECT name FROM city_layers ORDER BY name")]

    def get_layer(self, name: str) -> Document | None:
        """A stored layer, or lots/zones built from the parking tables."""
        with self.db.connection() as conn:
            row = conn.execute(
                "SELECT geojson FROM city_layers WHERE name = %s", (name,)
            ).fetchone()
            if row is not None:
                layer: Document = row[0]
                return layer
            if name in ("lots", "zones"):
                table, key = (
                    ("parking_lots", "lot_id") if name == "lots" else ("parking_zones", "zone_id")
                )
                rows = conn.execute(
                    f"SELECT {key}, name, capacity, geometry FROM {table} ORDER BY {key}"
                ).fetchall()
                return {
                    "type": "FeatureCollection",
                    "features": [
                        {
                            "type": "Feature",
                            "id": r[0],
                            "geometry": r[3],
                            "properties": {"id": r[0], "name": r[1], "capacity": r[2]},
                        }
                        for r in rows
                    ],
                }
        return None


def _like_prefix(prefix: str) -> str:
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"{escaped}%"
