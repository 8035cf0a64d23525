"""watch_events against the real embedded API server: what it yields, when it ends, and that an
abandoned watch gives its thread back at once."""

from __future__ import annotations

import asyncio
import concurrent.futures
import time

import pytest

from nbswarm_spawner.watch import watch_events

# Bounds a test that would otherwise hang; not a timing assertion.
GUARD = 60


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, GUARD))


@pytest.fixture
def executor():
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="test-watch")
    yield pool
    pool.shutdown(wait=False)


def configmap(name: str, value: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"v": value}}


def configmaps_path(namespace: str) -> str:
    return f"/api/v1/namespaces/{namespace}/configmaps"


def test_yields_the_changes_after_a_resource_version_that_match_the_selector(api, namespace, executor):
    rv = api.core.list_namespaced_config_map(namespace).metadata.resource_version
    api.core.create_namespaced_config_map(namespace, configmap("a", "1"))
    api.core.create_namespaced_config_map(namespace, configmap("b", "1"))
    api.core.patch_namespaced_config_map("a", namespace, {"data": {"v": "2"}})
    api.core.delete_namespaced_config_map("a", namespace)

    async def collect():
        seen = []
        params = {"resourceVersion": rv, "fieldSelector": "metadata.name=a", "labelSelector": ""}
        async for ev in watch_events(api.client, configmaps_path(namespace), 30, executor=executor, connect_timeout=10, params=params):
            seen.append((ev["type"], ev["object"]["metadata"]["name"], (ev["object"].get("data") or {}).get("v")))
            if ev["type"] == "DELETED":
                break
        return seen

    assert run(collect()) == [("ADDED", "a", "1"), ("MODIFIED", "a", "2"), ("DELETED", "a", "2")]


def test_a_quiet_watch_ends_without_error_when_its_timeout_passes(api, namespace, executor):
    async def quiet():
        events = [ev async for ev in watch_events(api.client, configmaps_path(namespace), 1.5, executor=executor, connect_timeout=10)]
        return events

    started = time.monotonic()
    assert run(quiet()) == []
    assert time.monotonic() - started >= 1.4


def test_an_abandoned_watch_gives_its_thread_back_at_once(api, namespace, executor):
    """The server would hold this stream open for 30 s; breaking out must shut its socket down so the
    executor's only thread is free for the next call, and the client's pool stays usable."""
    rv = api.core.list_namespaced_config_map(namespace).metadata.resource_version

    async def abandon():
        loop = asyncio.get_running_loop()
        watch = watch_events(api.client, configmaps_path(namespace), 30, executor=executor, connect_timeout=10, params={"resourceVersion": rv})
        await loop.run_in_executor(None, api.core.create_namespaced_config_map, namespace, configmap("c", "1"))
        async for ev in watch:
            assert ev["type"] == "ADDED"
            break
        await watch.aclose()
        abandoned = time.monotonic()
        # The single worker thread was the reader: this runs only once the reader has returned.
        await asyncio.wait_for(loop.run_in_executor(executor, lambda: None), 10)
        return time.monotonic() - abandoned

    freed_after = run(abandon())
    assert freed_after < 10
    # The shut-down connection was not put back half-read: the next request on the same client works.
    names = [cm.metadata.name for cm in api.core.list_namespaced_config_map(namespace).items]
    assert names == ["c"]


def test_an_error_event_is_yielded_for_the_caller_to_relist(api, namespace, executor):
    async def first():
        async for ev in watch_events(
            api.client, configmaps_path(namespace), 10, executor=executor, connect_timeout=10, params={"resourceVersion": "999999999"}
        ):
            return ev

    ev = run(first())
    assert ev["type"] == "ERROR"
    assert ev["object"]["kind"] == "Status" and ev["object"]["code"] >= 400


def test_a_response_that_is_not_a_watch_stream_becomes_one_error_event(api, executor):
    async def all_events():
        return [ev async for ev in watch_events(api.client, "/version", 10, executor=executor, connect_timeout=10)]

    assert run(all_events()) == [{"type": "ERROR", "object": {"message": "not a watch event"}}]


def test_a_failed_request_is_raised_in_the_caller(api, namespace, executor):
    from kubernetes.client.rest import ApiException

    async def watch_missing_kind():
        async for _ in watch_events(api.client, f"/api/v1/namespaces/{namespace}/nosuchkind", 10, executor=executor, connect_timeout=10):
            pass

    with pytest.raises(ApiException) as err:
        run(watch_missing_kind())
    assert err.value.status == 404
