"""What the spawner does when something crashes: the hub killed mid-spawn and restarted, the API
server killed and restarted during a spawn, a server that failed while the hub was away; and the
token Secrets, which never outlive their server. Against the real API server; the test plays the
operator (status), as in test_spawner.py."""

from __future__ import annotations

import asyncio
import datetime
import uuid

import pytest

from nbswarm_spawner import SpawnFailed
from nbswarm_spawner.retry import is_transient
from test_spawner import G, P, V, get_obj, ready_status, run, set_status, start_and_make_ready, token_secrets, until

DEADLINE = "nbswarm.io/start-deadline"


def annotations(api, ns, name):
    return (get_obj(api, ns, name)["metadata"].get("annotations") or {})


async def in_thread(fn, *args):
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


async def hub_killed_mid_spawn(api, spawner):
    """Start a spawn and abandon it once its object exists, as a hub killed by SIGKILL does."""
    task = asyncio.ensure_future(spawner.start())
    obj = await until(lambda: get_obj(api, spawner.namespace, spawner.resource_name), "the NotebookServer")
    await until(lambda: token_secrets(api, spawner.namespace, spawner.resource_name), "the token Secret")
    task.cancel()
    try:
        await task
    except (asyncio.CancelledError, SpawnFailed):
        pass
    return obj


def test_start_writes_a_start_deadline_and_stop_removes_it_with_the_token_secret(api, namespace, make_spawner):
    spawner = make_spawner(start_timeout=20, stop_timeout=0)
    before = datetime.datetime.now(datetime.timezone.utc)
    run(start_and_make_ready(api, spawner))
    deadline = datetime.datetime.fromisoformat(annotations(api, namespace, "nbs-alice")[DEADLINE].replace("Z", "+00:00"))
    # The spawn's own deadline: just before the hub's start_timeout.
    assert before + datetime.timedelta(seconds=18) <= deadline <= before + datetime.timedelta(seconds=20)
    assert token_secrets(api, namespace, "nbs-alice") == [spawner.secret_name]

    run(spawner.stop())
    obj = get_obj(api, namespace, "nbs-alice")
    assert obj["spec"]["stopped"] is True
    assert DEADLINE not in (obj["metadata"].get("annotations") or {})
    assert token_secrets(api, namespace, "nbs-alice") == []


def test_a_start_clears_a_stop_by_annotation(api, namespace, make_spawner):
    first = make_spawner()
    run(start_and_make_ready(api, first))
    stopped = {"nbswarm.io/stopped": "2026-01-01T00:00:00Z", "nbswarm.io/stopped-generation": "1", "nbswarm.io/stopped-reason": "Culled"}
    api.custom.patch_namespaced_custom_object(G, V, namespace, P, "nbs-alice", {"metadata": {"annotations": stopped}})
    assert run(first.poll()) == 0, "stopped by annotation is stopped"

    second = make_spawner()
    second.load_state(first.get_state())
    generation = get_obj(api, namespace, "nbs-alice")["metadata"]["generation"]

    async def scenario():
        task = asyncio.ensure_future(second.start())
        await until(lambda: get_obj(api, namespace, "nbs-alice")["metadata"]["generation"] > generation, "the start's patch")
        await in_thread(set_status, api, namespace, "nbs-alice", ready_status())
        return await task

    run(scenario())
    left = annotations(api, namespace, "nbs-alice")
    assert not set(stopped) & set(left), left


def test_a_refused_start_leaves_no_token_secret(api, namespace, make_spawner):
    # The CRD refuses the spec (422): the Secret written just before the object goes again.
    spawner = make_spawner(extra_spec={"resources": {"memory": "lots"}})
    with pytest.raises(SpawnFailed, match="spec.resources.memory"):
        run(spawner.start())
    assert get_obj(api, namespace, "nbs-alice") is None
    assert token_secrets(api, namespace, "nbs-alice") == []


def test_poll_of_a_failed_server_stops_it_and_deletes_its_token(api, namespace, make_spawner):
    spawner = make_spawner()
    run(start_and_make_ready(api, spawner))
    set_status(api, namespace, "nbs-alice", {"phase": "Failed", "message": "task failed; Swarm stopped restarting it"})
    # JupyterHub calls no stop() after poll() reports a server dead: poll() must stop it, or the
    # operator's crash-loop back-off would run it again for nobody.
    assert run(spawner.poll()) == 1
    assert get_obj(api, namespace, "nbs-alice")["spec"]["stopped"] is True
    assert token_secrets(api, namespace, "nbs-alice") == []


