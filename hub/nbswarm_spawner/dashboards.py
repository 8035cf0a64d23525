"""Dashboard options of a spawn (cdsdashboards' user_options) → NotebookServer spec fields.

cdsdashboards hands its spawner ``presentation_type``, ``presentation_path``, ``git_repo``,
``git_repo_branch`` and ``conda_env``; the same names work here (through the REST API's JSON body,
``POST /users/NAME/servers/SERVER``), plus ``viewers``
(``{"users": [...], "groups": [...], "all_users": true}``) and nbswarm's own ``mode``,
``app_path``, ``template``. The operator validates everything again; what is checked here is what
the hub alone can judge: the option names and shapes, and that git credentials come only from
the admin's ``git_secret_name`` template, never from a user (a user-chosen Secret name could
send another user's credentials to the user's own git server).
"""

from __future__ import annotations

import re
from typing import Any, Dict, List, Optional

#: cdsdashboards' presentation type → nbswarm mode
PRESENTATION_TYPES = {"plotlydash": "dash"}
MODE_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
TOKEN_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._+-]*$")

OPTION_KEYS = {
    "image", "mode", "presentation_type", "presentation_path", "app_path", "template", "git_repo",
    "git_repo_branch", "conda_env", "viewers",
}


def mode_option(options: Dict[str, Any]) -> Optional[str]:
    """The requested mode: ``mode``, else cdsdashboards' ``presentation_type`` (plotlydash → dash)."""
    mode = options.get("mode") or options.get("presentation_type")
    if not mode:
        return None
    mode = PRESENTATION_TYPES.get(str(mode), str(mode))
    if not MODE_RE.match(mode):
        raise ValueError(f"mode {mode!r} is not a mode name (lower-case letters, digits and '-')")
    return mode


def _names(value: Any, what: str) -> List[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"viewers.{what} must be a list of names")
    return sorted(set(value))


def dashboard_spec(options: Dict[str, Any], base: Dict[str, Any], git_secret: str = "") -> Dict[str, Any]:
    """Spec fields for the dashboard options, merged over ``base`` (the admin's extra_spec)."""
    unknown = sorted(set(options) - OPTION_KEYS)
    if unknown:
        raise ValueError(f"unknown option(s) {unknown}; known: {sorted(OPTION_KEYS)}")
    out: Dict[str, Any] = {}
    app = dict(base.get("app") or {})
    path = options.get("presentation_path", options.get("app_path"))
    if path is not None:
        # cdsdashboards strips leading slashes: the path is always relative to the home (or clone).
        path = re.sub(r"^/+", "", str(path))
        if ".." in path.split("/"):
            raise ValueError("presentation_path must not contain '..'")
        app["path"] = path
    if options.get("template"):
        if not TOKEN_RE.match(str(options["template"])):
            raise ValueError(f"template {options['template']!r} is not a template name")
        app["template"] = str(options["template"])
    if options.get("conda_env"):
        if not TOKEN_RE.match(str(options["conda_env"])):
            raise ValueError(f"conda_env {options['conda_env']!r} is not a conda env name")
        app["condaEnv"] = str(options["conda_env"])
    if app:
        out["app"] = app
    repo = options.get("git_repo")
    if repo:
        git: Dict[str, Any] = {"url": str(repo).strip()}
        if options.get("git_repo_branch"):
            git["branch"] = str(options["git_repo_branch"]).strip()
        if git_secret:
            git["secretName"] = git_secret
        out["git"] = git
    viewers = options.get("viewers")
    if viewers is not None:
        if not isinstance(viewers, dict):
            raise ValueError('viewers must be an object like {"users": ["bob"], "groups": ["team"], "all_users": false}')
        extra = sorted(set(viewers) - {"users", "groups", "all_users", "allUsers"})
        if extra:
            raise ValueError(f"viewers has unknown key(s) {extra}")
        out["viewers"] = {
            "allUsers": bool(viewers.get("all_users", viewers.get("allUsers", False))),
            "users": _names(viewers.get("users"), "users"),
            "groups": _names(viewers.get("groups"), "groups"),
        }
    return out
