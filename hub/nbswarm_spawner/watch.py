"""Kubernetes watch streams for asyncio code, read by a worker thread.

Debian's ``python3-kubernetes`` (22.x) is synchronous, and JupyterHub's event loop must never block.
``watch_events`` sends one watch request from a thread of the given executor, reads the response
line by line there, and hands each event to the loop through an ``asyncio.Queue``; the caller
iterates over plain dicts (``{"type": ..., "object": ...}``).

Two things a naive threaded reader gets wrong are handled here:

- an abandoned watch (the caller stops iterating, or the timeout passes) has its socket shut down,
  so the reader thread returns at once instead of waiting for the server-side timeout while holding
  one of the executor's threads;
- a connection left half-read is closed, never returned to the client's pool where the next request
  would read the rest of the old stream.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import math
import socket
import threading
from typing import Any, AsyncIterator, Dict, Mapping, Optional

# A watch that ends sooner than this (server restarting, a proxy closing it) is followed by a pause,
# so callers that relist and watch again in a loop do not spin.
MIN_WATCH_SECONDS = 0.5


async def watch_events(
    api_client: Any,
    path: str,
    timeout: float,
    *,
    executor: concurrent.futures.Executor,
    connect_timeout: float,
    params: Optional[Mapping[str, Any]] = None,
) -> AsyncIterator[dict]:
    """Yield watch events ({type, object} dicts) from ``path`` until ``timeout`` seconds pass or the
    stream ends. An ERROR event (e.g. 410 Gone) is yielded for the caller to relist; a response that
    is not a watch stream (a server that ignored ``watch=true``) yields one synthetic ERROR event.
    A failed request (ApiException, connection error) is raised in the caller.

    ``params`` become query parameters (``resourceVersion``, ``fieldSelector``...); empty values are
    left out. The request is built here rather than with the generated ``list_*(watch=True)``: those
    send ``watch=True``, which only Go's ParseBool reads as true; ``true`` is what every
    Kubernetes-compatible server accepts.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    stop = threading.Event()
    holder: Dict[str, Any] = {}
    done = object()
    query = [("watch", "true"), ("timeoutSeconds", str(max(1, int(math.ceil(timeout)))))]
    query += [(k, str(v)) for k, v in (params or {}).items() if v not in (None, "")]

    def put(item: Any) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, item)

    def run() -> None:
        try:
            resp = api_client.call_api(
                path,
                "GET",
                query_params=query,
                header_params={"Accept": "application/json"},
                auth_settings=["BearerToken"],
                _return_http_data_only=True,
                _preload_content=False,
                _request_timeout=(connect_timeout, timeout + 15),
            )
            holder["resp"] = resp
            if stop.is_set():
                return
            buf = b""
            for chunk in resp.stream(amt=None, decode_content=False):
                if stop.is_set():
                    break
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    if line.strip():
                        put(json.loads(line))
            if buf.strip() and not stop.is_set():
                put(json.loads(buf))
        except BaseException as e:  # noqa: BLE001 - handed to the loop, re-raised there
            if not stop.is_set():
                put(e)
        else:
            holder["complete"] = not stop.is_set()
        finally:
            resp = holder.get("resp")
            if resp is not None:
                if not holder.get("complete"):
                    # A half-read (or shut down) connection must not go back to the pool.
                    conn = getattr(resp, "connection", None)
                    resp.close()
                    if conn is not None:
                        conn.close()
                resp.release_conn()
            put(done)

    loop.run_in_executor(executor, run)
    started = loop.time()
    deadline = started + timeout
    try:
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            try:
                item = await asyncio.wait_for(queue.get(), remaining)
            except asyncio.TimeoutError:
                return
            if item is done:
                if loop.time() - started < MIN_WATCH_SECONDS:
                    await asyncio.sleep(min(MIN_WATCH_SECONDS, max(0.0, deadline - loop.time())))
                return
            if isinstance(item, BaseException):
                raise item
            if not isinstance(item, dict) or "type" not in item:
                # Not a watch stream (a server that ignored watch=true): relist.
                yield {"type": "ERROR", "object": {"message": "not a watch event"}}
                return
            yield item
    finally:
        stop.set()
        resp = holder.get("resp")
        conn = getattr(resp, "connection", None) if resp is not None else None
        sock = getattr(conn, "sock", None)
        if sock is not None:
            # Unblocks the reader thread now instead of at the server-side timeout.
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
