# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The hyper connection plugin against fakes: no libvirt, no VM."""

from __future__ import annotations

import base64
import os
import re
from dataclasses import dataclass, field
from typing import Any, Optional

import pytest
from ansible.errors import AnsibleConnectionFailure, AnsibleError, AnsibleFileNotFound
from ansible.playbook.play_context import PlayContext

from ansible_collections.hyper.pods.plugins.connection import hyper
from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import (
    AgentTimeout,
    AgentUnavailable,
    ContainerError,
    DomainNotRunning,
    HyperError,
    LibvirtFailure,
)
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.agent import MAX_REQUEST_DATA, GuestAgent
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.store import CurrentPod, FoundPod
from ansible_collections.hyper.pods.tests.unit.plugins.module_utils.fake_agent import FakeClock, Reply, ScriptedTransport


@dataclass
class FakeResult:
    rc: Optional[int] = 0
    signal: Optional[int] = None
    stdout: bytes = b""
    stderr: bytes = b""
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    duration: float = 0.1
    timed_out: bool = False


@dataclass
class FakeClient:
    containers: list[str]
    closed: int = 0

    def get_metadata(self, dom: Any) -> dict[str, Any]:
        return {"name": "shop", "spec": {"name": "shop", "containers": [{"name": n} for n in self.containers]}}

    def close(self) -> None:
        self.closed += 1


@dataclass
class World:
    """What the plugin sees: pods (name → (running, containers)), the agent's transport and the commands run."""

    clock: FakeClock = field(default_factory=FakeClock)
    pods: dict[str, tuple[bool, list[str]]] = field(default_factory=lambda: {"shop": (True, ["httpd", "sleeper"])})
    results: list[Any] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)
    clients: list[FakeClient] = field(default_factory=list)
    transport: ScriptedTransport = field(init=False)

    def __post_init__(self) -> None:
        self.transport = ScriptedTransport(self.clock)
        self.transport.on("guest-ping", Reply({}))


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> World:
    w = World()

    def running_pod(client: FakeClient, pod: str) -> FoundPod:
        if pod not in w.pods:
            raise HyperError(f"pod {pod} not found")
        running, names = w.pods[pod]
        if not running:
            raise DomainNotRunning(f"pod {pod} is not running")
        client.containers = names
        spec = {"name": pod, "containers": [{"name": n, "image": "busybox"} for n in names]}
        return FoundPod("dom-" + pod, CurrentPod("hyper-0000abcd", "uuid", spec, "running", True))  # type: ignore[arg-type]

    def run_in_container(agent: GuestAgent, container: str, argv: list[str], **kwargs: Any) -> Any:
        w.runs.append({"container": container, "argv": list(argv), **kwargs})
        if not w.results:
            return FakeResult()
        result = w.results.pop(0)
        if isinstance(result, Exception):
            raise result
        return result

    monkeypatch.setattr(hyper, "running_pod", running_pod)
    monkeypatch.setattr(hyper, "run_in_container", run_in_container)
    return w


def connection(world: World, host: str = "shop/httpd", **options: Any) -> hyper.Connection:
    conn = hyper.Connection(PlayContext())

    def open_client(uri: str) -> FakeClient:
        if uri == "qemu:///nowhere":
            raise LibvirtFailure(f"cannot connect to libvirt at {uri}")
        client = FakeClient([])
        world.clients.append(client)
        return client

    conn.open_client = open_client  # type: ignore[method-assign,assignment]
    conn.make_agent = lambda dom, name: GuestAgent(world.transport, name=name, clock=world.clock, sleep=world.clock.sleep)  # type: ignore[method-assign]
    conn._options.update(
        {
            "remote_addr": host,
            "default_container": None,
            "uri": "qemu:///system",
            "command_timeout": 600.0,
            "write_chunk_size": MAX_REQUEST_DATA,
            "read_chunk_size": 512 * 1024,
            "data_channel": False,
            "fetch_limit": 1024 * 1024 * 1024,
            "output_limit": 64 * 1024 * 1024,
            **options,
        }
    )
    return conn


# -- host names ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "default", "expected"),
    [
        ("shop/httpd", None, ("shop", "httpd")),
        ("shop", None, ("shop", None)),
        ("shop", "sleeper", ("shop", "sleeper")),
        ("shop/httpd", "sleeper", ("shop", "httpd")),
        ("shop/a.b_c-1", None, ("shop", "a.b_c-1")),
    ],
)
def test_parse_host(host: str, default: Optional[str], expected: tuple[str, Optional[str]]) -> None:
    assert hyper.parse_host(host, default) == expected


@pytest.mark.parametrize("host", ["", "/httpd", "shop/", "shop/a/b", "shop/Httpd", "shop/-x"])
def test_parse_host_refuses(host: str) -> None:
    with pytest.raises(AnsibleConnectionFailure, match="hyper connection"):
        hyper.parse_host(host, None)


