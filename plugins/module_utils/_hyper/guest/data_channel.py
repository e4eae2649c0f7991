# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""Bulk copies into the guest over a virtio-serial data channel, beside the guest agent.

The agent carries file data as base64 in JSON, at most 128 KiB a request (qemu-ga 7.2 hangs on
larger ones): about 3.8 MiB/s under TCG. A pod VM therefore has ``DATA_CHANNELS``, extra
virtio-serial ports (``org.hyper.pods.data.N``) whose host ends are unix sockets QEMU listens on.

A push:

1. takes a free port: an exclusive ``flock`` on a lock file of the host (one copy per port);
2. starts ``PUSH_SCRIPT`` in the guest through the agent (an argv list, never a joined string):
   ``dd`` reads exactly size + 32 bytes from the port into a temporary file beside the target;
3. sends the bytes and a random 32-byte trailer over the socket; while the socket does not take
   data, asks the agent whether the reader still runs, so a reader that died is an error at once;
4. waits for the script: it checks the trailer (a byte lost, or stale bytes from an earlier copy,
   shifts it and fails the copy), cuts it off, sets the mode and renames the file onto the target.

Only a controller on the hyper host itself (a local libvirt URI) can reach the sockets; with a
remote URI, a pod made before the channels existed, or all ports busy, ``push`` returns None and
the caller uses the agent's file calls.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import re
import secrets
import socket
import stat
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import BinaryIO, Callable, Iterator, Optional
from urllib.parse import urlsplit

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import AgentError, AgentTimeout, HyperError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.agent import GuestAgent
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.safe_files import SAFE_IO_ARGV
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.scripts import push
from ansible_collections.hyper.pods.plugins.module_utils._hyper.host.locks import secure_dir, try_lock

DATA_CHANNEL_PREFIX = "org.hyper.pods.data."
DATA_CHANNEL_COUNT = 2
DATA_CHANNELS = tuple(f"{DATA_CHANNEL_PREFIX}{index}" for index in range(DATA_CHANNEL_COUNT))
# Below this size one or two agent writes cost less than starting a reader in the guest.
STREAM_MIN_SIZE = 256 * 1024
SEND_BLOCK = 256 * 1024
TRAILER_BYTES = 32
# Seconds the socket may refuse data before the agent is asked whether the reader still runs.
IDLE_CHECK = 1.0
RUN_LOCK_DIR = "/run/hyper-pods"
_LOCK_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,200}$")

PUSH_SCRIPT = push.SCRIPT


@dataclass(frozen=True)
class DataChannel:
    """One data port: its name in the guest and the path of its unix socket on the host."""

    name: str
    path: str

    @property
    def guest_device(self) -> str:
        return f"/dev/virtio-ports/{self.name}"


def is_local_uri(uri: str) -> bool:
    """True for a libvirt URI of this host (``qemu:///system``, ``qemu+unix:///system``)."""
    parts = urlsplit(uri)
    return parts.scheme in ("qemu", "qemu+unix") and not parts.netloc


def data_channels(domain_xml: str) -> list[DataChannel]:
    """The data ports of a live domain's XML, in name order; ports without a socket path are left out."""
    found: list[DataChannel] = []
    root = ET.fromstring(domain_xml)
    for channel in root.findall("./devices/channel[@type='unix']"):
        target = channel.find("target")
        source = channel.find("source")
        name = target.get("name", "") if target is not None else ""
        path = source.get("path", "") if source is not None else ""
        if name.startswith(DATA_CHANNEL_PREFIX) and path:
            found.append(DataChannel(name, path))
    return sorted(found, key=lambda c: c.name)


def usable_channels(channels: list[DataChannel]) -> list[DataChannel]:
    """The ports whose socket this process can reach (root on the hyper host)."""
    usable = []
    for channel in channels:
        try:
            if stat.S_ISSOCK(os.stat(channel.path).st_mode) and os.access(channel.path, os.R_OK | os.W_OK):
                usable.append(channel)
        except OSError:
            continue
    return usable


def push_argv(channel: DataChannel, temporary: str, size: int, trailer: str, mode: Optional[int], target: str, root: Optional[str] = None) -> list[str]:
    """The guest argv of one push; every value is a separate argument of a fixed script.

    With ``root`` (a container's root file system), ``temporary`` and ``target`` are relative to it and the
    script runs in a mount namespace of its own, through a nosymfollow view of it (guest/safe_files.py).
    """
    mode_text = format(mode, "o") if mode is not None else ""
    argv = ["/bin/sh", "-c", PUSH_SCRIPT, "hyper-push", channel.guest_device, temporary, str(size + TRAILER_BYTES), trailer, str(size), mode_text, target]
    if root is None:
        return argv
    return ["unshare", "-m", "--propagation", "private", *argv, root]


def temporary_path(target: str, token: str, relative: bool = False) -> str:
    """A hidden file beside ``target`` (same directory, so the final rename is atomic)."""
    directory, base = posixpath.split(target)
    return posixpath.join(directory if relative else directory or "/", f".{base}.hyper-{token}")


