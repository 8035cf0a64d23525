"""The names of the objects a hub's servers get: a user's and a server's names as one DNS-1123 label."""

from __future__ import annotations

import hashlib
import string

_SAFE = set(string.ascii_lowercase + string.digits)


def escape_dns(value: str) -> str:
    """Lower-case DNS-label-safe escaping (kubespawner style: unsafe bytes become -hh)."""
    return "".join(ch if ch in _SAFE else "".join("-%02x" % b for b in ch.encode()) for ch in value)


def resource_name(template: str, prefix: str, username: str, servername: str) -> str:
    """Format name_template into a DNS-1123 label.

    An empty servername drops its separator. When escaping changed anything or the name is too
    long, a hash of (username, servername) is appended: escaped names could otherwise collide
    (user "a.b" vs user "a" with server "2eb").
    """
    user_esc = escape_dns(username)
    server_esc = escape_dns(servername)
    name = template.format(prefix=prefix, username=user_esc, servername=server_esc)
    while "--" in name and not servername:
        name = name.replace("--", "-")
    name = name.strip("-")
    changed = user_esc != username or server_esc != servername
    if changed or len(name) > 63:
        digest = hashlib.sha256(f"{username}\0{servername}".encode()).hexdigest()[:8]
        name = f"{name[:54].rstrip('-')}-{digest}"
    return name
