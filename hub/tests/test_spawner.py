"""NotebookServerSpawner against the real embedded API server. The test plays the operator:
it patches status (Ready/Failed/Stopped) and creates Events, as the operator would."""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
import uuid

import pytest

from nbswarm_spawner import NotebookServerSpawner, SpawnFailed

G, V, P = "nbswarm.io", "v1alpha1", "notebookservers"
# Bounds a test that would otherwise hang; not a timing assertion.
GUARD = 60


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, GUARD))


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


async def until(fn, what: str):
    """Poll the test's own reads (not the spawner) until fn() is truthy."""
    for _ in range(400):
        value = await asyncio.get_running_loop().run_in_executor(None, fn)
        if value:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"never saw {what}")


def get_obj(api, ns, name):
    from kubernetes.client.rest import ApiException

    try:
        return api.custom.get_namespaced_custom_object(G, V, ns, P, name)
    except ApiException as e:
        if e.status == 404:
            return None
        raise


def token_secrets(api, ns, name):
    """Names of the hub's token Secrets of NotebookServer `name`."""
    items = api.core.list_namespaced_secret(ns, label_selector=f"nbswarm.io/name={name}").items
    return sorted(s.metadata.name for s in items)


def set_status(api, ns, name, status, current=True):
    obj = api.custom.get_namespaced_custom_object(G, V, ns, P, name)
    if current:
        status = dict(status, observedGeneration=obj["metadata"]["generation"])
    api.custom.patch_namespaced_custom_object_status(G, V, ns, P, name, {"status": status})


def ready_status(port=31001, name="nbs-alice"):
    return {
        "phase": "Running",
        "endpoint": {"url": f"http://{name}:8888", "hostUrl": f"http://127.0.0.1:{port}", "host": "127.0.0.1", "port": port},
        "conditions": [{"type": "Ready", "status": "True", "reason": "Running", "lastTransitionTime": now()}],
        "message": "running",
    }


async def start_and_make_ready(api, spawner, status=None):
    task = asyncio.ensure_future(spawner.start())
    obj = await until(lambda: get_obj(api, spawner.namespace, spawner.resource_name), "the NotebookServer")
    await asyncio.sleep(0)
    assert not task.done(), "start() must wait for Ready"
    await asyncio.get_running_loop().run_in_executor(
        None, set_status, api, spawner.namespace, spawner.resource_name, status or ready_status(name=spawner.resource_name)
    )
    return await task, obj


def test_start_creates_object_with_secret_ref_and_returns_endpoint(api, namespace, make_spawner):
    spawner = make_spawner()
    url, _ = run(start_and_make_ready(api, spawner))
    assert url == "http://127.0.0.1:31001"

    obj = get_obj(api, namespace, "nbs-alice")
    spec = obj["spec"]
    assert spec["user"] == "alice" and spec["servername"] == "" and spec["stopped"] is False
    assert spec["image"] == "local/notebook:latest" and spec["mode"] == "notebook"
    env = {e["name"]: e for e in spec["env"]}
    assert env["JUPYTERHUB_API_TOKEN"] == {
        "name": "JUPYTERHUB_API_TOKEN",
        "valueFrom": {"secretKeyRef": {"name": spawner.secret_name, "key": "token"}},
    }
    # One Secret per start, named after its token: each start is a new spec (generation).
    assert spawner.secret_name.startswith("nbs-alice-hub-") and spawner.secret_name != make_spawner().secret_name
    assert env["JUPYTERHUB_SERVICE_PREFIX"]["value"] == "/user/alice/"
    # The operator allocates the port: the hub's bind URL would pin the server to the hub's guess.
    assert "JUPYTERHUB_SERVICE_URL" not in env and "PATH" not in env
    assert spawner.api_token not in json.dumps(obj)

    secret = api.core.read_namespaced_secret(spawner.secret_name, namespace)
    assert base64.b64decode(secret.data["token"]).decode() == spawner.api_token
    assert [(o.kind, o.name, o.uid) for o in secret.metadata.owner_references] == [
        ("NotebookServer", "nbs-alice", obj["metadata"]["uid"])
    ]
    assert run(spawner.poll()) is None


def test_named_server_and_url_endpoint(api, namespace, make_spawner):
    spawner = make_spawner(servername="dash1", endpoint="url")
    assert spawner.resource_name == "nbs-alice-dash1"
    url, _ = run(start_and_make_ready(api, spawner, ready_status(name="nbs-alice-dash1")))
    assert url == "http://nbs-alice-dash1:8888"
    assert get_obj(api, namespace, "nbs-alice-dash1")["spec"]["servername"] == "dash1"
    assert get_obj(api, namespace, "nbs-alice") is None


