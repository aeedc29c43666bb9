"""`python -m hub tokens|users|city`: API tokens, console users and the console's map layers."""

import argparse
import getpass
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hub.principals import AccessRole, hash_password
from hub.settings import Settings

CITY_LAYER_FILES = ("streets", "grids", "districts")
Handler = Callable[[Settings, argparse.Namespace], int]


@contextmanager
def _store(settings: Settings) -> Iterator[Any]:
    from hub.store.access import AccessStore  # noqa: PLC0415 - keep --help fast
    from hub.store.database import Database  # noqa: PLC0415

    db = Database(settings.database_url, max_size=2)
    db.open()
    try:
        yield AccessStore(db)
    finally:
        db.close()


def cmd_tokens_create(settings: Settings, args: argparse.Namespace) -> int:
    """Create an API token and print its secret once."""
    from hub.store.access import AccessError  # noqa: PLC0415

    role = AccessRole(args.role)
    expires = datetime.now(UTC) + timedelta(days=args.expires_days) if args.expires_days else None
    with _store(settings) as store:
        try:
            record, secret = store.create_token(
                args.name, role, department=args.department, expires_at=expires, created_by="cli"
            )
        except AccessError as err:
            print(str(err), file=sys.stderr)
            return 2
    until = record.expires_at.isoformat() if record.expires_at else "never"
    print(f"token {record.id} ({record.name}, {record.role}) expires {until}", file=sys.stderr)
    print(
        "the secret is shown only now; send it as 'Authorization: Bearer <secret>':",
        file=sys.stderr,
    )
    print(secret)
    return 0


def cmd_tokens_revoke(settings: Settings, args: argparse.Namespace) -> int:
    """Revoke a token by id."""
    with _store(settings) as store:
        record = store.revoke_token(args.id, datetime.now(UTC))
    if record is None:
        print(f"no token {args.id}", file=sys.stderr)
        return 1
    print(f"token {record.id} ({record.name}) revoked")
    return 0


def cmd_tokens_list(settings: Settings, args: argparse.Namespace) -> int:
    """Print tokens (never their secrets)."""
    with _store(settings) as store:
        tokens = store.list_tokens(include_revoked=args.all)
    print(f"{'id':>4}  {'name':<24} {'role':<16} {'department':<14} {'expires':<20} state")
    for t in tokens:
        expires = f"{t.expires_at:%Y-%m-%d %H:%M}" if t.expires_at else "never"
        state = "revoked" if t.revoked_at else "active"
        print(
            f"{t.id:>4}  {t.name:<24} {t.role:<16} {t.department or '':<14} {expires:<20} {state}"
        )
    return 0


def _read_password(args: argparse.Namespace) -> str | None:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        print("the passwords differ", file=sys.stderr)
        return None
    return first


def cmd_users_create(settings: Settings, args: argparse.Namespace) -> int:
    """Create a console user, or replace its role, department and password."""
    from hub.store.access import AccessError  # noqa: PLC0415

    password = _read_password(args)
    if not password or len(password) < 8:
        print("need a password of at least 8 characters", file=sys.stderr)
        return 2
    with _store(settings) as store:
        try:
            created = store.save_user(
                args.username,
                AccessRole(args.role),
                hash_password(password),
                department=args.department,
                display_name=args.display_name or "",
            )
        except AccessError as err:
            print(str(err), file=sys.stderr)
            return 2
    print(f"user {args.username} ({args.role}) {'created' if created else 'updated'}")
    return 0


def cmd_users_list(settings: Settings, args: argparse.Namespace) -> int:
    """Print console users."""
    with _store(settings) as store:
        users = store.list_users()
    for u in users:
        state = " (disabled)" if u.disabled else ""
        print(f"{u.username:<20} {u.role:<16} {u.department or '':<14} {u.display_name}{state}")
    return 0


def cmd_users_disable(settings: Settings, args: argparse.Namespace) -> int:
    """Disable a user and end its sessions."""
    with _store(settings) as store:
        found = store.set_user_disabled(args.username, True)
    if not found:
        print(f"no user {args.username}", file=sys.stderr)
        return 1
    print(f"user {args.username} disabled")
    return 0


def cmd_city_layers_import(settings: Settings, args: argparse.Namespace) -> int:
    """Store streets/grids/districts GeoJSON of a city directory as console map layers."""
    import orjson  # noqa: PLC0415

    directory = Path(args.directory)
    imported = 0
    with _store(settings) as store:
        for name in CITY_LAYER_FILES:
            path = directory / f"{name}.geojson"
            if not path.exists():
                continue
            try:
                layer = orjson.loads(path.read_bytes())
            except orjson.JSONDecodeError as err:
                print(f"{path}: not JSON: {err}", file=sys.stderr)
                return 1
            if not isinstance(layer, dict) or layer.get("type") != "FeatureCollection":
                print(f"{path}: not a GeoJSON FeatureCollection", file=sys.stderr)
                return 1
            store.save_layer(name, layer)
            print(f"layer {name}: {len(layer.get('features') or [])} feature(s)")
            imported += 1
    if not imported:
        print(f"no {', '.join(CITY_LAYER_FILES)} .geojson in {directory}", file=sys.stderr)
        return 1
    return 0


def add_access_commands(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add the tokens, users and city subcommands to the hub's parser."""
    roles = [r.value for r in AccessRole]
    tokens = commands.add_parser("tokens", help="API tokens (hashed at rest)")
    token_cmds = tokens.add_subparsers(dest="tokens_command", required=True, metavar="ACTION")
    create = token_cmds.add_parser("create", help="create a token; prints its secret once")
    create.add_argument("--role", required=True, choices=roles)
    create.add_argument("--name", required=True, help="who or what uses it")
    create.add_argument("--department", help="the department (for --role department)")
    create.add_argument("--expires-days", type=float, help="default: never expires")
    create.set_defaults(handler=cmd_tokens_create)
    revoke = token_cmds.add_parser("revoke", help="revoke a token by id")
    revoke.add_argument("id", type=int)
    revoke.set_defaults(handler=cmd_tokens_revoke)
    tlist = token_cmds.add_parser("list", help="list tokens")
    tlist.add_argument("--all", action="store_true", help="include revoked tokens")
    tlist.set_defaults(handler=cmd_tokens_list)

    users = commands.add_parser("users", help="console users")
    user_cmds = users.add_subparsers(dest="users_command", required=True, metavar="ACTION")
    ucreate = user_cmds.add_parser("create", help="create or update a user (asks the password)")
    ucreate.add_argument("username")
    ucreate.add_argument("--role", required=True, choices=roles)
    ucreate.add_argument("--department", help="the department (for --role department)")
    ucreate.add_argument("--display-name")
    ucreate.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    ucreate.set_defaults(handler=cmd_users_create)
    ulist = user_cmds.add_parser("list", help="list users")
    ulist.set_defaults(handler=cmd_users_list)
    udisable = user_cmds.add_parser("disable", help="disable a user and end its sessions")
    udisable.add_argument("username")
    udisable.set_defaults(handler=cmd_users_disable)

    city = commands.add_parser("city", help="the city's map layers for the console")
    city_cmds = city.add_subparsers(dest="city_command", required=True, metavar="WHAT")
    layers = city_cmds.add_parser("layers", help="map layers")
    layer_cmds = layers.add_subparsers(dest="layers_command", required=True, metavar="ACTION")
    limport = layer_cmds.add_parser(
        "import", help="import streets/grids/districts.geojson from a simulated city directory"
    )
    limport.add_argument("directory")
    limport.set_defaults(handler=cmd_city_layers_import)
