# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""data_channel: the XML and URI checks, and Pusher against a fake guest reading a real socket pair."""

from __future__ import annotations

import base64
import fcntl
import io
import os
import socket
import threading
from typing import Any, Optional

import pytest

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import AgentError, HyperError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest import data_channel as dc
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.agent import GuestAgent
from ansible_collections.hyper.pods.plugins.module_utils._hyper.host.locks import secure_dir
from ansible_collections.hyper.pods.plugins.module_utils._hyper.virt.domain_xml import DomainSpec, render_domain_xml
from ansible_collections.hyper.pods.tests.unit.plugins.module_utils.fake_agent import FakeClock, Reply, ScriptedTransport

LIVE_XML = """<domain type='qemu'><name>hyper-1</name><devices>
  <channel type='unix'><source mode='bind' path='/run/libvirt/qemu/channel/1-hyper-1/org.qemu.guest_agent.0'/>
    <target type='virtio' name='org.qemu.guest_agent.0' state='connected'/></channel>
  <channel type='unix'><source mode='bind' path='/run/c/org.hyper.pods.data.1'/><target type='virtio' name='org.hyper.pods.data.1'/></channel>
  <channel type='unix'><source mode='bind' path='/run/c/org.hyper.pods.data.0'/><target type='virtio' name='org.hyper.pods.data.0'/></channel>
  <channel type='unix'><source mode='bind'/><target type='virtio' name='org.hyper.pods.data.2'/></channel>
  <channel type='pty'><target type='virtio' name='org.hyper.pods.data.3'/></channel>
</devices></domain>"""


def test_data_channels_from_live_xml() -> None:
    # Sorted by name; a port without a socket path (not running) or not a unix socket is left out.
    assert dc.data_channels(LIVE_XML) == [
        dc.DataChannel("org.hyper.pods.data.0", "/run/c/org.hyper.pods.data.0"),
        dc.DataChannel("org.hyper.pods.data.1", "/run/c/org.hyper.pods.data.1"),
    ]
    assert dc.data_channels("<domain><devices/></domain>") == []


@pytest.mark.parametrize(
    ("uri", "local"),
    [
        ("qemu:///system", True),
        ("qemu:///session", True),
        ("qemu+unix:///system", True),
        ("qemu+ssh://root@host/system", False),
        ("qemu+tcp://host/system", False),
        ("qemu://host/system", False),
        ("test:///default", False),
    ],
)
def test_is_local_uri(uri: str, local: bool) -> None:
    assert dc.is_local_uri(uri) is local


def test_usable_channels_needs_a_socket(tmp_path: Any) -> None:
    listening = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    path = str(tmp_path / "sock")
    listening.bind(path)
    try:
        plain = tmp_path / "file"
        plain.write_text("x")
        channels = [dc.DataChannel("a", path), dc.DataChannel("b", str(plain)), dc.DataChannel("c", str(tmp_path / "missing"))]
        assert dc.usable_channels(channels) == [channels[0]]
    finally:
        listening.close()


def test_push_argv_passes_every_value_as_its_own_argument() -> None:
    channel = dc.DataChannel("org.hyper.pods.data.0", "/x")
    argv = dc.push_argv(channel, "/r/.f; rm -rf /.hyper-1", 10, "t" * 32, 0o640, "/r/f; rm -rf /")
    assert argv[:2] == ["/bin/sh", "-c"]
    assert argv[2] == dc.PUSH_SCRIPT
    assert argv[3:] == ["hyper-push", "/dev/virtio-ports/org.hyper.pods.data.0", "/r/.f; rm -rf /.hyper-1", "42", "t" * 32, "10", "640", "/r/f; rm -rf /"]
    assert dc.push_argv(channel, "/t", 0, "x", None, "/f")[9] == ""


@pytest.mark.parametrize(
    ("target", "expected"),
    [("/run/a/file.txt", "/run/a/.file.txt.hyper-ab12"), ("/file", "/.file.hyper-ab12"), ("rel", "/.rel.hyper-ab12")],
)
def test_temporary_path_is_beside_the_target(target: str, expected: str) -> None:
    assert dc.temporary_path(target, "ab12") == expected