def lock_dir() -> str:
    """A directory only this user can use (0700, never a symlink): /run/hyper-pods for root, else one per uid in the temp dir."""
    base = RUN_LOCK_DIR if os.geteuid() == 0 else os.path.join(tempfile.gettempdir(), f"hyper-pods-{os.geteuid()}")
    return secure_dir(base, "the data channel")


def _lock_path(domain_key: str, channel: DataChannel) -> str:
    if not _LOCK_NAME.fullmatch(f"{domain_key}.{channel.name}"):
        raise HyperError(f"the data channel: {domain_key!r}/{channel.name!r} cannot name a lock file")
    return os.path.join(lock_dir(), f"hyper-pods.{domain_key}.{channel.name}.lock")


class Pusher:
    """Pushes one file at a time over a free data port of one domain."""

    def __init__(
        self,
        agent: GuestAgent,
        channels: list[DataChannel],
        domain_key: str,
        *,
        connect: Optional[Callable[[str], socket.socket]] = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.agent = agent
        self.channels = channels
        self.domain_key = domain_key
        self._connect = connect or _connect_unix
        self._clock = clock

    def push(self, source: BinaryIO, size: int, target: str, mode: Optional[int], timeout: float, root: Optional[str] = None) -> Optional[int]:
        """Copy ``size`` bytes of ``source`` to the guest file ``target``; None when no port is free.

        With ``root``, ``target`` is relative to that container root and no link in it is followed.
        """
        for channel in self.channels:
            # O_NOFOLLOW in a root-only directory; the file goes once the copy is done (host/locks.py).
            # Held for the whole copy: connect, reader, data, the reader's exit.
            with try_lock(_lock_path(self.domain_key, channel), "a data channel copy") as mine:
                if mine:
                    return self._push_on(channel, source, size, target, mode, timeout, root)
        return None

    def _push_on(self, channel: DataChannel, source: BinaryIO, size: int, target: str, mode: Optional[int], timeout: float, root: Optional[str]) -> int:
        deadline = self._clock() + timeout
        temporary = temporary_path(target, secrets.token_hex(4), relative=root is not None)
        trailer = secrets.token_hex(TRAILER_BYTES // 2)
        finished = False
        pid: Optional[int] = None
        try:
            # Connect before the reader starts: the guest sees the host end connected sooner (a read of
            # an unconnected port is end-of-file, which the reader now waits out instead of failing on).
            with contextlib.closing(self._connect(channel.path)) as sock:
                pid = self.agent.spawn(push_argv(channel, temporary, size, trailer, mode, target, root))
                sock.settimeout(IDLE_CHECK)
                self._send(sock, pid, _blocks(source, size, trailer.encode("ascii")), deadline, target)
                result = self.agent.wait(pid, max(deadline - self._clock(), 1.0), what=f"the reader of {channel.name}")
            finished = True
        except OSError as err:
            raise AgentError(f"{self.agent.name}: copying to {target} over {channel.name}: {err}") from None
        finally:
            if not finished and pid is not None:
                self._abandon(pid, temporary, root)
        if result.rc != 0:
            detail = result.stderr.decode("utf-8", "replace").strip() or f"exit status {result.rc}, signal {result.signal}"
            raise AgentError(f"{self.agent.name}: copying to {target} over {channel.name} failed: {detail}")
        return size

    def _send(self, sock: socket.socket, pid: int, blocks: Iterator[bytes], deadline: float, target: str) -> None:
        for block in blocks:
            view = memoryview(block)
            while view:
                try:
                    sent = sock.send(view)
                except socket.timeout:
                    sent = 0
                if sent:
                    view = view[sent:]
                    continue
                done = self.agent.poll(pid)
                if done is not None:
                    detail = done.stderr.decode("utf-8", "replace").strip() or f"exit status {done.rc}"
                    raise AgentError(f"{self.agent.name}: the guest stopped reading before all of {target} was sent: {detail}")
                if self._clock() > deadline:
                    raise AgentTimeout(f"{self.agent.name}: copying to {target} did not finish in time")

    def _abandon(self, pid: int, temporary: str, root: Optional[str]) -> None:
        """After a failure: stop the reader and remove its temporary file; never hide the first error."""
        with contextlib.suppress(HyperError):
            if self.agent.poll(pid) is None:
                self.agent.kill(pid)
            # The reader removes it itself when it fails; a killed one cannot (and its view is gone with it).
            self.agent.exec(["rm", "-f", temporary] if root is None else [*SAFE_IO_ARGV, root, "remove", temporary])


def _blocks(source: BinaryIO, size: int, trailer: bytes) -> Iterator[bytes]:
    left = size
    while left:
        block = source.read(min(SEND_BLOCK, left))
        if not block:
            raise AgentError(f"the source ended {left} bytes early (it shrank while being copied)")
        left -= len(block)
        yield block
    yield trailer


def _connect_unix(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(10)
        sock.connect(path)
    except OSError:
        sock.close()
        raise
    return sock
