"""nbswarm-dashboard-proxy against a real app process (a small tornado app written by the test),
with --authtype=none: the command line contract (placeholders, {-}/{--}, options mixed with the
command), HTTP and websocket proxying under the service prefix, what is stripped before the app,
the ready check, and the exit when the app dies. Its OAuth check runs against a real JupyterHub
in test/e2e/dashboards-hub.test.ts.

Run with Debian's Python: /usr/bin/python3 -m pytest images/notebook/tests
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from tornado import websocket

HERE = os.path.dirname(os.path.abspath(__file__))
PROXY = os.path.join(os.path.dirname(HERE), "nbswarm-dashboard-proxy")

APP = r'''
import json, sys
from tornado import ioloop, web, websocket

port = int(sys.argv[1])

first = [True]

class Echo(web.RequestHandler):
    async def get(self, path):
        import asyncio, os
        if first[0] and os.environ.get("APP_FIRST_ANSWER_DELAY"):
            first[0] = False
            await asyncio.sleep(float(os.environ["APP_FIRST_ANSWER_DELAY"]))
        self.set_header("Set-Cookie", "app=1; Path=/")
        self.write({"path": "/" + path, "query": self.request.query, "argv": sys.argv[1:],
                    "headers": dict(self.request.headers)})
    def post(self, path):
        self.write({"body": self.request.body.decode()})

class Stream(web.RequestHandler):
    async def get(self):
        import asyncio
        for i in range(3):
            self.write(f"chunk{i}\n")
            await self.flush()
            await asyncio.sleep(0.1)

class Ws(websocket.WebSocketHandler):
    def on_message(self, m):
        self.write_message("echo:" + m)

class Exit(web.RequestHandler):
    def get(self):
        ioloop.IOLoop.current().add_callback(lambda: sys.exit(3))
        self.write("bye")

web.Application([(r"/ws", Ws), (r"/stream", Stream), (r"/exit", Exit), (r"/(.*)", Echo)]).listen(port, "127.0.0.1")
print("app listening", flush=True)
ioloop.IOLoop.current().start()
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proxy:
    def __init__(self, tmp_path, args, prefix="/user/alice/dash/", env=None):
        self.port = free_port()
        app = tmp_path / "app.py"
        app.write_text(APP)
        self.app = str(app)
        e = dict(os.environ, JUPYTERHUB_SERVICE_PREFIX=prefix, **(env or {}))
        e.pop("JUPYTERHUB_API_TOKEN", None)
        cmd = [sys.executable, PROXY, *[a.replace("APP", self.app) for a in args], "--ip=127.0.0.1", f"--port={self.port}", "--authtype=none"]
        self.proc = subprocess.Popen(cmd, env=e, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.base = f"http://127.0.0.1:{self.port}{prefix.rstrip('/')}"

    def wait_listening(self):
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"proxy exited {self.proc.returncode}: {self.proc.stdout.read()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise AssertionError("proxy did not listen")

    def get(self, path, headers=None, method="GET", data=None):
        req = urllib.request.Request(self.base + path, headers=headers or {}, method=method, data=data)
        opener = urllib.request.build_opener(NoRedirect)
        try:
            with opener.open(req, timeout=20) as r:
                return r.status, dict(r.headers), r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read().decode()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def children(pid: int) -> list:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return f.read().split()


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


@pytest.fixture
def proxy(tmp_path):
    started = []

    def make(args, **kw):
        p = Proxy(tmp_path, args, **kw).wait_listening()
        started.append(p)
        return p

    yield make
    for p in started:
        p.stop()


def echo_args():
    return ["--destport=0", sys.executable, "APP", "{port}", "{base_url}", "{presentation_path}", "{presentation_basename}", "{-}v", "{--}x={{literal}}",
            "--presentation-path=/srv/dash/app.py", "--ready-check-path=/ready"]


def test_fills_the_placeholders_and_proxies_under_the_prefix(proxy):
    p = proxy(echo_args())
    status, headers, body = p.get("/some/page?x=1&token=hubtoken", headers={
        "Authorization": "token hubtoken", "Cookie": "jupyterhub-user-alice-dash=secret; theme=dark; jupyterhub-session-id=s",
        "X-CDSDASHBOARDS-JH-USER": "spoofed"})
    assert status == 200, body
    got = json.loads(body)
    assert got["path"] == "/some/page"
    assert got["query"] == "x=1", "the hub token in ?token= never reaches the app"
    argv = got["argv"]
    assert argv[1:] == ["/user/alice/dash", "/srv/dash/app.py", "app.py", "-v", "--x={literal}"]
    assert int(argv[0]) != p.port
    h = {k.lower(): v for k, v in got["headers"].items()}
    assert "authorization" not in h
    assert h["cookie"] == "theme=dark"
    assert "x-cdsdashboards-jh-user" not in h
    assert h["host"] == f"127.0.0.1:{p.port}"
    assert headers.get("Set-Cookie") == "app=1; Path=/"


def test_redirects_the_bare_prefix_and_forwards_post_bodies(proxy):
    p = proxy(echo_args())
    status, headers, _ = p.get("")
    assert status == 302 and headers["Location"] == "/user/alice/dash/"
    status, _, body = p.get("/form", method="POST", data=b"a=1&b=2")
    assert status == 200 and json.loads(body) == {"body": "a=1&b=2"}


def test_streams_responses_and_proxies_websockets(proxy):
    p = proxy(echo_args())
    status, _, body = p.get("/stream")
    assert status == 200 and body == "chunk0\nchunk1\nchunk2\n"

    async def talk():
        ws = await websocket.websocket_connect(f"ws://127.0.0.1:{p.port}/user/alice/dash/ws")
        await ws.write_message("hello")
        msg = await ws.read_message()
        ws.close()
        return msg

    assert asyncio.run(talk()) == "echo:hello"


def test_a_command_with_origin_host_starts_at_the_first_request(proxy):
    p = proxy(["--destport=0", sys.executable, "APP", "{port}", "{origin_host}"])
    time.sleep(0.5)
    assert children(p.proc.pid) == [], "no app before the first request"
    status, _, body = p.get("/", headers={"Host": "dash.example:8000"})
    assert status == 200, body
    assert json.loads(body)["argv"][1] == "dash.example:8000"
    assert len(children(p.proc.pid)) == 1


def test_an_app_that_never_answers_gives_a_502_page_with_its_output(proxy):
    p = proxy(["--ready-timeout=1", sys.executable, "{-}c", "print('starting but never listening', flush=True); import time; time.sleep(60)"])
    status, _, body = p.get("/")
    assert status == 502
    assert "did not answer" in body and "--ready-timeout" in body
    assert "starting but never listening" in body


def test_an_app_slow_over_its_first_answer_is_waited_for(proxy):
    # Listening at once, but 3 s over the first request (the ready check): within --ready-timeout.
    p = proxy(echo_args()[:-1] + ["--ready-check-path=/", "--ready-timeout=20"], env={"APP_FIRST_ANSWER_DELAY": "3"})
    status, _, body = p.get("/page")
    assert status == 200, body
    assert json.loads(body)["path"] == "/page"
    assert len(children(p.proc.pid)) == 1, "one app, not a restart after a slow check"


def test_sigterm_stops_the_app_first_then_the_proxy_exits_0(proxy):
    p = proxy(echo_args())
    assert p.get("/page")[0] == 200
    [app] = children(p.proc.pid)
    p.proc.terminate()
    assert p.proc.wait(10) == 0
    # The app was stopped and reaped by the proxy, not left running without it.
    assert not os.path.exists(f"/proc/{app}"), "the app outlived the proxy"
    assert "stopping the app" in p.proc.stdout.read()


def test_an_app_that_ignores_sigterm_is_killed_after_the_stop_timeout(proxy):
    stubborn = "import signal, time, http.server, sys; signal.signal(signal.SIGTERM, signal.SIG_IGN); http.server.HTTPServer(('127.0.0.1', int(sys.argv[1])), http.server.SimpleHTTPRequestHandler).serve_forever()"
    p = proxy(["--destport=0", "--stop-timeout=1", sys.executable, "{-}c", stubborn, "{port}"])
    assert p.get("/")[0] == 200
    [app] = children(p.proc.pid)
    started = time.time()
    p.proc.terminate()
    assert p.proc.wait(10) == 0
    assert 0.8 < time.time() - started < 5
    assert not os.path.exists(f"/proc/{app}")
    assert "did not exit within 1.0 s (--stop-timeout): killing it" in p.proc.stdout.read()


def test_the_proxy_exits_with_the_app_when_it_dies(proxy):
    p = proxy(echo_args())
    assert p.get("/exit")[0] == 200
    assert p.proc.wait(10) == 3


def test_refuses_repo_options(tmp_path):
    r = subprocess.run([sys.executable, PROXY, "--repo=https://h/r.git", "app"], capture_output=True, text=True)
    assert r.returncode == 2
    assert "give the NotebookServer a spec.git source" in r.stderr
