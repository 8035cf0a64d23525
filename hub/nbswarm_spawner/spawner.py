"""A JupyterHub spawner that declares NotebookServer resources and lets the nbswarm operator run them.

The hub only writes the desired state (a ``NotebookServer`` through a Kubernetes-compatible API:
nbswarm's embedded server or a real cluster) and reads the endpoint back from ``status``; the
operator does all Docker work. So a hub restart or an operator restart loses nothing: the object
is the record, and ``get_state`` keeps only its name and uid.

API access: Debian's ``python3-kubernetes`` (22.x, synchronous) gives kubeconfig parsing (server,
CA, bearer token, client certs, contexts) and typed REST calls for free; its blocking calls run in
a private thread pool (``kube``) so the hub's event loop never blocks. Watches run in the same pool,
through ``watch.watch_events``. Object names come from ``names``; the operator's status is read with
``objects``.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import html
from typing import Any, AsyncIterator, Callable, Dict, List, Optional

from jupyterhub.spawner import Spawner
from kubernetes import client as kube_client
from kubernetes.client.rest import ApiException
from tornado import web
from traitlets import Bool, Dict as DictTrait, Enum, Float, Integer, List as ListTrait, TraitError, Unicode, Union, default, validate

from .access import hub_db, remove_viewer_access, sync_viewer_access
from .dashboards import MODE_RE, dashboard_spec, mode_option
from .kube import api_client, executor, status_message
from .names import escape_dns, resource_name
from .objects import condition, crash_looping, is_current, parse_time, rfc3339
from .retry import describe, is_transient, retry_until
from .watch import watch_events
from .moves import follow_move

GROUP = "nbswarm.io"
VERSION = "v1alpha1"
PLURAL = "notebookservers"
KIND = "NotebookServer"
MODES = ["notebook", "lab", "voila", "streamlit", "dash", "panel", "bokeh", "rshiny", "custom"]
TOKEN_ENV = ("JUPYTERHUB_API_TOKEN", "JPY_API_TOKEN")
TOKEN_KEY = "token"
# The operator stops a server that is not Ready by this time (RFC 3339): a start the hub gave up on
# never runs unattended, whatever crashed. It removes the annotation once the server is Ready.
START_DEADLINE = "nbswarm.io/start-deadline"
# Set by the operator (culler, missed start deadline) to stop a server without touching its spec.
STOP_ANNOTATIONS = ("nbswarm.io/stopped", "nbswarm.io/stopped-generation", "nbswarm.io/stopped-reason")
# Labels of the token Secrets, so those of one server are found (and deleted) together.
SECRET_MANAGED_BY = ("app.kubernetes.io/managed-by", "jupyterhub")
SECRET_SERVER_LABEL = "nbswarm.io/name"


class SpawnFailed(web.HTTPError):
    """A spawn that the operator or the API refused; the message is shown to the user.

    An HTTPError because JupyterHub's REST API reports only `log_message` of a failed spawn
    (anything else becomes "error"); `jupyterhub_message` is what its progress stream and
    spawn-pending page show.
    """

    def __init__(self, message: str) -> None:
        super().__init__(500, message.replace("%", "%%"))
        self.message = message
        self.jupyterhub_message = message

    def __str__(self) -> str:
        return self.message


class NotebookServerSpawner(Spawner):
    """Spawn single-user servers by declaring ``NotebookServer`` resources (nbswarm.io/v1alpha1)."""

    # ---- API access -------------------------------------------------------------------------
    kubeconfig = Unicode(
        "",
        config=True,
        help="""Path of a kubeconfig file for the API server (nbswarm's embedded one writes
        one; any Kubernetes cluster with the CRD works). Its server, CA and token or client
        certificate are used. Empty: $KUBECONFIG, then ~/.kube/config, then in-cluster config.""",
    )
    kube_context = Unicode("", config=True, help="kubeconfig context to use (empty: current-context).")
    api_url = Unicode(
        "",
        config=True,
        help="API server URL, e.g. https://127.0.0.1:6443. Overrides the kubeconfig's server.",
    )
    # Not `api_token`: that name is the hub's token for the single-user server (Spawner.api_token).
    api_server_token = Unicode(
        "",
        config=True,
        help="Bearer token for the API server. Overrides the kubeconfig's credentials.",
    )
    ca_file = Unicode("", config=True, help="CA bundle to verify the API server's certificate.")
    verify_ssl = Bool(True, config=True, help="Verify the API server's TLS certificate.")

    namespace = Unicode(
        "default", config=True, help="Namespace the NotebookServer resources and Secrets are created in."
    )

    # ---- what to run ------------------------------------------------------------------------
    image = Unicode(
        "local/notebook:latest",
        config=True,
        help="""Default image (spec.image). The operator's policy allowlist is the final word;
        an image it refuses makes the spawn fail with the resource's message.""",
    )
    allowed_images = Union(
        [ListTrait(Unicode()), DictTrait()],
        default_value=[],
        config=True,
        help="""Images a user may choose in the options form (list of images, or a dict of
        display name → image, as DockerSpawner's allowed_images). Empty: only `image`.""",
    )
    mode = Unicode(
        "notebook",
        config=True,
        help=f"""Default spec.mode (the operator maps it to a command): one of {MODES} or a mode the
        operator's policy adds (any DNS label).""",
    )
    git_secret_name = Unicode(
        "",
        config=True,
        help="""Secret (in `namespace`) with the git credentials of users' git_repo dashboards;
        {username} is replaced by the DNS-escaped user name (e.g. "git-{username}"). Empty: git
        repositories are cloned without credentials. Users never name Secrets themselves.""",
    )

    @validate("mode")
    def _validate_mode(self, proposal: Any) -> str:
        if not MODE_RE.match(proposal["value"]):
            raise TraitError(f"mode {proposal['value']!r} is not a mode name (lower-case letters, digits and '-')")
        return proposal["value"]
    allowed_modes = ListTrait(
        Unicode(),
        default_value=[],
        config=True,
        help="Modes a user may choose in the options form. Empty: only `mode`.",
    )
    extra_spec = DictTrait(
        default_value={},
        config=True,
        help="""Extra NotebookServer spec fields merged into every spec (e.g. app, resources,
        systemUser). user, servername, image, mode, env and stopped are always the spawner's.""",
    )
    extra_labels = DictTrait(default_value={}, config=True, help="Extra labels on the NotebookServer.")

    endpoint = Enum(
        ["hostUrl", "url"],
        "hostUrl",
        config=True,
        help="""Which status.endpoint field the hub's proxy routes to: hostUrl (a published or
        host-network port, reachable from the hub's host) or url (the service name on the
        policy's overlay network, when the hub runs on that network).""",
    )
    delete_on_stop = Bool(
        False,
        config=True,
        help="""On stop, delete the NotebookServer (and its token Secret) instead of setting
        spec.stopped. Volumes are kept either way (the operator's policy decides).""",
    )
    prefix = Unicode("nbs", config=True, help="{prefix} in name_template.")
    name_template = Unicode(
        "{prefix}-{username}-{servername}",
        config=True,
        help="""Resource name template; {username} and {servername} are DNS-escaped, an empty
        servername drops its separator (alice's default server: nbs-alice).""",
    )
    env_exclude = ListTrait(
        Unicode(),
        default_value=["JUPYTERHUB_SERVICE_URL"],
        config=True,
        help="""Hub environment variables not passed to the server. JUPYTERHUB_SERVICE_URL is
        excluded by default: jupyterhub-singleuser takes its ip/port from it, but the
        operator, not the hub, allocates the port (its launcher passes --ip/--port).""",
    )
    stop_timeout = Float(
        30,
        config=True,
        help="Seconds stop() waits for the operator to report the server stopped or gone (then returns anyway).",
    )
    connect_timeout = Float(10, config=True, help="Seconds to connect to the API server.")
    start_restart_limit = Integer(
        2,
        config=True,
        help="""A start fails once the server crashed this many times before it was first Ready
        (status.restartCount: its container cannot run the server), instead of waiting out
        start_timeout while Docker keeps restarting it. 0: wait for Failed or start_timeout.""",
    )

    follow_moves = Bool(
        True,
        config=True,
        help="""When Swarm moves a server to another node (node loss, drain), poll() sees the new
        status.endpoint and points the hub's route there. Set Spawner.poll_interval to how soon that
        should happen (JupyterHub's default is 30 s). Not needed with endpoint = 'url' on an overlay.""",
    )

    @default("env_keep")
    def _env_keep_default(self) -> List[str]:
        # The hub host's PATH/PYTHONPATH/LANG mean nothing inside the image (DockerSpawner does the same).
        return []

    # ---- state ------------------------------------------------------------------------------
    object_name = Unicode("", help="Name of this spawner's NotebookServer (kept in the hub's state).")
    object_uid = Unicode("", help="uid of this spawner's NotebookServer (kept in the hub's state).")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._progress_since: Optional[datetime.datetime] = None
        # Set when start() gave up: JupyterHub then calls stop() inside the failed spawn and reports
        # the failure only after stop() returns, within slow_spawn_timeout (10 s). A server that
        # never got Ready has nothing to wait for, so that stop() does not wait for Stopped.
        self._start_failed = False
        # The endpoint of a spawn that finished while the hub was down (see _adopt).
        self._adopted_url = ""

    # ---- naming and state -------------------------------------------------------------------
    @property
    def resource_name(self) -> str:
        if self.object_name:
            return self.object_name
        return resource_name(self.name_template, self.prefix, self.user.name, self.name or "")

    @property
    def secret_name(self) -> str:
        """This start's token Secret. Named after the token, so each start (JupyterHub makes a new
        token per start) changes the spec (a new generation: no earlier status answers it), and a
        Secret's content never changes under its name (the operator's cache can lag a write, but
        never shows an older token under the new name)."""
        digest = hashlib.sha256((self.api_token or "").encode()).hexdigest()[:10]
        return f"{self.resource_name}-hub-{digest}"

    def load_state(self, state: dict) -> None:
        super().load_state(state)
        self.object_name = state.get("object_name", "") or ""
        self.object_uid = state.get("object_uid", "") or ""

    def get_state(self) -> dict:
        state = super().get_state()
        state["object_name"] = self.resource_name
        if self.object_uid:
            state["object_uid"] = self.object_uid
        return state

    def clear_state(self) -> None:
        super().clear_state()
        # A stopped (not deleted) resource is still this server's record: keep name and uid so
        # the next start patches the same object. A deleted one is gone for good.
        if self.delete_on_stop:
            self.object_name = ""
            self.object_uid = ""

    # ---- options form (VariableDockerSpawner's image choice) --------------------------------
    def _image_choices(self) -> Dict[str, str]:
        images = self.allowed_images
        if isinstance(images, dict):
            return {str(k): str(v) for k, v in images.items()} or {self.image: self.image}
        return {img: img for img in images} or {self.image: self.image}

    def _mode_choices(self) -> List[str]:
        return list(self.allowed_modes) or [self.mode]

    @default("options_form")
    def _options_form_default(self) -> Any:
        if len(self._image_choices()) <= 1 and len(self._mode_choices()) <= 1:
            return ""
        return lambda spawner: spawner._render_options_form()

    def _render_options_form(self) -> str:
        def select(field: str, choices: Dict[str, str], current: str) -> str:
            opts = "".join(
                f'<option value="{html.escape(value)}"{" selected" if value == current else ""}>'
                f"{html.escape(label)}</option>"
                for label, value in choices.items()
            )
            return (
                f'<label for="nbswarm-{field}">{field.capitalize()}</label>'
                f'<select class="form-control" name="{field}" id="nbswarm-{field}">{opts}</select>'
            )

        parts = []
        images = self._image_choices()
        if len(images) > 1:
            parts.append(select("image", images, self.image))
        modes = self._mode_choices()
        if len(modes) > 1:
            parts.append(select("mode", {m: m for m in modes}, self.mode))
        return "\n".join(parts)

    def options_from_form(self, formdata: Dict[str, List[str]]) -> dict:
        options: Dict[str, str] = {}
        for field in ("image", "mode"):
            values = formdata.get(field) or []
            if values and values[0]:
                options[field] = values[0].strip()
        self._check_options(options)
        return options

    def _check_options(self, options: dict) -> tuple:
        """(image, mode) for user_options, refusing anything the hub config does not allow.

        Called from options_from_form and again in start(): user_options can also arrive as JSON
        through the REST API, which bypasses the form.
        """
        images = self._image_choices()
        image = options.get("image") or self.image
        if image in images:
            image = images[image]
        elif image not in images.values():
            raise ValueError(f"image {image!r} is not allowed; choose one of {sorted(images.values())}")
        mode = mode_option(options) or self.mode
        if mode not in self._mode_choices():
            raise ValueError(f"mode {mode!r} is not allowed; choose one of {self._mode_choices()}")
        return image, mode

    # ---- API plumbing -----------------------------------------------------------------------
    def _api_client(self) -> Any:
        return api_client(
            self.kubeconfig, self.kube_context, self.api_url, self.api_server_token, self.ca_file, self.verify_ssl
        )

    @property
    def _custom(self) -> Any:
        return kube_client.CustomObjectsApi(self._api_client())

    @property
    def _core(self) -> Any:
        return kube_client.CoreV1Api(self._api_client())

    async def _call(self, fn: Callable, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("_request_timeout", (self.connect_timeout, 60))
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(executor, lambda: fn(*args, **kwargs))

    async def _get(self) -> Optional[dict]:
        try:
            return await self._call(
                self._custom.get_namespaced_custom_object, GROUP, VERSION, self.namespace, PLURAL, self.resource_name
            )
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    def _watch(self, path: str, timeout: float, **params: Any) -> AsyncIterator[dict]:
        """Watch events from `path` for at most `timeout` seconds (see watch.watch_events)."""
        return watch_events(
            self._api_client(), path, timeout, executor=executor, connect_timeout=self.connect_timeout, params=params
        )

    async def _watch_object(self, rv: str, timeout: float) -> AsyncIterator[dict]:
        path = f"/apis/{GROUP}/{VERSION}/namespaces/{self.namespace}/{PLURAL}"
        async for ev in self._watch(
            path, timeout, fieldSelector=f"metadata.name={self.resource_name}", resourceVersion=rv
        ):
            yield ev

    # ---- spec -------------------------------------------------------------------------------
    def _build_env(self) -> List[dict]:
        env = self.get_env()
        for key in TOKEN_ENV:
            env.pop(key, None)
        for key in self.env_exclude:
            env.pop(key, None)
        items = [{"name": k, "value": str(v)} for k, v in sorted(env.items()) if v is not None]
        for key in TOKEN_ENV:
            items.append({"name": key, "valueFrom": {"secretKeyRef": {"name": self.secret_name, "key": TOKEN_KEY}}})
        return items

    def _labels(self) -> Dict[str, str]:
        labels = {
            "app.kubernetes.io/managed-by": "jupyterhub",
        }
        # A label value starts and ends with an alphanumeric ("_x" escapes to "-5fx").
        username = escape_dns(self.user.name)[:63].strip("-")
        if username:
            labels["hub.jupyter.org/username"] = username
        labels.update(self.extra_labels)
        return labels

    def build_spec(self) -> dict:
        """The NotebookServer spec for this spawn (no secret in it: the token is a secretKeyRef)."""
        image, mode = self._check_options(self.user_options or {})
        spec = dict(self.extra_spec)
        spec.update(
            {
                "user": self.user.name,
                "servername": self.name or "",
                "image": image,
                "mode": mode,
                "env": self._build_env(),
                "stopped": False,
            }
        )
        git_secret = self.git_secret_name.format(username=escape_dns(self.user.name)) if self.git_secret_name else ""
        try:
            spec.update(dashboard_spec(self.user_options or {}, self.extra_spec, git_secret))
        except ValueError as e:
            raise SpawnFailed(str(e)) from e
        return spec

    def _sync_viewers(self, obj: Optional[dict]) -> None:
        """Grant spec.viewers of `obj` JupyterHub access to this server (see access.py)."""
        if obj is None or self.orm_spawner is None:
            return
        try:
            sync_viewer_access(hub_db(self), self.user.name, self.name or "", obj.get("spec"), self.log)
        except Exception as e:  # noqa: BLE001 - access sync must not break spawn or poll
            self.log.error("Viewer access of %s/%s not applied: %s", self.user.name, self.name or "", e)

    def delete_forever(self) -> None:
        if self.orm_spawner is not None:
            remove_viewer_access(hub_db(self), self.user.name, self.name or "", self.log)

    async def _ensure_secret(self, owner: Optional[dict]) -> None:
        body: Dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": self.secret_name,
                "namespace": self.namespace,
                "labels": {SECRET_MANAGED_BY[0]: SECRET_MANAGED_BY[1], SECRET_SERVER_LABEL: self.resource_name},
            },
            "type": "Opaque",
            "stringData": {TOKEN_KEY: self.api_token},
        }
        if owner is not None:
            body["metadata"]["ownerReferences"] = [
                {
                    "apiVersion": f"{GROUP}/{VERSION}",
                    "kind": KIND,
                    "name": owner["metadata"]["name"],
                    "uid": owner["metadata"]["uid"],
                }
            ]
        try:
            await self._call(self._core.create_namespaced_secret, self.namespace, body)
        except ApiException as e:
            if e.status != 409:
                raise
            await self._call(self._core.replace_namespaced_secret, self.secret_name, self.namespace, body)

    # ---- Spawner API ------------------------------------------------------------------------
    async def start(self) -> str:
        self._start_failed = False
        try:
            return await self._start()
        except BaseException:
            self._start_failed = True
            await self._forget_secrets_of_refused_start()
            raise

    async def _start(self) -> str:
        loop = asyncio.get_running_loop()
        # Our own deadline ends just before the hub's, so the user sees the resource's message
        # rather than the hub's generic timeout.
        timeout = max(1.0, float(self.start_timeout) - 1.0)
        deadline = loop.time() + timeout
        self._progress_since = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=2)
        self._adopted_url = ""
        try:
            spec = self.build_spec()
        except ValueError as e:
            raise SpawnFailed(str(e)) from e
        name = self.resource_name
        self.object_name = name
        # The operator stops the server if it is not Ready when this spawn stops waiting for it.
        start_deadline = rfc3339(datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=timeout))
        try:
            obj = await retry_until(
                deadline,
                lambda: self._declare(spec, start_deadline, deadline),
                what=f"starting NotebookServer {self.namespace}/{name}",
                log=self.log,
            )
        except ApiException as e:
            if is_transient(e):
                raise SpawnFailed(self._unreachable_message(e)) from e
            raise SpawnFailed(f"NotebookServer {self.namespace}/{name}: {status_message(e)}") from e
        except Exception as e:
            if is_transient(e):
                raise SpawnFailed(self._unreachable_message(e)) from e
            raise
        self._persist_state()
        self._sync_viewers(obj)
        # Tokens of earlier starts are revoked by the hub; their Secrets go.
        await self._forget_secrets(keep=self.secret_name)

        url = await self._wait_ready(obj, deadline)
        self.log.info("NotebookServer %s/%s ready at %s", self.namespace, name, url)
        return url

    async def _wait_gone(self, obj: dict, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        while obj is not None:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise SpawnFailed(
                    f"NotebookServer {self.namespace}/{self.resource_name} is still being deleted; try again shortly"
                )
            async for ev in self._watch_object(obj["metadata"].get("resourceVersion", ""), remaining):
                if ev.get("type") in ("DELETED", "ERROR"):
                    break
            obj = await self._get()

    def _ready_url(self, obj: dict) -> Optional[str]:
        """The endpoint URL when obj is Ready for its current generation; raises when Failed."""
        if not is_current(obj):
            return None
        status = obj.get("status") or {}
        if status.get("phase") == "Failed":
            message = status.get("message") or (condition(obj, "Ready") or {}).get("message") or "failed"
            raise SpawnFailed(f"NotebookServer {self.namespace}/{self.resource_name} failed: {message}")
        ready = condition(obj, "Ready")
        if ready and ready.get("status") == "True":
            url = (status.get("endpoint") or {}).get(self.endpoint)
            if url:
                return url
        restarts = int(status.get("restartCount") or 0)
        if self.start_restart_limit and restarts >= self.start_restart_limit:
            message = status.get("message") or "restarting"
            raise SpawnFailed(f"NotebookServer {self.namespace}/{self.resource_name} crashed {restarts} times while starting: {message}")
        return None

    async def _wait_ready(self, obj: dict, deadline: float) -> str:
        loop = asyncio.get_running_loop()
        last = obj
        while True:
            url = self._ready_url(last)
            if url:
                return url
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            rv = last["metadata"].get("resourceVersion", "")
            relist = False
            try:
                async for ev in self._watch_object(rv, remaining):
                    etype, data = ev.get("type"), ev.get("object") or {}
                    if etype == "ERROR":
                        relist = True  # 410 Gone or similar: read the object again, watch from there
                        break
                    if etype == "BOOKMARK":
                        last.setdefault("metadata", {})["resourceVersion"] = data.get("metadata", {}).get(
                            "resourceVersion", rv
                        )
                        continue
                    if etype == "DELETED":
                        raise SpawnFailed(f"NotebookServer {self.namespace}/{self.resource_name} was deleted while starting")
                    last = data
                    url = self._ready_url(last)
                    if url:
                        return url
                if relist or loop.time() < deadline:
                    fresh = await self._get()
                    if fresh is None:
                        raise SpawnFailed(f"NotebookServer {self.namespace}/{self.resource_name} was deleted while starting")
                    last = fresh
            except Exception as e:  # noqa: BLE001 - an API outage is waited out, anything else raised
                if not is_transient(e):
                    raise
                # The API server went away (a watch cut mid-stream, a refused connection): it
                # comes back within seconds; the object is read again then.
                self.log.warning(
                    "NotebookServer %s/%s: watching it failed (%s); trying again", self.namespace, self.resource_name, describe(e)
                )
                await asyncio.sleep(min(1.0, max(0.0, deadline - loop.time())))
        message = (last.get("status") or {}).get("message") or "no status from the operator"
        raise SpawnFailed(
            f"NotebookServer {self.namespace}/{self.resource_name} not ready after "
            f"{int(round(self.start_timeout))}s: {message}"
        )

    async def poll(self) -> Optional[int]:
        try:
            obj = await self._get()
        except Exception as e:  # noqa: BLE001 - an unreachable API must not mark servers dead
            self.log.warning("poll of NotebookServer %s failed: %s", self.resource_name, e)
            return None
        if obj is None:
            await self._forget_secrets()
            return 0
        if self.object_uid and obj["metadata"].get("uid") not in (None, self.object_uid):
            # Same name, different object: not the server this hub started.
            return 0
        meta = obj["metadata"]
        if (
            meta.get("deletionTimestamp")
            or (obj.get("spec") or {}).get("stopped")
            or (meta.get("annotations") or {}).get(STOP_ANNOTATIONS[0]) is not None
        ):
            await self._forget_secrets()
            return 0
        status = obj.get("status") or {}
        phase = status.get("phase")
        if is_current(obj) and (phase == "Failed" or crash_looping(obj)):
            # JupyterHub calls no stop() for a server poll() reports dead: stop it here, or the
            # operator's crash-loop back-off would run it again with nobody to route to it.
            await self._retire(f"failed: {status.get('message') or 'no message'}")
            return 1
        if phase in ("Stopped", "Stopping", "Terminating"):
            await self._forget_secrets()
            return 0
        # Running: re-apply spec.viewers (the hub drops unconfigured roles on restart; new users, kubectl edits).
        self._sync_viewers(obj)
        if self._check_pending and not self._endpoint_if_ready(obj):
            return await self._adopt(obj)
        if self.follow_moves and not self.pending and self.server is not None:
            ready = condition(obj, "Ready")
            if is_current(obj) and ready and ready.get("status") == "True":
                await follow_move(self, ((obj.get("status") or {}).get("endpoint") or {}).get(self.endpoint))
        return None

    async def stop(self, now: bool = False) -> None:
        name = self.resource_name
        loop = asyncio.get_running_loop()
        try:
            await retry_until(
                loop.time() + self._write_budget(), self._stop_object, what=f"stopping NotebookServer {self.namespace}/{name}", log=self.log
            )
        except ApiException as e:
            raise RuntimeError(f"stopping NotebookServer {self.namespace}/{name}: {status_message(e)}") from e
        except Exception as e:
            if is_transient(e):
                raise RuntimeError(f"stopping NotebookServer {self.namespace}/{name}: {self._unreachable_message(e)}") from e
            raise
        # The hub revokes the token on stop: its Secret goes too (the operator needs none for a
        # stopped server).
        await self._forget_secrets()
        after_failed_start, self._start_failed = self._start_failed, False
        if after_failed_start:
            self.log.info("Stop of NotebookServer %s after a failed start: not waiting for Stopped", name)
        elif not now and self.stop_timeout > 0:
            await self._wait_stopped()

    async def _wait_stopped(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.stop_timeout

        def stopped(obj: Optional[dict]) -> bool:
            if obj is None:
                return True
            if self.delete_on_stop:
                return False
            return is_current(obj) and (obj.get("status") or {}).get("phase") in ("Stopped", "Failed")

        obj = await self._get()
        while not stopped(obj):
            remaining = deadline - loop.time()
            if remaining <= 0:
                self.log.warning("NotebookServer %s not reported stopped after %ss", self.resource_name, self.stop_timeout)
                return
            async for ev in self._watch_object(obj["metadata"].get("resourceVersion", ""), remaining):
                if ev.get("type") == "DELETED":
                    return
                if ev.get("type") in ("ADDED", "MODIFIED") and stopped(ev.get("object")):
                    return
                if ev.get("type") == "ERROR":
                    break
            obj = await self._get()

    async def progress(self) -> AsyncIterator[dict]:
        """Yield the resource's Events as they happen during this spawn."""
        name = self.resource_name
        since = self._progress_since or (datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=60))
        seen = set()
        count = 0
        selector: Optional[str] = f"involvedObject.name={name}"

        def event_time(ev: dict) -> Optional[datetime.datetime]:
            return parse_time(
                ev.get("eventTime")
                or ev.get("lastTimestamp")
                or ev.get("firstTimestamp")
                or (ev.get("metadata") or {}).get("creationTimestamp")
            )

        def relevant(ev: dict) -> bool:
            inv = ev.get("involvedObject") or {}
            if inv.get("name") != name or (inv.get("kind") and inv.get("kind") != KIND):
                return False
            t = event_time(ev)
            return t is None or t >= since

        def render(ev: dict) -> dict:
            nonlocal count
            count += 1
            reason = ev.get("reason") or ""
            message = ev.get("message") or ""
            text = f"{reason}: {message}" if reason and message else (message or reason)
            if ev.get("type") == "Warning":
                text = f"[Warning] {text}"
            return {"progress": min(95, 10 + 15 * count), "message": text}

        def list_events(**kw: Any) -> Any:
            return self._api_client().sanitize_for_serialization(
                self._core.list_namespaced_event(self.namespace, **kw)
            )

        try:
            listing = await self._call(list_events, field_selector=selector)
        except ApiException as e:
            if e.status != 400:
                raise
            selector = None  # a server without that field selector: filter here instead
            listing = await self._call(list_events)
        items = sorted(listing.get("items") or [], key=lambda ev: event_time(ev) or since)
        for ev in items:
            if relevant(ev):
                seen.add(ev["metadata"].get("uid") or ev["metadata"]["name"])
                yield render(ev)
        rv = (listing.get("metadata") or {}).get("resourceVersion", "")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + float(self.start_timeout)
        kw: Dict[str, Any] = {"resourceVersion": rv}
        if selector:
            kw["fieldSelector"] = selector
        while loop.time() < deadline:
            restart = False
            async for wev in self._watch(f"/api/v1/namespaces/{self.namespace}/events", deadline - loop.time(), **kw):
                if wev.get("type") == "ERROR":
                    restart = True
                    break
                ev = wev.get("object") or {}
                if wev.get("type") not in ("ADDED", "MODIFIED") or not relevant(ev):
                    continue
                if wev.get("type") == "MODIFIED":
                    # Repeated events (count bump) are news; the same first sighting is not.
                    key = (ev["metadata"].get("uid") or ev["metadata"]["name"], ev.get("count"))
                else:
                    key = ev["metadata"].get("uid") or ev["metadata"]["name"]
                if key in seen:
                    continue
                seen.add(key)
                kw["resourceVersion"] = ev["metadata"].get("resourceVersion", kw.get("resourceVersion"))
                yield render(ev)
            if restart:
                kw.pop("resourceVersion", None)

    # ---- crash safety: hub restarts, API outages, token Secrets ------------------------------
    async def _declare(self, spec: dict, start_deadline: str, deadline: float) -> dict:
        """One attempt at writing this start (idempotent, so an API outage can be retried): the
        token Secret, then the object created, or patched to run again with the new token."""
        name = self.resource_name
        existing = await self._get()
        if existing is not None and existing["metadata"].get("deletionTimestamp"):
            # A delete (delete_on_stop) still finishing: patching it would revive nothing; wait
            # until it is gone, then create afresh.
            await self._wait_gone(existing, deadline)
            existing = None
        # The Secret exists before the object that references it; its owner is known at once when
        # the object exists, else set once it does.
        await self._ensure_secret(existing)
        if existing is None:
            body = {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": KIND,
                "metadata": {
                    "name": name,
                    "namespace": self.namespace,
                    "labels": self._labels(),
                    "annotations": {START_DEADLINE: start_deadline},
                },
                "spec": spec,
            }
            try:
                obj = await self._call(self._custom.create_namespaced_custom_object, GROUP, VERSION, self.namespace, PLURAL, body)
            except ApiException as e:
                if e.status != 409:
                    raise
                return await self._declare(spec, start_deadline, deadline)
            self.log.info("Created NotebookServer %s/%s", self.namespace, name)
            self.object_uid = obj["metadata"].get("uid", "")
            await self._ensure_secret(obj)
            return obj
        # Merge patch: lists (env) are replaced whole, absent spec fields are kept. A stop by
        # annotation (culler, a missed start deadline) ends with this start.
        annotations: Dict[str, Optional[str]] = {key: None for key in STOP_ANNOTATIONS}
        annotations[START_DEADLINE] = start_deadline
        patch = {"metadata": {"labels": self._labels(), "annotations": annotations}, "spec": spec}
        obj = await self._call(self._custom.patch_namespaced_custom_object, GROUP, VERSION, self.namespace, PLURAL, name, patch)
        self.log.info("Updated NotebookServer %s/%s", self.namespace, name)
        self.object_uid = obj["metadata"].get("uid", "")
        return obj

    async def _stop_object(self) -> None:
        """Delete the object (delete_on_stop) or set spec.stopped; gone already is fine."""
        name = self.resource_name
        try:
            if self.delete_on_stop:
                await self._call(self._custom.delete_namespaced_custom_object, GROUP, VERSION, self.namespace, PLURAL, name)
            else:
                patch = {"metadata": {"annotations": {START_DEADLINE: None}}, "spec": {"stopped": True}}
                await self._call(self._custom.patch_namespaced_custom_object, GROUP, VERSION, self.namespace, PLURAL, name, patch)
        except ApiException as e:
            if e.status != 404:
                raise

    def _write_budget(self) -> float:
        """Seconds a stop keeps trying to reach the API server."""
        return max(10.0, float(self.stop_timeout))

    def _unreachable_message(self, exc: BaseException) -> str:
        return f"NotebookServer {self.namespace}/{self.resource_name}: the API server did not answer in time ({describe(exc)})"

    def _persist_state(self) -> None:
        """Save the object's name and uid in the hub's database as soon as the object is written.
        JupyterHub saves a spawner's state only when start() returns; a hub killed in between
        must still know, when it restarts, which object is this server."""
        from sqlalchemy.orm import object_session
        from sqlalchemy.orm.exc import UnmappedInstanceError

        orm_spawner = getattr(self, "orm_spawner", None)
        try:
            # The ORM row's own session (Spawner.db is deprecated in JupyterHub 3).
            session = object_session(orm_spawner)
        except UnmappedInstanceError:
            session = None
        if session is None:
            return
        try:
            orm_spawner.state = self.get_state()
            session.commit()
        except Exception as e:  # noqa: BLE001 - the object is the record; this only speeds adoption
            self.log.warning("Could not save the state of %s early: %s", self._log_name, e)

    async def _forget_secrets(self, keep: Optional[str] = None) -> None:
        """Delete this server's token Secrets (all, or all but `keep`): a token the hub revoked (a
        stopped server's, an earlier start's) never outlives its use. The ownerReference to the
        object covers the rest where the API server collects garbage."""
        selector = f"{SECRET_MANAGED_BY[0]}={SECRET_MANAGED_BY[1]},{SECRET_SERVER_LABEL}={self.resource_name}"

        async def forget() -> None:
            listing = await self._call(self._core.list_namespaced_secret, self.namespace, label_selector=selector)
            for item in listing.items or []:
                if item.metadata.name == keep:
                    continue
                try:
                    await self._call(self._core.delete_namespaced_secret, item.metadata.name, self.namespace)
                except ApiException as e:
                    if e.status != 404:
                        raise

        loop = asyncio.get_running_loop()
        try:
            await retry_until(loop.time() + self._write_budget(), forget, what=f"deleting the token Secrets of {self.resource_name}", log=self.log)
        except Exception as e:  # noqa: BLE001 - reported; the next start or stop tries again
            self.log.warning("Could not delete the token Secrets of NotebookServer %s/%s: %s", self.namespace, self.resource_name, describe(e))

    async def _forget_secrets_of_refused_start(self) -> None:
        """A start the API refused (the object was never written) leaves no token Secret behind."""
        try:
            if await self._get() is not None:
                return  # stop() or poll() takes care of an object that exists
        except Exception as e:  # noqa: BLE001 - the object may exist; stop() and poll() handle it then
            self.log.warning("Could not check NotebookServer %s after a failed start: %s", self.resource_name, describe(e))
            return
        await self._forget_secrets()

    async def _retire(self, why: str) -> None:
        """Stop the object and delete its token Secrets: poll() is about to report the server
        gone, after which JupyterHub calls no stop(), and a server the hub forgot must not run."""
        self.log.warning("NotebookServer %s/%s %s: stopping it", self.namespace, self.resource_name, why)
        loop = asyncio.get_running_loop()
        try:
            await retry_until(loop.time() + self._write_budget(), self._stop_object, what=f"stopping NotebookServer {self.resource_name}", log=self.log)
        except Exception as e:  # noqa: BLE001 - its start deadline (if any) stops it in the operator
            self.log.error("Could not stop NotebookServer %s/%s: %s", self.namespace, self.resource_name, describe(e))
        await self._forget_secrets()

    def _endpoint_if_ready(self, obj: Optional[dict]) -> Optional[str]:
        if obj is None:
            return None
        try:
            return self._ready_url(obj)
        except SpawnFailed:
            return None

    async def _adopt(self, obj: dict) -> Optional[int]:
        """The hub restarted and found this server started but not Ready (it was killed mid-spawn):
        wait for it as that spawn would have, until the start deadline the spawn wrote, and adopt
        it once Ready; else stop it, so it never runs without the hub."""
        deadline_at = parse_time(((obj["metadata"].get("annotations") or {}).get(START_DEADLINE)))
        if deadline_at is None:
            # No start pending (the operator removes the deadline once Ready): a running server
            # restarting after a crash, reported as running like any other.
            return None
        loop = asyncio.get_running_loop()
        remaining = (deadline_at - datetime.datetime.now(datetime.timezone.utc)).total_seconds()
        try:
            url = await self._wait_ready(obj, loop.time() + max(0.0, remaining))
        except SpawnFailed as e:
            await self._retire(f"was still starting when the hub restarted and did not get Ready ({e})")
            return 1
        self._adopted_url = url
        self.log.info("NotebookServer %s/%s got Ready while the hub was down: adopted at %s", self.namespace, self.resource_name, url)
        return None

    async def get_url(self) -> str:
        """The server's URL for a restarted hub (JupyterHub asks before it checks the server):
        the resource's endpoint, not the placeholder address the hub recorded before the spawn
        finished."""
        url: Optional[str] = self._adopted_url or None
        if not url:
            try:
                url = self._endpoint_if_ready(await self._get())
            except Exception as e:  # noqa: BLE001 - fall back to what the hub recorded
                self.log.warning("Could not read NotebookServer %s for its URL: %s", self.resource_name, describe(e))
        if not url or self.server is None:
            return await super().get_url()
        return url.rstrip("/") + self.server.base_url
