"""The caller's address and scheme behind a reverse proxy, believed only from proxies the
operator named (HUB_TRUSTED_PROXIES; none by default).

`X-Forwarded-For` is a list anyone can start: a client sends `X-Forwarded-For: 1.2.3.4` and
each proxy appends the address it saw. So the header counts only when the peer is a trusted
proxy, and then the caller is the right-most address that is not itself a trusted proxy.
`X-Forwarded-Proto` from a trusted proxy sets the scheme (https makes the session cookie
`Secure`). From anyone else both headers are ignored: the login throttle and the audit log
see the address that really connected.
"""

import ipaddress
from collections.abc import Sequence

from starlette.types import ASGIApp, Receive, Scope, Send

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
_SCHEMES = frozenset({"http", "https"})


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _trusted(address: str, networks: Sequence[IPNetwork]) -> bool:
    parsed = _address(address)
    return parsed is not None and any(parsed in network for network in networks)


def forwarded_client(peer: str, forwarded_for: str, networks: Sequence[IPNetwork]) -> str:
    """The caller's address: the peer, or, when the peer is a trusted proxy, the right-most
    address of X-Forwarded-For that is not a trusted proxy (a malformed one stops the walk)."""
    if not networks or not forwarded_for or not _trusted(peer, networks):
        return peer
    client = peer
    for hop in reversed(forwarded_for.split(",")):
        parsed = _address(hop)
        if parsed is None:
            break
        client = str(parsed)
        if not any(parsed in network for network in networks):
            break
    return client


class TrustedProxyMiddleware:
    """Rewrites the ASGI client address and scheme from a trusted proxy's headers."""

    def __init__(self, app: ASGIApp, *, trusted: Sequence[IPNetwork]) -> None:
        self.app = app
        self.trusted = tuple(trusted)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the app with `client` and `scheme` as the trusted proxy reports them."""
        client = scope.get("client")
        if scope["type"] == "http" and self.trusted and client:
            peer = str(client[0])
            if _trusted(peer, self.trusted):
                scope = dict(scope)
                caller = forwarded_client(peer, _header(scope, b"x-forwarded-for"), self.trusted)
                scope["client"] = (caller, client[1] if caller == peer else 0)
                proto = _header(scope, b"x-forwarded-proto").split(",")[0].strip().lower()
                if proto in _SCHEMES:
                    scope["scheme"] = proto
        await self.app(scope, receive, send)


def _header(scope: Scope, name: bytes) -> str:
    """Every value of a header, comma-joined in order (repeated headers are one list)."""
    values = [v.decode("latin-1") for k, v in scope["headers"] if k.lower() == name]
    return ",".join(values)