def test_poll_of_a_server_in_crash_loop_back_off_stops_it(api, namespace, make_spawner):
    spawner = make_spawner()
    run(start_and_make_ready(api, spawner))
    # Swarm gave up, the operator's back-off started it again, and it is down again: the hub may
    # have polled at neither Failed moment, and still drops (and stops) it now.
    looping = {
        "phase": "Creating",
        "message": "nbs-alice is restarting after a failure (restart 1)",
        "conditions": [
            {"type": "Ready", "status": "False", "reason": "Restarting"},
            {"type": "Restarted", "status": "True", "reason": "CrashLoopBackOff", "message": "the operator started it again 1 time"},
        ],
    }
    set_status(api, namespace, "nbs-alice", looping)
    assert run(spawner.poll()) == 1
    assert get_obj(api, namespace, "nbs-alice")["spec"]["stopped"] is True


def test_poll_reports_a_restarting_server_as_running(api, namespace, make_spawner):
    spawner = make_spawner()
    run(start_and_make_ready(api, spawner))
    restarting = {"phase": "Creating", "message": "nbs-alice is restarting after a failure (restart 1)",
                  "conditions": [{"type": "Ready", "status": "False", "reason": "Restarting"}]}
    set_status(api, namespace, "nbs-alice", restarting)
    assert run(spawner.poll()) is None
    assert get_obj(api, namespace, "nbs-alice")["spec"]["stopped"] is False


def test_a_restarted_hub_adopts_a_spawn_that_got_ready_while_it_was_down(api, namespace, make_spawner):
    first = make_spawner(start_timeout=30)

    async def scenario():
        await hub_killed_mid_spawn(api, first)
        # The restarted hub: a new spawner with the state in its database, checking the server.
        again = make_spawner(start_timeout=30)
        again.load_state(first.get_state())
        again._check_pending = True
        poll = asyncio.ensure_future(again.poll())
        await asyncio.sleep(0.5)
        assert not poll.done(), "poll() waits for a spawn still in progress"
        await in_thread(set_status, api, namespace, "nbs-alice", ready_status(port=31555))
        status = await poll
        return status, await again.get_url()

    status, url = run(scenario())
    assert status is None
    # The endpoint, with the server's path: what the hub compares with (and replaces) its placeholder.
    assert url == "http://127.0.0.1:31555/user/alice/"
    assert get_obj(api, namespace, "nbs-alice")["spec"]["stopped"] is False
    assert token_secrets(api, namespace, "nbs-alice") == [first.secret_name]


def test_a_restarted_hub_stops_a_spawn_that_never_got_ready(api, namespace, make_spawner):
    first = make_spawner(start_timeout=3)

    async def scenario():
        await hub_killed_mid_spawn(api, first)
        again = make_spawner(start_timeout=3)
        again._check_pending = True
        return await again.poll()

    # Not Ready by the deadline the spawn wrote: stopped, its token gone, reported dead.
    assert run(scenario()) == 1
    assert get_obj(api, namespace, "nbs-alice")["spec"]["stopped"] is True
    assert token_secrets(api, namespace, "nbs-alice") == []


def test_a_restarted_hub_drops_a_spawn_whose_object_was_never_written(api, namespace, make_spawner):
    spawner = make_spawner()
    spawner._check_pending = True
    # The hub died after writing the token Secret, before the object: nothing runs, nothing is left.
    api.core.create_namespaced_secret(
        namespace,
        {"metadata": {"name": spawner.secret_name, "labels": {"app.kubernetes.io/managed-by": "jupyterhub", "nbswarm.io/name": "nbs-alice"}}, "stringData": {"token": "x"}},
    )
    assert run(spawner.poll()) == 0
    assert token_secrets(api, namespace, "nbs-alice") == []


def test_state_is_saved_in_the_hub_database_once_the_object_is_written(api, namespace, make_spawner, tmp_path):
    from jupyterhub import orm

    db_url = f"sqlite:///{tmp_path / 'jupyterhub.sqlite'}"
    session = orm.new_session_factory(db_url)()
    user = orm.User(name="alice")
    session.add(user)
    session.commit()
    orm_spawner = orm.Spawner(user=user, name="")
    orm_spawner.server = orm.Server(base_url="/user/alice/")
    session.add(orm_spawner)
    session.commit()
    spawner = make_spawner(orm_spawner=orm_spawner)

    async def scenario():
        task = asyncio.ensure_future(spawner.start())
        obj = await until(lambda: get_obj(api, namespace, "nbs-alice"), "the NotebookServer")
        # Read back through another connection: committed, while start() still waits for Ready.
        other = orm.new_session_factory(db_url)()
        state = await until(lambda: (other.expire_all(), other.query(orm.Spawner).one().state)[1], "the saved state")
        assert not task.done()
        await in_thread(set_status, api, namespace, "nbs-alice", ready_status())
        await task
        return obj, state

    obj, state = run(scenario())
    assert state == {"object_name": "nbs-alice", "object_uid": obj["metadata"]["uid"]}


