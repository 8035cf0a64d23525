"""Reading a NotebookServer as the operator writes it: its conditions, whether its status is current,
and the RFC 3339 times of its annotations and events."""

from __future__ import annotations

import datetime
from typing import Optional


def condition(obj: dict, ctype: str) -> Optional[dict]:
    """The status condition of type `ctype`, if the object has one."""
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == ctype:
            return cond
    return None


def crash_looping(obj: dict) -> bool:
    """Not Ready, and Docker gave up restarting it before (the operator's back-off started it again):
    down as much as Failed, whether or not a poll came during the Failed moment."""
    restarted = condition(obj, "Restarted") or {}
    ready = condition(obj, "Ready") or {}
    return restarted.get("reason") == "CrashLoopBackOff" and ready.get("status") != "True"


def is_current(obj: dict) -> bool:
    """True when status describes the current generation (not a stale one from before a patch)."""
    status = obj.get("status") or {}
    observed = status.get("observedGeneration")
    generation = (obj.get("metadata") or {}).get("generation")
    return observed is None or generation is None or observed >= generation


def rfc3339(t: datetime.datetime) -> str:
    return t.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: Optional[str]) -> Optional[datetime.datetime]:
    """An RFC 3339 time as Kubernetes writes it; None when absent or unreadable."""
    if not value:
        return None
    try:
        return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
