"""Who may open a server: a NotebookServer's ``spec.viewers`` → JupyterHub access to that server.

cdsdashboards' "All Users" / "Selected Users", for JupyterHub 2+'s RBAC: one role per shared
server, ``nbswarm-viewers-<hash>``, with the one scope ``access:servers!server=<owner>/<server>``,
granted to the listed users and groups (or to every user). JupyterHub's OAuth then lets them
through: its authorize step checks that scope (anyone else gets 403 there), and the server's own
OAuth check (jupyterhub-singleuser, or nbswarm-dashboard-proxy in front of a dashboard) checks
it on every request with the token it was given. JupyterHub 3 has no sharing API (that came in
5.0), so roles are the way; they live in the hub's database.

The NotebookServer is the record: the spawner re-applies ``spec.viewers`` whenever it starts or
polls the server. That matters because JupyterHub deletes roles that are not in its
configuration when it starts (so they come back with the first poll), users who log in for the
first time after a server started get an "all users" grant at the next poll (``poll_interval``,
30 s by default), and a ``kubectl edit`` of the viewers takes effect at the next poll.
Listed users the hub does not know yet are skipped until they exist; listed groups that do not
exist are created (empty), so an admin can fill them later.
"""

from __future__ import annotations

import hashlib
from typing import Any, Dict, List, Optional

ROLE_PREFIX = "nbswarm-viewers-"


def role_name(owner: str, server: str) -> str:
    """A valid JupyterHub role name (lower case, 3-255 chars) for one server, stable across restarts."""
    return ROLE_PREFIX + hashlib.sha256(f"{owner}/{server}".encode()).hexdigest()[:20]


def access_scope(owner: str, server: str) -> str:
    return f"access:servers!server={owner}/{server}"


def wanted_viewers(spec: Optional[dict]) -> Dict[str, Any]:
    """spec.viewers normalised: {'all_users': bool, 'users': [...], 'groups': [...]}."""
    viewers = (spec or {}).get("viewers") or {}
    return {
        "all_users": bool(viewers.get("allUsers")),
        "users": sorted({str(u) for u in viewers.get("users") or []}),
        "groups": sorted({str(g) for g in viewers.get("groups") or []}),
    }


def sync_viewer_access(db: Any, owner: str, server: str, spec: Optional[dict], log: Any) -> Dict[str, Any]:
    """Make the hub's role for owner/server grant exactly spec.viewers. Returns what it granted."""
    from jupyterhub import orm, roles

    name = role_name(owner, server)
    want = wanted_viewers(spec)
    role = orm.Role.find(db, name)
    if not (want["all_users"] or want["users"] or want["groups"]):
        if role is not None:
            db.delete(role)
            db.commit()
            log.info("Viewer access to %s/%s removed (no spec.viewers)", owner, server)
        return {"role": None, "users": [], "groups": [], "unknown_users": []}

    scopes = [access_scope(owner, server)]
    if role is None or list(role.scopes or []) != scopes:
        roles.create_role(db, {"name": name, "description": f"nbswarm: may open {owner}/{server} (its NotebookServer's spec.viewers)", "scopes": scopes})
        role = orm.Role.find(db, name)

    if want["all_users"]:
        users = db.query(orm.User).all()
        unknown: List[str] = []
    else:
        users, unknown = [], []
        for n in want["users"]:
            u = orm.User.find(db, n)
            if u is None:
                unknown.append(n)
            else:
                users.append(u)
    groups = []
    for g in want["groups"]:
        group = orm.Group.find(db, g)
        if group is None:
            group = orm.Group(name=g)
            db.add(group)
            log.info("Created JupyterHub group %s for the viewers of %s/%s", g, owner, server)
        groups.append(group)

    changed = False
    if {u.id for u in role.users} != {u.id for u in users}:
        role.users = users
        changed = True
    if {g.name for g in role.groups} != {g.name for g in groups}:
        role.groups = groups
        changed = True
    if changed or db.new:
        db.commit()
        log.info(
            "Viewer access to %s/%s: users %s, groups %s%s",
            owner, server, sorted(u.name for u in users), want["groups"], " (all users)" if want["all_users"] else "",
        )
    if unknown:
        log.warning("Viewers of %s/%s not known to the hub yet (granted once they exist): %s", owner, server, unknown)
    return {"role": name, "users": sorted(u.name for u in users), "groups": want["groups"], "unknown_users": unknown}


def remove_viewer_access(db: Any, owner: str, server: str, log: Any) -> None:
    """Drop the role of a server that is deleted for good."""
    from jupyterhub import orm

    role = orm.Role.find(db, role_name(owner, server))
    if role is not None:
        db.delete(role)
        db.commit()
        log.info("Viewer access to %s/%s removed with the server", owner, server)


def hub_db(spawner: Any) -> Any:
    """The hub's own database session (the one its handlers read roles from)."""
    from sqlalchemy import inspect

    return inspect(spawner.orm_spawner).session