def test_state_round_trip_reattaches(api, namespace, make_spawner):
    spawner = make_spawner(name_template="{prefix}-{username}-{servername}", prefix="hub1")
    run(start_and_make_ready(api, spawner, ready_status(name="hub1-alice")))
    state = spawner.get_state()
    uid = get_obj(api, namespace, "hub1-alice")["metadata"]["uid"]
    assert state["object_name"] == "hub1-alice" and state["object_uid"] == uid

    # A restarted hub with a changed template still finds the object through its state.
    again = make_spawner(prefix="other")
    again.load_state(state)
    assert again.resource_name == "hub1-alice"
    assert run(again.poll()) is None
    again.clear_state()
    assert again.resource_name == "hub1-alice"  # stopped-not-deleted objects stay this server's record


def test_failed_phase_raises_with_resource_message(api, namespace, make_spawner):
    spawner = make_spawner()
    failed = {
        "phase": "Failed",
        "message": "image evil/miner:1 is not allowed by the policy (allowedImages)",
        "conditions": [{"type": "Ready", "status": "False", "reason": "ImageNotAllowed", "lastTransitionTime": now()}],
    }
    with pytest.raises(SpawnFailed, match="is not allowed by the policy"):
        run(start_and_make_ready(api, spawner, failed))
    assert run(spawner.poll()) == 1


def test_start_timeout_fails_with_message_instead_of_hanging(api, namespace, make_spawner):
    spawner = make_spawner(start_timeout=2)

    async def scenario():
        task = asyncio.ensure_future(spawner.start())
        await until(lambda: get_obj(api, namespace, "nbs-alice"), "the NotebookServer")
        await asyncio.get_running_loop().run_in_executor(
            None, set_status, api, namespace, "nbs-alice", {"phase": "Creating", "message": "pulling image"}
        )
        return await task

    with pytest.raises(SpawnFailed, match="not ready after 2s: pulling image"):
        run(scenario())


def test_api_rejection_surfaces_as_failed_spawn(api, namespace, make_spawner):
    # The CRD schema refuses this image reference (422): the message must reach the hub.
    spawner = make_spawner(image="not a valid image", allowed_images=["not a valid image"])
    with pytest.raises(SpawnFailed, match="spec.image"):
        run(spawner.start())
    assert get_obj(api, namespace, "nbs-alice") is None


def test_restart_patches_same_object_and_ignores_stale_ready(api, namespace, make_spawner):
    first = make_spawner()
    run(start_and_make_ready(api, first))
    run(first.stop())
    obj = get_obj(api, namespace, "nbs-alice")
    assert obj["spec"]["stopped"] is True
    assert run(first.poll()) == 0
    gen_stopped = obj["metadata"]["generation"]

    second = make_spawner()
    second.load_state(first.get_state())

    async def scenario():
        task = asyncio.ensure_future(second.start())
        patched = await until(
            lambda: (o := get_obj(api, namespace, "nbs-alice")) and o["metadata"]["generation"] > gen_stopped and o,
            "the restart patch",
        )
        assert patched["spec"]["stopped"] is False
        assert patched["metadata"]["uid"] == obj["metadata"]["uid"]
        # Ready from the previous generation must not count.
        await asyncio.get_running_loop().run_in_executor(
            None, lambda: set_status(api, namespace, "nbs-alice", dict(ready_status(port=1), observedGeneration=gen_stopped), current=False)
        )
        await asyncio.sleep(0.5)
        assert not task.done()
        await asyncio.get_running_loop().run_in_executor(None, set_status, api, namespace, "nbs-alice", ready_status(port=2))
        return await task

    assert run(scenario()) == "http://127.0.0.1:2"
    secret = api.core.read_namespaced_secret(second.secret_name, namespace)
    assert base64.b64decode(secret.data["token"]).decode() == second.api_token
    # Only the current start's token is kept.
    assert token_secrets(api, namespace, "nbs-alice") == [second.secret_name]


def test_stop_waits_for_operator_to_report_stopped(api, namespace, make_spawner):
    spawner = make_spawner(stop_timeout=20)
    run(start_and_make_ready(api, spawner))

    async def scenario():
        task = asyncio.ensure_future(spawner.stop())
        await until(lambda: get_obj(api, namespace, "nbs-alice")["spec"].get("stopped"), "spec.stopped")
        await asyncio.sleep(0.2)
        assert not task.done()
        await asyncio.get_running_loop().run_in_executor(
            None, set_status, api, namespace, "nbs-alice", {"phase": "Stopped", "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": now()}]}
        )
        await task

    run(scenario())
    assert run(spawner.poll()) == 0


