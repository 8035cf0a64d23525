"""Fixtures: a REAL nbswarm API server process (no mocks of the API) with the NotebookServer CRD.

The server is started as `node <build>/src/cli.js serve --data-dir D --port P` (override with
NBSWARM_SERVE_CMD, a command with {data_dir} and {port}), and the admin kubeconfig it writes in its
data dir is used. NBSWARM_KUBECONFIG points the tests at an already running server (or a real
Kubernetes cluster) instead. Run with Debian's Python: /usr/bin/python3 -m pytest hub/tests
"""

from __future__ import annotations

import glob
import json
import os
import shlex
import socket
import subprocess
import sys
import time
import uuid
from types import SimpleNamespace

import pytest
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
HUB = os.path.dirname(HERE)
ROOT = os.path.dirname(HUB)
sys.path.insert(0, HUB)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve_command(data_dir: str, port: int) -> list:
    custom = os.environ.get("NBSWARM_SERVE_CMD")
    if custom:
        return shlex.split(custom.format(data_dir=data_dir, port=port))
    # The API server's own entry in the lead's build, then in any helper's build dir (newest
    # first), then the nbswarm CLI (`serve`).
    candidates = [os.path.join(ROOT, "dist", "src", "apiserver", "main.js")]
    candidates += sorted(
        glob.glob(os.path.join(ROOT, "dist-*", "src", "apiserver", "main.js")), key=os.path.getmtime, reverse=True
    )
    candidates.append(os.path.join(ROOT, "dist", "src", "cli.js"))
    for cli in candidates:
        if os.path.exists(cli):
            return ["node", cli, "serve", "--data-dir", data_dir, "--port", str(port)]
    raise RuntimeError("no built nbswarm CLI found: run `npm run build` (or set NBSWARM_SERVE_CMD)")


def _find_kubeconfig(data_dir: str, out_file: str):
    # `serve` prints {"url":..., "kubeconfig":...} on stdout once it listens.
    try:
        with open(out_file) as f:
            for line in f:
                if line.startswith("{") and '"kubeconfig"' in line:
                    return json.loads(line)["kubeconfig"]
    except (OSError, ValueError):
        pass
    for pattern in ("admin.kubeconfig", "kubeconfig", "*.kubeconfig", "**/*kubeconfig*"):
        found = sorted(glob.glob(os.path.join(data_dir, pattern), recursive=True))
        if found:
            return found[0]
    return None


def _wait_serving(proc, data_dir: str, out: str, log_name: str, timeout: float = 30) -> str:
    """The kubeconfig of a `serve` process once it answers."""
    from kubernetes import client, config

    deadline = time.time() + timeout
    path = None
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"API server exited ({proc.returncode}): {open(log_name).read()[-2000:]}")
        path = path or _find_kubeconfig(data_dir, out)
        if path:
            try:
                api = config.new_client_from_config(config_file=path)
                client.VersionApi(api).get_code()
                return path
            except Exception:  # noqa: BLE001 - not up yet
                pass
        time.sleep(0.1)
    raise RuntimeError(f"API server not ready in {timeout}s: {open(log_name).read()[-2000:]}")


def _apply_crd(kubeconfig: str):
    from kubernetes import client, config
    from kubernetes.client.rest import ApiException

    api_client = config.new_client_from_config(config_file=kubeconfig)
    with open(os.path.join(ROOT, "crds", "notebookserver.yaml")) as f:
        crd = yaml.safe_load(f)
    try:
        client.ApiextensionsV1Api(api_client).create_custom_resource_definition(crd)
    except ApiException as e:
        if e.status != 409:
            raise
    custom = client.CustomObjectsApi(api_client)
    deadline = time.time() + 20
    while True:
        try:
            custom.list_namespaced_custom_object("nbswarm.io", "v1alpha1", "default", "notebookservers")
            return SimpleNamespace(custom=custom, core=client.CoreV1Api(api_client), client=api_client)
        except ApiException:
            if time.time() > deadline:
                raise
            time.sleep(0.1)


