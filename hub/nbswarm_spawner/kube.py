"""The spawner's way to the API: one client per connection setting, shared by every spawner of the
hub, and the thread pool its blocking calls and watches run in (python-kubernetes is synchronous;
the hub's event loop must never wait on it)."""

from __future__ import annotations

import concurrent.futures
import json
import os
import threading
from typing import Any, Dict, Optional

# Imported with this module, which JupyterHub loads (through the spawner) when it starts: imported
# at the first use, python-kubernetes (hundreds of modules) held the hub's event loop for seconds
# during the first spawn after a hub start, stalling every other spawn and request meanwhile.
from kubernetes import client as kube_client, config as kube_config

# Watches hold a thread each for their lifetime; the default loop executor (cpu+4 threads) would
# starve under a few dozen concurrent spawns.
executor = concurrent.futures.ThreadPoolExecutor(max_workers=64, thread_name_prefix="nbswarm-spawner")
_clients: Dict[tuple, Any] = {}
_clients_lock = threading.Lock()


def api_client(
    kubeconfig: str,
    kube_context: str,
    api_url: str,
    token: str,
    ca_file: str,
    verify_ssl: bool,
) -> Any:
    """The ApiClient for these settings (made once, then shared).

    A kubeconfig (the given file, else $KUBECONFIG's first, else ~/.kube/config) or, without one
    and without `api_url`, the in-cluster service account; `api_url`, `token` and `ca_file`
    override what it says.
    """
    key = (kubeconfig, kube_context, api_url, token, ca_file, verify_ssl)
    with _clients_lock:
        cached = _clients.get(key)
        if cached is not None:
            return cached
        cfg = kube_client.Configuration()
        path = kubeconfig or os.environ.get("KUBECONFIG", "").split(os.pathsep)[0]
        if not path and os.path.exists(os.path.expanduser("~/.kube/config")):
            path = os.path.expanduser("~/.kube/config")
        if path:
            kube_config.load_kube_config(
                config_file=path,
                context=kube_context or None,
                client_configuration=cfg,
                persist_config=False,
            )
        elif not api_url:
            kube_config.load_incluster_config(client_configuration=cfg)
        if api_url:
            cfg.host = api_url.rstrip("/")
        if token:
            cfg.api_key = {"authorization": token}
            cfg.api_key_prefix = {"authorization": "Bearer"}
        if ca_file:
            cfg.ssl_ca_cert = ca_file
        cfg.verify_ssl = verify_ssl
        # Each open watch holds a pooled connection.
        cfg.connection_pool_maxsize = 64
        api = kube_client.ApiClient(cfg)
        _clients[key] = api
        return api


def status_message(exc: Exception) -> str:
    """The API's Status message of an ApiException, else the exception text."""
    body: Optional[str] = getattr(exc, "body", None)
    if body:
        try:
            data = json.loads(body)
            if isinstance(data, dict) and data.get("message"):
                return str(data["message"])
        except ValueError:
            pass
    reason = getattr(exc, "reason", None)
    status = getattr(exc, "status", None)
    return f"{status} {reason}" if status else str(exc)
