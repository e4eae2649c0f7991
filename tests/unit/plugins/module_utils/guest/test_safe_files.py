# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""ContainerFiles against a guest whose file system is a local directory: links a container planted are never followed."""

from __future__ import annotations

import base64
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
@pytest.mark.parametrize("planted", ["absolute dir", "relative dir climbing out", "absolute file", "fifo"])
def test_a_planted_link_resolves_inside_the_container(guest: LocalGuest, files: ContainerFiles, tmp_path: Any, planted: str) -> None:
    """Root in the container points /etc/haproxy (or the file itself) at the guest's /usr/sbin: it gets its own /usr/sbin."""
    root = container_root(guest)
    guest_dir = str(tmp_path / "usr-sbin")  # stands for the guest's /usr/sbin, where a link followed from outside lands
    os.makedirs(guest_dir)
    with open(os.path.join(guest_dir, "haproxy.cfg"), "w", encoding="utf-8") as handle:
        handle.write("the guest's own\n")
    own_dir = root + guest_dir  # the same path inside the container: its own
    os.makedirs(own_dir)
    with open(os.path.join(own_dir, "haproxy.cfg"), "w", encoding="utf-8") as handle:
        handle.write("the container's own\n")
    os.makedirs(os.path.join(root, "etc"))
    link = os.path.join(root, "etc/haproxy")
    if planted == "absolute dir":
        os.symlink(guest_dir, link)
    elif planted == "relative dir climbing out":
        os.symlink("../" * 30 + guest_dir.lstrip("/"), link)
    else:
        os.makedirs(link)
        if planted == "absolute file":
            os.symlink(os.path.join(guest_dir, "haproxy.cfg"), os.path.join(link, "haproxy.cfg"))
        else:
            os.mkfifo(os.path.join(link, "haproxy.cfg"))
    if planted != "fifo":
        assert files.read("/etc/haproxy/haproxy.cfg") == b"the container's own\n"  # never the guest's
    files.write("/etc/haproxy/haproxy.cfg", b"new\n")
    assert read_text(os.path.join(guest_dir, "haproxy.cfg")) == "the guest's own\n"
    assert sorted(os.listdir(guest_dir)) == ["haproxy.cfg"]
    written = os.path.join(link, "haproxy.cfg") if planted == "fifo" else os.path.join(own_dir, "haproxy.cfg")
    assert read_text(written) == "new\n"
    assert files.rename("/etc/haproxy/haproxy.cfg", "/etc/haproxy/moved") is True
    assert read_text(os.path.join(guest_dir, "haproxy.cfg")) == "the guest's own\n"


@needs_local_guest
def test_a_link_loop_is_an_error(guest: LocalGuest, files: ContainerFiles) -> None:
    root = container_root(guest)
    os.symlink("b", os.path.join(root, "a"))
    os.symlink("a", os.path.join(root, "b"))
    with pytest.raises(AgentError, match="too many symbolic links"):
        files.write("/a/x", b"x")


@needs_local_guest
def test_a_link_swapped_in_after_resolution_is_not_followed(guest: LocalGuest, files: ContainerFiles, tmp_path: Any) -> None:
    """The view itself (nosymfollow) refuses a link the script did not resolve: what a racing container would plant."""
    root = container_root(guest)
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(str(outside), os.path.join(root, "d"))
    # The script's own resolution is skipped by asking the kernel directly through the view, as a race would.
    argv = [
        *SAFE_IO_ARGV[:-2],
        'mkdir -p /run/hyper/view && mount --bind "$1" /run/hyper/view && mount -o remount,bind,nosymfollow /run/hyper/view && echo x > /run/hyper/view/d/f',
        "t",
    ]
    result = files.agent.exec([*argv, root.replace(guest.run_dir, "/run/hyper")])
    assert result.rc != 0 and b"Too many levels of symbolic links" in result.stderr
    assert os.listdir(outside) == []


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