def test_pick_container() -> None:
    assert hyper.pick_container("shop", None, ["only"]) == "only"
    assert hyper.pick_container("shop", "b", ["a", "b"]) == "b"
    with pytest.raises(AnsibleConnectionFailure, match=r"pod shop has 2 containers \(a, b\): name one as shop/CONTAINER"):
        hyper.pick_container("shop", None, ["a", "b"])
    with pytest.raises(AnsibleConnectionFailure, match=r"pod shop has no container c \(it has: a, b\)"):
        hyper.pick_container("shop", "c", ["a", "b"])


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/etc/motd", "/run/hyper/containers/c/rootfs/etc/motd"),
        ("tmp/x", "/run/hyper/containers/c/rootfs/tmp/x"),
        ("/a/../../../etc/shadow", "/run/hyper/containers/c/rootfs/etc/shadow"),
        ("/", "/run/hyper/containers/c/rootfs"),
    ],
)
def test_guest_path(world: World, path: str, expected: str) -> None:
    assert hyper.guest_path("c", path) == expected


# -- connecting ----------------------------------------------------------------------------------


def test_connect_single_container_pod(world: World) -> None:
    world.pods["solo"] = (True, ["app"])
    conn = connection(world, "solo")
    conn.exec_command("true")
    assert world.runs[0]["container"] == "app"


def test_connect_default_container(world: World) -> None:
    conn = connection(world, "shop", default_container="sleeper")
    conn.exec_command("true")
    assert world.runs[0]["container"] == "sleeper"


@pytest.mark.parametrize(
    ("host", "options", "message"),
    [
        ("gone/httpd", {}, "hyper connection to pod gone: pod gone not found"),
        ("stopped/httpd", {}, "hyper connection to pod stopped: pod stopped is not running"),
        ("shop", {}, "pod shop has 2 containers"),
        ("shop/db", {}, "pod shop has no container db"),
        ("shop/httpd", {"uri": "qemu:///nowhere"}, "cannot connect to libvirt at qemu:///nowhere"),
    ],
)
def test_connect_unreachable(world: World, host: str, options: dict[str, Any], message: str) -> None:
    world.pods["stopped"] = (False, ["httpd"])
    conn = connection(world, host, **options)
    with pytest.raises(AnsibleConnectionFailure, match=message):
        conn.exec_command("true")
    assert all(c.closed == 1 for c in world.clients)


def test_connect_agent_not_answering(world: World) -> None:
    world.transport.script["guest-ping"] = [Reply(raise_=AgentUnavailable("hyper-0000abcd: QEMU guest agent is not connected"))]
    conn = connection(world)
    with pytest.raises(AnsibleConnectionFailure, match="pod shop: hyper-0000abcd: QEMU guest agent is not connected"):
        conn.exec_command("true")
    assert world.clients[0].closed == 1


def test_close_and_reset(world: World) -> None:
    conn = connection(world)
    conn.exec_command("true")
    conn.reset()
    assert [c.closed for c in world.clients] == [1, 0]
    conn.close()
    assert [c.closed for c in world.clients] == [1, 1]
    assert not conn._connected


# -- commands ------------------------------------------------------------------------------------


def test_exec_runs_sh_c_with_stdin(world: World) -> None:
    world.results.append(FakeResult(rc=3, stdout=b"out \xff", stderr=b"err"))
    conn = connection(world, command_timeout=12.5)
    rc, out, err = conn.exec_command("echo 'héllo' | cat", in_data=b"module")
    assert (rc, out, err) == (3, b"out \xff", b"err")
    assert world.runs == [
        {
            "container": "httpd",
            "argv": ["/bin/sh", "-c", "echo 'héllo' | cat"],
            "stdin": b"module",
            "timeout": 12.5,
            "large_output": True,
            "output_limit": 64 * 1024 * 1024,
        }
    ]


def test_exec_runs_ansibles_wrapper_without_a_second_shell(world: World) -> None:
    conn = connection(world)
    conn.exec_command("/bin/sh -c 'echo ~ && sleep 0'")
    conn.exec_command("/bin/bash -c '/usr/bin/python3 && sleep 0'", in_data=b"module")
    assert [run["argv"] for run in world.runs] == [["/bin/sh", "-c", "echo ~"], ["/bin/bash", "-c", "/usr/bin/python3"]]


def test_exec_signal_death(world: World) -> None:
    world.results.append(FakeResult(rc=None, signal=9, stdout=b"partial"))
    rc, out, err = connection(world).exec_command("sleep 100")
    assert rc == 137
    assert out == b"partial"
    assert err == b""


def test_exec_truncated_output_is_reported(world: World) -> None:
    world.results.append(FakeResult(stdout=b"x", stdout_truncated=True))
    rc, _out, err = connection(world).exec_command("yes")
    assert rc == 0
    assert b"stdout was cut at 16 MiB" in err


def test_exec_timeout_fails_the_task(world: World) -> None:
    world.results.append(FakeResult(rc=None, signal=9, stdout=b"so far", timed_out=True))
    conn = connection(world, command_timeout=5.0)
    with pytest.raises(AnsibleError, match=r"pod shop container httpd: the command ran longer than 5.0s .* and was killed; stdout: 'so far'") as caught:
        conn.exec_command("sleep 100")
    assert not isinstance(caught.value, AnsibleConnectionFailure)


