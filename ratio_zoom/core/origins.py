"""Web origins (`scheme://host[:port]`) for allow-lists: where the OAuth callback may send a browser back to.

An origin is compared in its normalised form (lower-case scheme and host, default port dropped), so
`https://Ratio.example:443` and `https://ratio.example` are the same origin and `https://ratio.example.evil`
is not. Only https is accepted, except plain http on a loopback host (a developer's machine).
"""

from __future__ import annotations

from urllib.parse import urlsplit

LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
_DEFAULT_PORTS = {"https": 443, "http": 80}


def origin_of(url: str) -> str | None:
    """The normalised origin of an absolute http(s) URL, or None when it is not one (or carries a user)."""
    if any(ch in url for ch in "\\\r\n\t") or url != url.strip():
        return None  # browsers repair these in ways urlsplit does not: refuse rather than guess
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if scheme not in _DEFAULT_PORTS or not host or parts.username is not None or parts.password is not None:
        return None
    if scheme == "http" and host not in LOOPBACK_HOSTS:
        return None
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}" if port in (None, _DEFAULT_PORTS[scheme]) else f"{scheme}://{shown}:{port}"


def parse_origins(value: str) -> tuple[str, ...]:
    """`https://a.example,https://b.example:8443` -> normalised origins; ValueError names a bad entry."""
    origins = []
    for entry in (e.strip() for e in value.split(",")):
        if not entry:
            continue
        origin = origin_of(entry)
        if origin is None or urlsplit(entry).path not in ("", "/") or urlsplit(entry).query:
            raise ValueError(f"{entry!r} is not an origin: use https://host[:port] (http only for localhost)")
        origins.append(origin)
    return tuple(origins)