def test_stop_after_a_failed_start_does_not_wait(api, namespace, make_spawner):
    # JupyterHub stops the server inside a failed spawn and reports the failure only after
    # stop() returns (within slow_spawn_timeout); no operator answers here, so a waiting stop()
    # would take the whole stop_timeout.
    spawner = make_spawner(start_timeout=2, stop_timeout=GUARD * 2)
    with pytest.raises(SpawnFailed, match="not ready after 2s"):
        run(spawner.start())
    run(spawner.stop())
    stopped = get_obj(api, namespace, "nbs-alice")
    assert stopped["spec"]["stopped"] is True
    gen_stopped = stopped["metadata"]["generation"]

    # The next stop (of a server that did start) waits again.
    async def scenario():
        start = asyncio.ensure_future(spawner.start())
        await until(
            lambda: (o := get_obj(api, namespace, "nbs-alice")) and o["metadata"]["generation"] > gen_stopped,
            "the restart patch",
        )
        await asyncio.get_running_loop().run_in_executor(None, set_status, api, namespace, "nbs-alice", ready_status())
        await start
        task = asyncio.ensure_future(spawner.stop())
        await until(lambda: get_obj(api, namespace, "nbs-alice")["spec"].get("stopped"), "spec.stopped")
        await asyncio.sleep(0.2)
        assert not task.done(), "stop() after a successful start waits for Stopped"
        task.cancel()

    run(scenario())


def test_delete_on_stop_removes_object_and_secret(api, namespace, make_spawner):
    spawner = make_spawner(delete_on_stop=True)
    run(start_and_make_ready(api, spawner))
    run(spawner.stop())
    from kubernetes.client.rest import ApiException

    # No operator here to remove a finalizer: the object is gone or being deleted.
    obj = get_obj(api, namespace, "nbs-alice")
    assert obj is None or obj["metadata"].get("deletionTimestamp")
    with pytest.raises(ApiException) as e:
        api.core.read_namespaced_secret(spawner.secret_name, namespace)
    assert e.value.status == 404
    assert token_secrets(api, namespace, "nbs-alice") == []
    assert run(spawner.poll()) == 0
    spawner.clear_state()
    assert "object_uid" not in spawner.get_state()


def test_options_form_checks_allowed_images_and_modes(api, namespace, make_spawner):
    spawner = make_spawner(
        allowed_images={"Notebook": "local/notebook:latest", "Shiny": "local/shiny:latest"},
        allowed_modes=["notebook", "rshiny"],
    )
    form = spawner.options_form(spawner)
    assert 'name="image"' in form and "local/shiny:latest" in form and 'name="mode"' in form
    assert spawner.options_from_form({"image": ["local/shiny:latest"], "mode": ["rshiny"]}) == {
        "image": "local/shiny:latest",
        "mode": "rshiny",
    }
    with pytest.raises(ValueError, match="not allowed"):
        spawner.options_from_form({"image": ["evil/miner:1"]})
    with pytest.raises(ValueError, match="mode 'voila' is not allowed"):
        spawner.options_from_form({"mode": ["voila"]})

    # user_options sent as JSON through the REST API bypass the form: start() checks again.
    spawner.user_options = {"image": "evil/miner:1"}
    with pytest.raises(SpawnFailed, match="not allowed"):
        run(spawner.start())
    assert get_obj(api, namespace, "nbs-alice") is None

    # Display names map to images.
    spawner.user_options = {"image": "Shiny", "mode": "rshiny"}
    spec = spawner.build_spec()
    assert spec["image"] == "local/shiny:latest" and spec["mode"] == "rshiny"
    assert make_spawner().options_form == ""


def _event(namespace, obj_name, uid, reason, message, etype="Normal"):
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{obj_name}.{uuid.uuid4().hex[:10]}", "namespace": namespace},
        "involvedObject": {"apiVersion": f"{G}/{V}", "kind": "NotebookServer", "name": obj_name, "namespace": namespace, "uid": uid},
        "reason": reason,
        "message": message,
        "type": etype,
        "firstTimestamp": now(),
        "lastTimestamp": now(),
        "count": 1,
        "source": {"component": "nbswarm-operator"},
    }