def test_start_rides_out_an_api_server_restart(restartable_api, make_spawner):
    srv = restartable_api
    ns = "default"
    spawner = make_spawner(kubeconfig=srv.kubeconfig, namespace=ns, start_timeout=40)

    async def scenario():
        # Down before the spawn: connections refused, retried.
        await in_thread(srv.kill)
        task = asyncio.ensure_future(spawner.start())
        await asyncio.sleep(1.0)
        assert not task.done(), "a refused connection is waited out, not a failed spawn"
        await in_thread(srv.start)
        obj = await until(lambda: get_obj(srv.api, ns, "nbs-alice"), "the NotebookServer once the API server is back")
        # Killed again while the spawn watches for Ready: the watch breaks mid-stream.
        await in_thread(srv.kill)
        await asyncio.sleep(1.0)
        assert not task.done()
        await in_thread(srv.start)
        await until(lambda: get_obj(srv.api, ns, "nbs-alice"), "the API server back")
        await in_thread(set_status, srv.api, ns, "nbs-alice", ready_status(port=31777))
        return obj, await task

    obj, url = run(scenario())
    assert url == "http://127.0.0.1:31777"
    assert obj["metadata"]["annotations"][DEADLINE]
    assert token_secrets(srv.api, ns, "nbs-alice") == [spawner.secret_name]


def test_stop_rides_out_an_api_server_restart(restartable_api, make_spawner):
    srv = restartable_api
    ns = "default"
    spawner = make_spawner(kubeconfig=srv.kubeconfig, namespace=ns, stop_timeout=0)
    run(start_and_make_ready(srv.api, spawner))

    async def scenario():
        await in_thread(srv.kill)
        task = asyncio.ensure_future(spawner.stop())
        await asyncio.sleep(1.0)
        assert not task.done()
        await in_thread(srv.start)
        await task

    run(scenario())
    assert get_obj(srv.api, ns, "nbs-alice")["spec"]["stopped"] is True
    assert token_secrets(srv.api, ns, "nbs-alice") == []


def test_transient_errors_are_told_from_refusals():
    import urllib3.exceptions as u3
    from kubernetes.client.rest import ApiException

    assert is_transient(u3.ProtocolError("Connection broken: InvalidChunkLength(got length b'', 0 bytes read)"))
    assert is_transient(u3.MaxRetryError(None, "/apis", reason=u3.NewConnectionError(None, "Connection refused")))
    assert is_transient(ConnectionResetError())
    assert is_transient(ApiException(status=503))
    assert is_transient(ApiException(status=429))
    assert not is_transient(ApiException(status=422))
    assert not is_transient(ApiException(status=403))
    assert not is_transient(FileNotFoundError("kubeconfig"))
    assert not is_transient(SpawnFailed("no"))
    assert not is_transient(ValueError(str(uuid.uuid4())))


def test_a_start_fails_once_the_server_crashed_twice_before_it_was_ready(api, namespace, make_spawner):
    spawner = make_spawner(start_timeout=30)
    restarting = lambda n: {  # noqa: E731
        "phase": "Creating",
        "restartCount": n,
        "message": f"nbs-alice is restarting after a failure (restart {n}): failed: task: non-zero exit (127)",
        "conditions": [{"type": "Ready", "status": "False", "reason": "Restarting"}],
    }

    async def scenario():
        task = asyncio.ensure_future(spawner.start())
        await until(lambda: get_obj(api, namespace, "nbs-alice"), "the NotebookServer")
        await in_thread(set_status, api, namespace, "nbs-alice", restarting(1))
        await asyncio.sleep(0.5)
        assert not task.done(), "one crash while starting is waited out"
        await in_thread(set_status, api, namespace, "nbs-alice", restarting(2))
        return await task

    with pytest.raises(SpawnFailed, match=r"crashed 2 times while starting: .*non-zero exit \(127\)"):
        run(scenario())