def test_domain_xml_has_the_data_channels() -> None:
    spec = DomainSpec(
        name="hyper-1",
        title="t",
        memory_mib=128,
        vcpus=1,
        accelerator="tcg",
        kernel="/k",
        initrd="/i",
        cmdline="c",
        console_log="/l",
        data_channels=dc.DATA_CHANNELS,
    )
    xml = render_domain_xml(spec)
    assert xml.count('<channel type="unix">') == 1 + dc.DATA_CHANNEL_COUNT
    assert '<target type="virtio" name="org.hyper.pods.data.0" />' in xml
    assert '<target type="virtio" name="org.hyper.pods.data.1" />' in xml


class FakeReader:
    """The guest side of a push: reads the port (one end of a socket pair) and runs PUSH_SCRIPT's checks."""

    def __init__(self, transport: ScriptedTransport, peer: socket.socket, *, die_at_once: Optional[bytes] = None) -> None:
        self.peer = peer
        self.die_at_once = die_at_once
        self.files: dict[str, tuple[bytes, str]] = {}
        self.argv: list[str] = []
        self.removed: list[str] = []
        self.killed = False
        self.received = b""
        self._thread: Optional[threading.Thread] = None
        transport.on("guest-exec", self.exec)
        transport.on("guest-exec-status", self.status)

    def exec(self, request: dict[str, Any]) -> Reply:
        args = request["arguments"]
        argv = [args["path"], *args["arg"]]
        if argv[0] == "rm":
            self.removed.append(argv[-1])
            return Reply({"pid": 2})
        if argv[0] == "kill":
            self.killed = True
            return Reply({"pid": 3})
        self.argv = argv
        if self.die_at_once is None:
            self._thread = threading.Thread(target=self._read, args=(int(argv[6]),))
            self._thread.start()
        return Reply({"pid": 1})

    def _read(self, count: int) -> None:
        while len(self.received) < count:
            data = self.peer.recv(count - len(self.received))
            if not data:
                break
            self.received += data

    def status(self, request: dict[str, Any]) -> Reply:
        if request["arguments"]["pid"] != 1:
            return Reply({"exited": True, "exitcode": 0})
        if self.die_at_once is not None:
            return Reply({"exited": True, "exitcode": 3, "err-data": base64.b64encode(self.die_at_once).decode()})
        assert self._thread is not None
        self._thread.join(timeout=0.01)
        if self._thread.is_alive():
            return Reply({"exited": False})
        _tmp, _count, trailer, size, mode, target = self.argv[5:]
        if self.received[-32:] != trailer.encode():
            return Reply({"exited": True, "exitcode": 3, "err-data": base64.b64encode(b"the data did not end with its trailer").decode()})
        self.files[target] = (self.received[: int(size)], mode)
        return Reply({"exited": True, "exitcode": 0})


@pytest.fixture
def pair() -> Any:
    ours, peer = socket.socketpair()
    yield ours, peer
    peer.close()


