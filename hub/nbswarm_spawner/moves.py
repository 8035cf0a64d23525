"""Following a server that Swarm moved to another node.

When a node dies or is drained, Swarm starts the server's task on another node, where its
published port is another address; the operator then reports the new ``status.endpoint``. A hub
that routes to ``hostUrl`` would keep sending users to the dead address, so the spawner's
``poll()`` compares the endpoint with the address the hub routes to and, when the server answers
somewhere else, points the hub's record and its proxy route there (what JupyterHub's own route
check does, minutes later, for a route that disagrees with the record).

With ``endpoint = 'url'`` (the service name on an overlay network the hub and proxy share) the
name follows the task by itself and nothing changes here.
"""

from __future__ import annotations

from typing import Any, Optional
from urllib.parse import urlparse


def moved_to(current: Any, url: Optional[str]) -> Optional[tuple]:
    """(proto, host, port) of ``url`` when it differs from the hub's ``current`` Server, else None."""
    if not url or current is None:
        return None
    u = urlparse(url)
    if not u.hostname:
        return None
    port = u.port or (443 if u.scheme == "https" else 80)
    if (current.proto, current.ip, current.port) == (u.scheme, u.hostname, port):
        return None
    return (u.scheme, u.hostname, port)


async def follow_move(spawner: Any, url: Optional[str]) -> bool:
    """Point the hub's record of ``spawner``'s server, and its proxy route, at ``url``. True when it moved."""
    server = spawner.server
    target = moved_to(server, url)
    if target is None:
        return False
    old = server.host
    server.proto, server.ip, server.port = target
    if spawner.db is not None:
        spawner.db.commit()
    spawner.log.warning("NotebookServer %s moved: routing %s instead of %s", spawner.resource_name, server.host, old)
    proxy = (getattr(spawner.user, "settings", None) or {}).get("proxy")
    if proxy is not None:
        await proxy.add_user(spawner.user, spawner.name)
    return True