@pytest.mark.parametrize(
    ("error", "unreachable"),
    [
        (AgentTimeout("hyper-0000abcd: Guest agent not available for now"), True),
        (DomainNotRunning("hyper-0000abcd: domain is not running"), True),
        (ContainerError("httpd", "is stopped in pod shop (hyper-0000abcd), not running"), True),
        (HyperError("crun exec failed"), False),
    ],
)
def test_exec_errors(world: World, error: HyperError, unreachable: bool) -> None:
    world.results.append(error)
    with pytest.raises(AnsibleError, match=re.escape(f"pod shop container httpd: running a command: {error.message}")) as caught:
        connection(world).exec_command("true")
    assert isinstance(caught.value, AnsibleConnectionFailure) == unreachable


def script_writes(world: World, written: list[tuple[int, bytes]], handle: int = 7) -> None:
    world.transport.on("guest-file-open", Reply(handle))
    world.transport.on("guest-file-close", Reply({}))

    def write(request: dict[str, Any]) -> Reply:
        data = base64.b64decode(request["arguments"]["buf-b64"])
        written.append((request["arguments"]["handle"], data))
        return Reply({"count": len(data), "eof": False})

    world.transport.on("guest-file-write", write)
    world.transport.on("guest-exec", Reply({"pid": 42}))
    world.transport.on("guest-exec-status", Reply({"exited": True, "exitcode": 0}))


def test_exec_large_stdin_is_passed_whole(world: World) -> None:
    # The library sends stdin above one agent request through a guest file; the plugin hands it over as is.
    big = os.urandom(MAX_REQUEST_DATA * 3)
    connection(world).exec_command("python3", in_data=big)
    assert world.runs[0]["stdin"] == big


# -- files ---------------------------------------------------------------------------------------


def test_put_file_missing_source(world: World, tmp_path: Any) -> None:
    with pytest.raises(AnsibleFileNotFound):
        connection(world).put_file(str(tmp_path / "nope"), "/f")


def test_bad_chunk_size(world: World, tmp_path: Any) -> None:
    source = tmp_path / "f"
    source.write_bytes(b"abc")
    with pytest.raises(AnsibleError, match="write_chunk_size must be between 1 and 131072"):
        connection(world, write_chunk_size=MAX_REQUEST_DATA + 1).put_file(str(source), "/f")


class FakePusher:
    """Stands in for data_channel.Pusher: records pushes; ``free`` False means every port is busy."""

    def __init__(self, free: bool = True, error: Optional[HyperError] = None) -> None:
        self.free = free
        self.error = error
        self.pushes: list[tuple[bytes, int, str, Optional[int]]] = []

    def push(self, source: Any, size: int, target: str, mode: Optional[int], timeout: float, root: Optional[str] = None) -> Optional[int]:
        if self.error is not None:
            raise self.error
        if not self.free:
            return None
        self.pushes.append((source.read(), size, target, mode))
        return size


def channel_connection(world: World, pusher: FakePusher) -> hyper.Connection:
    conn = connection(world, data_channel=True)
    conn._make_pusher = lambda client, dom, agent: pusher  # type: ignore[method-assign,assignment,return-value]
    return conn


def test_no_data_channel_for_a_remote_uri(world: World) -> None:
    conn = connection(world, data_channel=True, uri="qemu+ssh://root@elsewhere/system")
    assert conn._make_pusher(FakeClient([]), "dom", GuestAgent(world.transport, name="x")) is None  # type: ignore[arg-type]


def test_the_play_connection_timeout_does_not_cut_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    # TaskExecutor passes task_keys={"timeout": <ansible_timeout, 10 by default>} to set_options on every task; an
    # option named "timeout" would take it and kill every command after 10 s.
    import yaml
    from ansible import constants as C

    # What the plugin loader does for the plugin's DOCUMENTATION.
    C.config.initialize_plugin_configuration_definitions("connection", "hyper.pods.hyper", yaml.safe_load(hyper.DOCUMENTATION)["options"])
    monkeypatch.delenv("ANSIBLE_HYPER_TIMEOUT", raising=False)
    conn = hyper.Connection(PlayContext())
    conn._load_name = "hyper.pods.hyper"
    conn.set_options(task_keys={"timeout": 10}, var_options={"ansible_host": "shop/httpd"})
    assert conn.get_option("command_timeout") == 600
    conn.set_options(task_keys={"timeout": 10}, var_options={"ansible_host": "shop/httpd", "ansible_hyper_timeout": 30})
    assert conn.get_option("command_timeout") == 30


def test_the_connections_agent_polls_at_its_own_pace() -> None:
    agent = hyper.Connection(PlayContext()).make_agent(object(), "pod shop (hyper-0000abcd)")
    assert agent.pace == hyper.POLL_PACE < 0.1