@pytest.fixture(autouse=True)
def locks_in_tmp(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(dc, "lock_dir", lambda: str(tmp_path))
    return str(tmp_path)


def make_pusher(transport: ScriptedTransport, clock: FakeClock, ours: socket.socket, channels: int = 1) -> dc.Pusher:
    agent = GuestAgent(transport, name="vm", clock=clock, sleep=clock.sleep)
    names = [dc.DataChannel(f"org.hyper.pods.data.{i}", f"/sock{i}") for i in range(channels)]
    return dc.Pusher(agent, names, "uuid-1", connect=lambda _path: ours)


def test_push_sends_the_bytes_and_the_trailer(pair: Any) -> None:
    ours, peer = pair
    clock = FakeClock()
    transport = ScriptedTransport(clock)
    reader = FakeReader(transport, peer)
    data = os.urandom(600 * 1024 + 7)
    pushed = make_pusher(transport, clock, ours).push(io.BytesIO(data), len(data), "/run/c/rootfs/tmp/f", 0o755, 30)
    assert pushed == len(data)
    assert reader.files["/run/c/rootfs/tmp/f"] == (data, "755")
    assert reader.argv[5].startswith("/run/c/rootfs/tmp/.f.hyper-")
    assert len(reader.received) == len(data) + dc.TRAILER_BYTES


def test_push_reports_a_reader_that_died(pair: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    ours, peer = pair
    monkeypatch.setattr(dc, "IDLE_CHECK", 0.05)
    clock = FakeClock()
    transport = ScriptedTransport(clock)
    reader = FakeReader(transport, peer, die_at_once=b"dd: can't open '/run/c/rootfs/nodir/.f': No such file or directory")
    data = os.urandom(4 * 1024 * 1024)  # more than the socket buffers hold
    with pytest.raises(AgentError, match="stopped reading before all of /run/c/rootfs/nodir/f was sent: dd: can't open"):
        make_pusher(transport, clock, ours).push(io.BytesIO(data), len(data), "/run/c/rootfs/nodir/f", None, 30)
    assert reader.removed and reader.removed[0].startswith("/run/c/rootfs/nodir/.f.hyper-")
    assert not reader.killed  # it had exited already


def test_push_fails_when_the_trailer_is_wrong(pair: Any) -> None:
    ours, peer = pair
    clock = FakeClock()
    transport = ScriptedTransport(clock)
    reader = FakeReader(transport, peer)
    reader.received = b"stale"  # bytes left on the port by an earlier copy shift the trailer
    data = os.urandom(300 * 1024)
    with pytest.raises(AgentError, match=r"over org\.hyper\.pods\.data\.0 failed: the data did not end with its trailer"):
        make_pusher(transport, clock, ours).push(io.BytesIO(data), len(data), "/f", None, 30)


def test_push_fails_when_the_source_shrinks(pair: Any) -> None:
    ours, peer = pair
    clock = FakeClock()
    transport = ScriptedTransport(clock)
    reader = FakeReader(transport, peer)
    data = os.urandom(300 * 1024)
    with pytest.raises(AgentError, match="ended 1000 bytes early"):
        make_pusher(transport, clock, ours).push(io.BytesIO(data), len(data) + 1000, "/f", None, 30)
    # The socket is closed, the reader sees the end and fails; its temporary file is removed.
    assert reader.removed


def test_push_returns_none_when_every_port_is_busy(pair: Any, locks_in_tmp: str) -> None:
    ours, _peer = pair
    clock = FakeClock()
    transport = ScriptedTransport(clock)
    held = []
    for index in range(2):
        fd = os.open(os.path.join(locks_in_tmp, f"hyper-pods.uuid-1.org.hyper.pods.data.{index}.lock"), os.O_RDWR | os.O_CREAT)
        fcntl.flock(fd, fcntl.LOCK_EX)
        held.append(fd)
    try:
        # flock locks belong to the open file, so a second open in this process is refused like another process.
        assert make_pusher(transport, clock, ours, channels=2).push(io.BytesIO(b"x" * 10), 10, "/f", None, 30) is None
        assert transport.requests == []
    finally:
        for fd in held:
            os.close(fd)


def test_push_takes_the_next_free_port(pair: Any, locks_in_tmp: str) -> None:
    ours, peer = pair
    clock = FakeClock()
    transport = ScriptedTransport(clock)
    reader = FakeReader(transport, peer)
    fd = os.open(os.path.join(locks_in_tmp, "hyper-pods.uuid-1.org.hyper.pods.data.0.lock"), os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        data = os.urandom(300 * 1024)
        assert make_pusher(transport, clock, ours, channels=2).push(io.BytesIO(data), len(data), "/f", None, 30) == len(data)
    finally:
        os.close(fd)
    assert reader.argv[4] == "/dev/virtio-ports/org.hyper.pods.data.1"
    assert reader.files["/f"] == (data, "")


def test_the_lock_is_in_a_root_only_directory_and_goes_after_use(pair: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    ours, peer = pair
    base = os.path.join(str(tmp_path), "run-hyper-pods")
    monkeypatch.setattr(dc, "lock_dir", lambda: secure_dir(base, "test"))
    clock = FakeClock()
    transport = ScriptedTransport(clock)
    FakeReader(transport, peer)
    data = b"z" * 1000
    assert make_pusher(transport, clock, ours).push(io.BytesIO(data), len(data), "/f", None, 30) == len(data)
    assert os.stat(base).st_mode & 0o777 == 0o700
    assert os.listdir(base) == []  # removed after use
    with pytest.raises(HyperError, match="cannot name a lock file"):
        dc._lock_path("../../etc/x", dc.DataChannel("org.hyper.pods.data.0", "/s"))
