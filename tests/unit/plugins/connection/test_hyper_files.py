# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The connection's put_file/fetch_file against a guest whose file system is a local directory (the real guest steps)."""

from __future__ import annotations

import os
from typing import Any, Optional

import pytest
from ansible.errors import AnsibleError, AnsibleFileNotFound

from ansible_collections.hyper.pods.plugins.connection import hyper
from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import AgentError, HyperError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.agent import GuestAgent
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.data_channel import STREAM_MIN_SIZE
from ansible_collections.hyper.pods.tests.unit.plugins.connection.test_hyper import World, connection, world  # noqa: F401  # pylint: disable=unused-import
from ansible_collections.hyper.pods.tests.unit.plugins.module_utils.local_guest import LocalGuest, container_root, needs_local_guest, read_text

pytestmark = needs_local_guest


@pytest.fixture
def guest(tmp_path: Any) -> LocalGuest:
    guest = LocalGuest(str(tmp_path / "guest"))
    container_root(guest)
    return guest


def local_connection(world: World, guest: LocalGuest, **options: Any) -> hyper.Connection:  # noqa: F811
    conn = connection(world, **options)
    conn.make_agent = lambda dom, name: GuestAgent(guest, name=name)  # type: ignore[method-assign]
    return conn


def test_put_and_fetch_small_and_large(world: World, guest: LocalGuest, tmp_path: Any) -> None:  # noqa: F811
    root = container_root(guest)
    os.makedirs(os.path.join(root, "tmp"))
    conn = local_connection(world, guest)
    for name, size in (("small", 1000), ("large", 3 * 128 * 1024 + 5), ("empty", 0)):
        source = tmp_path / name
        data = os.urandom(size)
        source.write_bytes(data)
        source.chmod(0o750)
        conn.put_file(str(source), f"/tmp/{name}")
        with open(os.path.join(root, "tmp", name), "rb") as handle:
            assert handle.read() == data
        assert os.stat(os.path.join(root, "tmp", name)).st_mode & 0o777 == 0o750
        back = tmp_path / f"{name}.back"
        conn.fetch_file(f"/tmp/{name}", str(back))
        assert back.read_bytes() == data
    assert sorted(os.listdir(os.path.join(root, "tmp"))) == ["empty", "large", "small"]  # no temporary left
    assert os.listdir(guest.path("/run/hyper/stage")) == []
    assert not [p for p in guest.opened if "/rootfs" in p]  # qemu-ga never opened a path in the container


@pytest.mark.parametrize("where", ["/etc/evil/target", "/etc/link.cfg"])
def test_put_and_fetch_never_leave_the_container(world: World, guest: LocalGuest, tmp_path: Any, where: str) -> None:  # noqa: F811
    """Links the container planted resolve inside it (its own file), never to the guest's file they name."""
    root = container_root(guest)
    outside = tmp_path / "guest-own"
    outside.mkdir()
    (outside / "target").write_text("guest's own\n")
    own = root + str(outside)
    os.makedirs(own)
    with open(os.path.join(own, "target"), "w", encoding="utf-8") as handle:
        handle.write("container's own\n")
    os.makedirs(os.path.join(root, "etc"))
    os.symlink(str(outside), os.path.join(root, "etc/evil"))
    os.symlink(str(outside / "target"), os.path.join(root, "etc/link.cfg"))
    conn = local_connection(world, guest)
    conn.fetch_file(where, str(tmp_path / "fetched"))
    assert (tmp_path / "fetched").read_text() == "container's own\n"
    source = tmp_path / "payload"
    source.write_text("new\n")
    conn.put_file(str(source), where)
    assert read_text(os.path.join(own, "target")) == "new\n"
    assert read_text(str(outside / "target")) == "guest's own\n"
    assert os.listdir(outside) == ["target"]


def test_fetch_limit_and_missing(world: World, guest: LocalGuest, tmp_path: Any) -> None:  # noqa: F811
    root = container_root(guest)
    with open(os.path.join(root, "big"), "wb") as handle:
        handle.write(b"x" * 5000)
    conn = local_connection(world, guest, fetch_limit=4096, read_chunk_size=1024)
    with pytest.raises(AnsibleError, match=r"larger than fetch_limit \(4096 bytes"):
        conn.fetch_file("/big", str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()
    with pytest.raises(AnsibleFileNotFound, match="does not exist"):
        conn.fetch_file("/nope", str(tmp_path / "out"))


def test_a_fifo_as_source_fails_at_once(world: World, guest: LocalGuest, tmp_path: Any) -> None:  # noqa: F811
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(AnsibleFileNotFound, match="not a regular file"):
        local_connection(world, guest).put_file(str(fifo), "/x")


class FailingPusher:
    def __init__(self, error: Optional[HyperError]) -> None:
        self.error = error
        self.calls = 0

    def push(self, source: Any, size: int, target: str, mode: Optional[int], timeout: float, root: Optional[str] = None) -> Optional[int]:
        self.calls += 1
        if self.error is not None:
            raise self.error
        return None


@pytest.mark.parametrize("error", [AgentError("the guest stopped reading before all of x was sent: 0+0 records in"), None])
def test_a_failed_or_busy_data_channel_falls_back_to_the_agent(world: World, guest: LocalGuest, tmp_path: Any, error: Optional[HyperError]) -> None:  # noqa: F811
    root = container_root(guest)
    pusher = FailingPusher(error)
    conn = local_connection(world, guest, data_channel=True)
    conn._make_pusher = lambda client, dom, agent: pusher  # type: ignore[method-assign,assignment,return-value]
    data = os.urandom(STREAM_MIN_SIZE + 10)
    (tmp_path / "big").write_bytes(data)
    conn.put_file(str(tmp_path / "big"), "/big")
    conn.put_file(str(tmp_path / "big"), "/big2")
    with open(os.path.join(root, "big"), "rb") as one, open(os.path.join(root, "big2"), "rb") as two:
        assert one.read() == data and two.read() == data
    # A failed channel is not tried again on this connection; a busy one is.
    assert pusher.calls == (1 if error is not None else 2)
