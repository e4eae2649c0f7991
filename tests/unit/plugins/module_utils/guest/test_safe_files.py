# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""ContainerFiles against a guest whose file system is a local directory: links a container planted are never followed."""

from __future__ import annotations

import base64
import contextlib
import os
import tracemalloc
from typing import Any

import pytest

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import AgentError, SpecError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.agent import GuestAgent
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.safe_files import SAFE_IO_ARGV, ContainerFiles, container_path
from ansible_collections.hyper.pods.tests.unit.plugins.module_utils.fake_agent import FakeClock, Reply, ScriptedTransport
from ansible_collections.hyper.pods.tests.unit.plugins.module_utils.local_guest import LocalGuest, container_root, needs_local_guest, read_text


@pytest.mark.parametrize(
    ("path", "expected"),
    [("/etc/haproxy/haproxy.cfg", "etc/haproxy/haproxy.cfg"), ("etc//x", "etc/x"), ("/a/../../../b", "b"), ("/a/./b/", "a/b")],
)
def test_container_path_is_relative_and_normal(path: str, expected: str) -> None:
    assert container_path(path) == expected


@pytest.mark.parametrize("path", ["", "/", "/..", "a\x00b", None, 7])
def test_container_path_refuses(path: Any) -> None:
    with pytest.raises(SpecError):
        container_path(path)


@pytest.fixture
def guest(tmp_path: Any) -> LocalGuest:
    return LocalGuest(str(tmp_path))


@pytest.fixture
def files(guest: LocalGuest) -> ContainerFiles:
    container_root(guest)
    return ContainerFiles(GuestAgent(guest, name="vm"), "httpd")


@needs_local_guest
def test_write_read_rename_remove(guest: LocalGuest, files: ContainerFiles) -> None:
    root = container_root(guest)
    os.makedirs(os.path.join(root, "etc/haproxy"))
    assert files.write("/etc/haproxy/haproxy.cfg", b"global\n", 0o640) == 7
    assert read_text(os.path.join(root, "etc/haproxy/haproxy.cfg")) == "global\n"
    assert os.stat(os.path.join(root, "etc/haproxy/haproxy.cfg")).st_mode & 0o777 == 0o640
    assert files.read("/etc/haproxy/haproxy.cfg") == b"global\n"
    assert files.read("/etc/haproxy/missing") is None
    big = os.urandom(300 * 1024)  # above one agent request: staged in /run/hyper, then copied
    files.write("/etc/haproxy/big", big)
    assert files.read("/etc/haproxy/big") == big
    assert os.listdir(guest.path("/run/hyper/stage")) == []
    assert files.rename("/etc/haproxy/big", "/etc/haproxy/big2") is True
    assert files.rename("/etc/haproxy/big", "/etc/haproxy/big2") is False
    files.remove("/etc/haproxy/big2")
    assert sorted(os.listdir(os.path.join(root, "etc/haproxy"))) == ["haproxy.cfg"]
    # qemu-ga never opened a path below the container's root; the guest step did the work.
    assert not [p for p in guest.opened if "/rootfs" in p]
    assert all(argv[: len(SAFE_IO_ARGV)] == list(SAFE_IO_ARGV) for argv in guest.execs if argv[0] == "unshare")


@needs_local_guest
@pytest.mark.parametrize("planted", ["dir", "file", "fifo"])
def test_a_planted_link_is_never_followed(guest: LocalGuest, files: ContainerFiles, tmp_path: Any, planted: str) -> None:
    """Root in the container points /etc/haproxy (or the file itself) at the guest's hyper-container."""
    root = container_root(guest)
    victim_dir = tmp_path / "usr-sbin"
    victim_dir.mkdir()
    victim = victim_dir / "haproxy.cfg"
    victim.write_text("#!/bin/sh\n# the guest's own file\n")
    os.makedirs(os.path.join(root, "etc"))
    if planted == "dir":
        os.symlink(str(victim_dir), os.path.join(root, "etc/haproxy"))
    elif planted == "file":
        os.makedirs(os.path.join(root, "etc/haproxy"))
        os.symlink(str(victim), os.path.join(root, "etc/haproxy/haproxy.cfg"))
    else:
        os.makedirs(os.path.join(root, "etc/haproxy"))
        os.mkfifo(os.path.join(root, "etc/haproxy/haproxy.cfg"))
    if planted == "fifo":
        files.write("/etc/haproxy/haproxy.cfg", b"pwned\n")  # replaced by a rename, never opened
        assert read_text(os.path.join(root, "etc/haproxy/haproxy.cfg")) == "pwned\n"
    else:
        with pytest.raises(AgentError, match="link"):
            files.write("/etc/haproxy/haproxy.cfg", b"pwned\n")
        with pytest.raises(AgentError, match="symbolic link") if planted == "file" else contextlib.nullcontext():
            assert files.read("/etc/haproxy/haproxy.cfg") is None
        assert files.rename("/etc/haproxy/haproxy.cfg", "/etc/haproxy/x") is (planted == "file")
    assert victim.read_text() == "#!/bin/sh\n# the guest's own file\n"
    assert sorted(os.listdir(victim_dir)) == ["haproxy.cfg"]


@needs_local_guest
def test_a_fifo_is_not_read(guest: LocalGuest, files: ContainerFiles) -> None:
    root = container_root(guest)
    os.mkfifo(os.path.join(root, "pipe"))
    with pytest.raises(AgentError, match="not a regular file"):
        files.read("/pipe")


def test_a_read_that_never_ends_is_bounded_in_memory(transport: ScriptedTransport, clock: FakeClock) -> None:
    """A guest step that always answers a full chunk (a file that keeps growing): the read stops at its limit."""
    step = 2 * 1024 * 1024
    chunk = os.urandom(step)
    asked: list[int] = []

    def spawn(request: dict[str, Any]) -> Reply:
        asked.append(int(request["arguments"]["arg"][-1]))  # ... read PATH OFFSET COUNT
        return Reply({"pid": 5})

    def status(_request: dict[str, Any]) -> Reply:
        return Reply({"exited": True, "exitcode": 0, "out-data": base64.b64encode(chunk[: asked[-1]]).decode()})

    transport.on("guest-exec", spawn)
    transport.on("guest-exec-status", status)
    files = ContainerFiles(GuestAgent(transport, name="vm", clock=clock, sleep=clock.sleep), "httpd")
    seen: list[int] = []
    tracemalloc.start()
    try:
        with pytest.raises(AgentError, match="larger than the limit of 33554432 bytes"):
            files.read_into("/var/log/endless", lambda data: seen.append(len(data)), limit=32 * 1024 * 1024)
        _now, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sum(seen) <= 32 * 1024 * 1024
    assert peak < 6 * step  # a reply, its base64 and one chunk: never the whole 32 MiB
