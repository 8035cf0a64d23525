"""Riding out a short outage of the API server (e.g. `nbswarm up` restarting).

A spawn, a stop or a poll that meets a refused connection, a connection cut in the middle of a
response (``ProtocolError: InvalidChunkLength`` from a watch), a 5xx or a 429 tries again until its
own deadline instead of failing at once: the API server comes back within seconds and every write
the spawner makes is idempotent (create → 409 → patch, replace, delete → 404). A refusal (4xx) is an
answer, not an outage, and is raised at once.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable, Optional, TypeVar

T = TypeVar("T")

# HTTP statuses that mean "not now" rather than "no".
_RETRY_STATUSES = {429, 500, 502, 503, 504}
FIRST_PAUSE = 0.2
MAX_PAUSE = 2.0


def is_transient(exc: BaseException) -> bool:
    """True for errors that say the API server is unreachable or overloaded, not that it refused."""
    status = getattr(exc, "status", None)
    if status is not None and type(exc).__name__ == "ApiException":
        # status 0: the client got no HTTP answer at all.
        return status == 0 or status in _RETRY_STATUSES
    try:
        import urllib3.exceptions as u3

        if isinstance(exc, u3.HTTPError):
            return True
    except ImportError:  # pragma: no cover - urllib3 comes with the kubernetes client
        pass
    # Not any OSError: a missing kubeconfig or CA file will not appear by waiting.
    return isinstance(exc, (ConnectionError, TimeoutError, asyncio.TimeoutError))


async def retry_until(
    deadline: float,
    fn: Callable[[], Awaitable[T]],
    *,
    what: str,
    log: Optional[logging.Logger] = None,
) -> T:
    """Run ``fn`` until it succeeds, retrying transient errors with a growing pause until ``deadline``
    (the loop's clock); then the last transient error is raised. Other errors are raised at once."""
    loop = asyncio.get_running_loop()
    pause = FIRST_PAUSE
    failures = 0
    while True:
        try:
            result = await fn()
        except Exception as e:  # noqa: BLE001 - sorted below
            if not is_transient(e):
                raise
            failures += 1
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise
            if log is not None and failures in (1, 5, 20):
                log.warning("%s: the API server did not answer (%s); trying again until the deadline", what, describe(e))
            await asyncio.sleep(min(pause, remaining))
            pause = min(MAX_PAUSE, pause * 2)
            continue
        if failures and log is not None:
            log.info("%s: the API server answers again after %d failed attempt(s)", what, failures)
        return result


def describe(exc: BaseException) -> str:
    """One line naming an error (urllib3 wraps the cause in MaxRetryError's reason)."""
    reason = getattr(exc, "reason", None)
    inner = f": {reason}" if reason is not None and not isinstance(reason, str) else ""
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}{(': ' + text) if text else ''}{inner}"[:300]
