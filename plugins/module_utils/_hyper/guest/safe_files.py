# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""ContainerFiles: host reads and writes by path in a container that links planted there cannot lead out of it.

qemu-ga's guest-file-open follows symbolic links, and root in a container controls every link in
its root file system: a host write to ``<rootfs>/etc/haproxy/haproxy.cfg`` through the agent lands
wherever ``/etc/haproxy`` points in the guest (``/usr/sbin``, say). So no host read or write by
path below a container's root goes through guest-file-open. Each is one guest-exec of a fixed
script (guest/scripts/safe_io.py) that, in a mount namespace of its own, binds the container's root
on a view mounted ``nosymfollow,nodev,nosuid`` and resolves the path's links itself, inside that
root (as ``openat2(RESOLVE_IN_ROOT)`` would: an absolute link means the container's path). The
kernel refuses to follow any link left on the result (ELOOP, what a racing container could swap
in), opens no device node, and the namespace goes with the step. Writes go to a random temporary
name beside the target and are renamed onto it (a FIFO there is replaced, never opened). Reads
take a regular file only, in bounded chunks.

What the host writes or reads under the guest's own ``/run/hyper`` (outside every container root)
still uses the agent's file calls: that tree belongs to guest root, trusted from its boot.
"""

from __future__ import annotations

import posixpath
import secrets
from typing import Callable, Optional

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import AgentError, SpecError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest import layout
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.agent import MAX_REQUEST_DATA, READ_LIMIT, ExecResult, GuestAgent
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.scripts import safe_io

SAFE_IO_SCRIPT = safe_io.SCRIPT
SAFE_IO_ARGV: tuple[str, ...] = ("unshare", "-m", "--propagation", "private", "sh", "-c", SAFE_IO_SCRIPT, "hyper-safe-io")
# One read step's output comes back in one guest-exec-status reply (base64 under libvirt's 4 MiB).
READ_STEP = 2 * 1024 * 1024
# Data above one agent request is staged in the guest's own /run/hyper first, then copied by the step.
STAGE_DIR = f"{layout.RUN_DIR}/stage"
STEP_TIMEOUT = 60.0
MISSING = 2


def container_path(path: object, option: str = "path") -> str:
    """``path`` of a container as a relative path with no ``.``/``..``/empty components; SpecError otherwise."""
    if not isinstance(path, str) or not path or "\x00" in path:
        raise SpecError(option, path, "must be a path in the container, without NUL")
    relative = posixpath.normpath(posixpath.join("/", path)).lstrip("/")
    if not relative or relative == ".":
        raise SpecError(option, path, "names the container's root directory, not a file")
    return relative


def mode_argument(mode: Optional[int]) -> str:
    """The step's MODE: empty (the default 0644), ``uNNN`` (a mode within 0666, given by the umask at creation:
    one process start less in the guest), or the octal mode for chmod."""
    if mode is None:
        return ""
    if mode & ~0o666 == 0:
        return "u" + format(0o777 & ~mode, "03o")
    return format(mode, "o")


def _why(result: ExecResult) -> str:
    text = (result.stderr or result.stdout).decode("utf-8", "replace").strip()[-500:]
    return text or (f"exit code {result.rc}" if result.rc is not None else f"signal {result.signal}")


class ContainerFiles:
    """Files below ``root`` (a container's root file system in the guest), through the guest-side step."""

    def __init__(self, agent: GuestAgent, container: str, *, root: Optional[str] = None, timeout: float = STEP_TIMEOUT) -> None:
        self.agent = agent
        self.container = layout.check_container_name(container)
        self.root = root or layout.container_rootfs(container)
        self.timeout = timeout

    def _step(self, args: list[str], stdin: Optional[bytes] = None) -> ExecResult:
        return self.agent.exec([*SAFE_IO_ARGV, self.root, *args], stdin=stdin, timeout=self.timeout)

    def _fail(self, what: str, path: str, result: ExecResult) -> AgentError:
        return AgentError(f"{self.agent.name}: {what} /{path} in container {self.container}: {_why(result)}", {"path": "/" + path})

    # -- reading ---------------------------------------------------------------------------------

    def read_into(self, path: str, sink: Callable[[bytes], object], limit: int = READ_LIMIT, step: int = READ_STEP) -> Optional[int]:
        """Stream the regular file ``path`` into ``sink``; its size, or None when it does not exist. Over ``limit`` is an AgentError."""
        relative = container_path(path)
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise SpecError("limit", limit, "must be a number of bytes >= 0")
        if not 0 < step <= READ_STEP:
            raise SpecError("step", step, f"must be between 1 and {READ_STEP}")
        total = 0
        while True:
            want = min(step, limit - total + 1)
            result = self._step(["read", relative, str(total), str(want)])
            if result.rc == MISSING and total == 0:
                return None
            if result.rc != 0:
                raise self._fail("reading", relative, result)
            data = result.stdout
            if len(data) > want or result.stdout_truncated:
                raise AgentError(f"{self.agent.name}: reading /{relative} in container {self.container}: the guest sent {len(data)} bytes for {want}")
            total += len(data)
            if total > limit:
                raise AgentError(
                    f"{self.agent.name}: /{relative} in container {self.container} is larger than the limit of {limit} bytes; nothing more is read",
                    {"limit": limit},
                )
            if data:
                sink(data)
            if len(data) < want:
                return total

    def read(self, path: str, limit: int = READ_LIMIT) -> Optional[bytes]:
        """The whole regular file ``path`` (at most ``limit`` bytes), or None when it does not exist."""
        chunks: list[bytes] = []
        size = self.read_into(path, chunks.append, limit)
        return None if size is None else b"".join(chunks)

    # -- writing ---------------------------------------------------------------------------------

    def temporary(self, path: str) -> str:
        """A random hidden name beside ``path`` (same directory: the final rename is atomic)."""
        directory, base = posixpath.split(container_path(path))
        return posixpath.join(directory, f".{base}.hyper-{secrets.token_hex(8)}")

    def write(self, path: str, data: bytes, mode: Optional[int] = None) -> int:
        """Replace ``path`` with ``data`` (a new file owned by guest root, with ``mode`` or the default 0644); return the bytes written."""
        relative = container_path(path)
        temp = self.temporary(relative)
        mode_text = mode_argument(mode)
        if len(data) <= MAX_REQUEST_DATA:
            result = self._step(["write", "-", relative, temp, mode_text], stdin=data)
        else:
            staged = f"{STAGE_DIR}/{secrets.token_hex(8)}"
            self.agent.run(["mkdir", "-p", STAGE_DIR], f"creating {STAGE_DIR}")
            try:
                self.agent.write_file(staged, data)
                result = self._step(["write", staged, relative, temp, mode_text])
            finally:
                self.agent.exec(["rm", "-f", staged])
        if result.rc != 0:
            raise self._fail("writing", relative, result)
        return len(data)

    def write_from(self, staged: str, path: str, mode: Optional[int] = None) -> None:
        """Copy the guest file ``staged`` (under the guest's own /run/hyper) onto ``path`` of the container."""
        if not staged.startswith(layout.RUN_DIR + "/") or "/../" in staged:
            raise SpecError("staged", staged, f"must be a file under {layout.RUN_DIR}")
        relative = container_path(path)
        result = self._step(["write", staged, relative, self.temporary(relative), mode_argument(mode)])
        if result.rc != 0:
            raise self._fail("writing", relative, result)

    def rename(self, source: str, target: str) -> bool:
        """Rename ``source`` onto ``target`` (both in the container); False when ``source`` does not exist."""
        src, dst = container_path(source), container_path(target)
        result = self._step(["rename", src, dst])
        if result.rc == MISSING:
            return False
        if result.rc != 0:
            raise self._fail("renaming", src, result)
        return True

    def remove(self, path: str) -> None:
        relative = container_path(path)
        result = self._step(["remove", relative])
        if result.rc != 0:
            raise self._fail("removing", relative, result)