class RestartableApiServer:
    """An API server of a test's own, on a fixed port and data dir, that the test kills (SIGKILL,
    its own process, by PID) and starts again, as `nbswarm up` restarts after a crash."""

    def __init__(self, data_dir: str):
        self.data_dir = data_dir
        self.port = _free_port()
        self.proc = None
        self.kubeconfig = ""
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        out = os.path.join(self.data_dir, f"server.{self.starts}.out")
        log_name = os.path.join(self.data_dir, f"server.{self.starts}.log")
        with open(out, "wb") as out_f, open(log_name, "wb") as log:
            self.proc = subprocess.Popen(_serve_command(self.data_dir, self.port), stdout=out_f, stderr=log, cwd=ROOT)
        self.kubeconfig = _wait_serving(self.proc, self.data_dir, out, log_name)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@pytest.fixture
def restartable_api(tmp_path):
    """A private API server (CRD applied) the test may kill -9 and start again."""
    srv = RestartableApiServer(str(tmp_path / "apiserver"))
    os.makedirs(srv.data_dir)
    srv.start()
    srv.api = _apply_crd(srv.kubeconfig)
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="session")
def kubeconfig(tmp_path_factory):
    given = os.environ.get("NBSWARM_KUBECONFIG")
    if given:
        yield given
        return
    data_dir = str(tmp_path_factory.mktemp("apiserver"))
    port = _free_port()
    out = os.path.join(data_dir, "server.out")
    log = open(os.path.join(data_dir, "server.log"), "wb")
    with open(out, "wb") as out_f:
        proc = subprocess.Popen(_serve_command(data_dir, port), stdout=out_f, stderr=log, cwd=ROOT)
    try:
        from kubernetes import client, config

        deadline = time.time() + 30
        path = None
        while time.time() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"API server exited ({proc.returncode}): {open(log.name).read()[-2000:]}")
            path = path or _find_kubeconfig(data_dir, out)
            if path:
                try:
                    api = config.new_client_from_config(config_file=path)
                    client.VersionApi(api).get_code()
                    break
                except Exception:  # noqa: BLE001 - not up yet
                    pass
            time.sleep(0.1)
        else:
            raise RuntimeError(f"API server not ready in 30s: {open(log.name).read()[-2000:]}")
        yield path
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="session")
def api(kubeconfig):
    """(CustomObjectsApi, CoreV1Api) as the test's own client, CRD applied."""
    from kubernetes import client, config
    from kubernetes.client.rest import ApiException

    api_client = config.new_client_from_config(config_file=kubeconfig)
    ext = client.ApiextensionsV1Api(api_client)
    with open(os.path.join(ROOT, "crds", "notebookserver.yaml")) as f:
        crd = yaml.safe_load(f)
    try:
        ext.create_custom_resource_definition(crd)
    except ApiException as e:
        if e.status != 409:
            raise
    custom = client.CustomObjectsApi(api_client)
    deadline = time.time() + 20
    while True:
        try:
            custom.list_namespaced_custom_object("nbswarm.io", "v1alpha1", "default", "notebookservers")
            break
        except ApiException:
            if time.time() > deadline:
                raise
            time.sleep(0.1)
    return SimpleNamespace(custom=custom, core=client.CoreV1Api(api_client), client=api_client)


@pytest.fixture
def namespace(api):
    """A fresh namespace per test so tests never see each other's objects."""
    name = "hubtest-" + uuid.uuid4().hex[:8]
    api.core.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return name


@pytest.fixture
def make_spawner(kubeconfig, namespace):
    from jupyterhub import orm
    from jupyterhub.objects import Hub

    from nbswarm_spawner import NotebookServerSpawner

    def make(username="alice", servername="", orm_spawner=None, **config):
        user = SimpleNamespace(
            name=username,
            escaped_name=username,
            url=f"/user/{username}/",
            id=1,
            admin=False,
            progress_url=lambda name: "",
        )
        config.setdefault("start_timeout", 20)
        config.setdefault("stop_timeout", 0)
        # The hub's own ORM records, unsaved: the spawner reads its name and base_url from them.
        base_url = f"/user/{username}/{servername + '/' if servername else ''}"
        if orm_spawner is None:
            orm_spawner = SimpleNamespace(name=servername, server=orm.Server(base_url=base_url, proto="http", ip="", port=0, cookie_name="jupyterhub-user"))
        config.setdefault("kubeconfig", kubeconfig)
        config.setdefault("namespace", namespace)
        spawner = NotebookServerSpawner(
            user=user,
            hub=Hub(),
            orm_spawner=orm_spawner,
            api_token="hub-token-" + uuid.uuid4().hex,
            oauth_client_id=f"jupyterhub-user-{username}",
            **config,
        )
        return spawner

    return make