def test_progress_yields_the_resources_events(api, namespace, make_spawner):
    spawner = make_spawner()

    async def scenario():
        loop = asyncio.get_running_loop()
        start = asyncio.ensure_future(spawner.start())
        obj = await until(lambda: get_obj(api, namespace, "nbs-alice"), "the NotebookServer")
        uid = obj["metadata"]["uid"]
        create = lambda ev: api.core.create_namespaced_event(namespace, ev)  # noqa: E731
        await loop.run_in_executor(None, create, _event(namespace, "nbs-alice", uid, "Creating", "creating service nbs-alice"))
        # Another object's events are not this spawn's progress.
        await loop.run_in_executor(None, create, _event(namespace, "nbs-bob", "x", "Creating", "creating service nbs-bob"))

        seen = []
        gen = spawner.progress()
        seen.append(await gen.__anext__())  # listed
        await loop.run_in_executor(None, create, _event(namespace, "nbs-alice", uid, "Pulling", "pulling image local/notebook:latest"))
        seen.append(await gen.__anext__())  # watched
        await gen.aclose()
        await loop.run_in_executor(None, set_status, api, namespace, "nbs-alice", ready_status())
        await start
        return seen

    seen = run(scenario())
    assert [e["message"] for e in seen] == [
        "Creating: creating service nbs-alice",
        "Pulling: pulling image local/notebook:latest",
    ]
    assert seen[0]["progress"] < seen[1]["progress"] <= 100


def test_resource_name_escaping():
    from nbswarm_spawner import resource_name

    t = "{prefix}-{username}-{servername}"
    assert resource_name(t, "nbs", "alice", "") == "nbs-alice"
    assert resource_name(t, "nbs", "alice", "dash1") == "nbs-alice-dash1"
    a, b = resource_name(t, "nbs", "a.b", ""), resource_name(t, "nbs", "a", "2eb")
    assert a != b
    long = resource_name(t, "nbs", "x" * 80, "y")
    assert len(long) <= 63
    for name in (a, b, long, resource_name(t, "nbs", "Alice@Example.org", "My Server")):
        assert name == name.lower() and len(name) <= 63 and not name.startswith("-") and not name.endswith("-")
        assert all(c.isalnum() or c == "-" for c in name)


def test_start_waits_for_a_terminating_object_then_creates_a_new_one(api, namespace, make_spawner):
    first = make_spawner()
    run(start_and_make_ready(api, first))
    old_uid = get_obj(api, namespace, "nbs-alice")["metadata"]["uid"]
    # A finalizer keeps the deleted object Terminating, as the operator's does while it cleans up.
    api.custom.patch_namespaced_custom_object(G, V, namespace, P, "nbs-alice", {"metadata": {"finalizers": ["test/hold"]}})
    api.custom.delete_namespaced_custom_object(G, V, namespace, P, "nbs-alice")
    assert get_obj(api, namespace, "nbs-alice")["metadata"].get("deletionTimestamp")

    second = make_spawner(delete_on_stop=True)

    async def scenario():
        loop = asyncio.get_running_loop()
        task = asyncio.ensure_future(second.start())
        await asyncio.sleep(0.5)
        assert not task.done()
        assert get_obj(api, namespace, "nbs-alice")["metadata"]["uid"] == old_uid  # not patched
        await loop.run_in_executor(
            None,
            lambda: api.custom.patch_namespaced_custom_object(G, V, namespace, P, "nbs-alice", {"metadata": {"finalizers": None}}),
        )
        fresh = await until(
            lambda: (o := get_obj(api, namespace, "nbs-alice")) and o["metadata"]["uid"] != old_uid and o, "a new object"
        )
        await loop.run_in_executor(None, set_status, api, namespace, "nbs-alice", ready_status(port=3))
        return await task, fresh

    url, fresh = run(scenario())
    assert url == "http://127.0.0.1:3"
    assert fresh["spec"]["stopped"] is False


def test_the_kubernetes_client_is_loaded_with_the_spawner_not_at_its_first_spawn():
    # JupyterHub loads the spawner class when it starts; the first spawn must not spend the hub's
    # event loop importing python-kubernetes (seconds on a loaded machine, every request waiting).
    import os
    import subprocess
    import sys

    probe = (
        "import sys; import nbswarm_spawner; "
        "print(all(m in sys.modules for m in ('kubernetes.client', 'kubernetes.client.rest', 'kubernetes.config')))"
    )
    hub_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", probe], cwd=hub_dir, capture_output=True, text=True, timeout=GUARD, check=True)
    assert out.stdout.strip() == "True", out.stderr
