"""follow_move: a server Swarm moved to another node is routed at its new endpoint.

The hub's Server record and proxy are stand-ins here (plain objects that record what was asked);
the e2e test on the multi-node cluster runs the same code inside a real JupyterHub.
"""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace

from nbswarm_spawner.moves import follow_move, moved_to


class Server:
    def __init__(self, proto: str, ip: str, port: int) -> None:
        self.proto, self.ip, self.port = proto, ip, port

    @property
    def host(self) -> str:
        return f"{self.proto}://{self.ip}:{self.port}"


class Proxy:
    def __init__(self) -> None:
        self.added = []

    async def add_user(self, user, name=""):
        self.added.append((user.name, name))


def spawner(server, proxy):
    commits = []
    return SimpleNamespace(
        server=server,
        db=SimpleNamespace(commit=lambda: commits.append(1)),
        user=SimpleNamespace(name="alice", settings={"proxy": proxy}),
        name="dash",
        log=logging.getLogger("test"),
        resource_name="nbs-alice-dash",
        commits=commits,
    )


def test_moved_to_compares_proto_host_and_port():
    s = Server("http", "10.0.0.12", 30001)
    assert moved_to(s, "http://10.0.0.12:30001") is None
    assert moved_to(s, "http://10.0.0.13:30001") == ("http", "10.0.0.13", 30001)
    assert moved_to(s, "http://10.0.0.12:30002") == ("http", "10.0.0.12", 30002)
    assert moved_to(s, "http://10.0.0.12") == ("http", "10.0.0.12", 80)
    assert moved_to(s, None) is None
    assert moved_to(None, "http://10.0.0.13:1") is None


def test_follow_move_updates_the_record_and_the_route_once():
    proxy = Proxy()
    sp = spawner(Server("http", "10.0.0.13", 30001), proxy)
    assert asyncio.run(follow_move(sp, "http://10.0.0.12:30777")) is True
    assert (sp.server.ip, sp.server.port) == ("10.0.0.12", 30777)
    assert sp.commits == [1]
    assert proxy.added == [("alice", "dash")]
    # Same endpoint again: nothing to do.
    assert asyncio.run(follow_move(sp, "http://10.0.0.12:30777")) is False
    assert proxy.added == [("alice", "dash")]


def test_follow_move_without_a_proxy_in_the_settings_still_updates_the_record():
    sp = spawner(Server("http", "10.0.0.13", 30001), None)
    sp.user.settings = {}
    assert asyncio.run(follow_move(sp, "http://10.0.0.11:30002")) is True
    assert sp.server.host == "http://10.0.0.11:30002"
