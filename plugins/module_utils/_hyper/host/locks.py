# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""Host locks: ``flock`` on files in a root-only directory, with a bounded wait and the holder named.

Three kinds, all here so they behave alike (see docs/security.md):

- ``pod_lock``: one per pod name, held by a hyper_pod task for its plan and apply, so two runs
  at once cannot make two VMs for one pod or apply two plans over each other;
- ``resource_lock``: one per host, held briefly from the check of shared resources (disk
  volumes, static addresses, host ports) until the domain whose metadata claims them is defined;
- ``try_lock``: a lock taken only if free (the data channel's ports).

The directory (``<root>/locks``, or ``/run/hyper-pods`` for the data channel) is made 0700 and
must be a real directory owned by us (never a symlink); the files are opened with ``O_NOFOLLOW``.
After taking a lock the holder writes who it is (pid, what, since when) into the file, so a
task that waits in vain says who held it. A lock file is removed by its holder before it
unlocks; a waiter that then gets the lock on the removed file sees the inode is no longer the
one at the path and tries again, so removal never lets two holders in at once. The kernel drops
a lock when its process dies: a killed task never keeps one.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import time
from typing import Iterator, Optional

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import HyperError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.waiter import Clock, Deadline, Sleep

LOCK_DIR = "locks"
# A pod task may pull images and boot a VM under TCG while another waits: minutes, not hours.
POD_LOCK_TIMEOUT = 900.0
# The host-wide lock is held for a check and a define: seconds.
RESOURCE_LOCK_TIMEOUT = 120.0
POLL_SECONDS = 0.2
HOLDER_MAX = 512


class LockTimeout(HyperError):
    """Another task held a host lock for the whole wait."""


def secure_dir(path: str, what: str) -> str:
    """``path`` as a directory only its owner (this process's user) can use: made 0700, never a symlink."""
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        info = os.lstat(path)
    except OSError as err:
        raise HyperError(f"{what}: cannot create the lock directory {path}: {err.strerror}") from None
    if not stat.S_ISDIR(info.st_mode):
        raise HyperError(f"{what}: the lock directory {path} is not a directory (a symlink or a file is there); remove it")
    if info.st_uid != os.geteuid():
        raise HyperError(f"{what}: the lock directory {path} belongs to uid {info.st_uid}, not to this user; remove it")
    if stat.S_IMODE(info.st_mode) & 0o077:
        os.chmod(path, 0o700)
    return path


def lock_dir(root: str, what: str) -> str:
    return secure_dir(os.path.join(root, LOCK_DIR), what)


def _open(path: str) -> int:
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, 0o600)


def _same_file(fd: int, path: str) -> bool:
    try:
        here, there = os.fstat(fd), os.lstat(path)
    except FileNotFoundError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def _take(path: str, what: str) -> Optional[int]:
    """A descriptor holding the lock on ``path`` (the file now at that path), or None when another holds it."""
    try:
        fd = _open(path)
    except OSError as err:  # ELOOP: a symlink where the lock file goes is never followed
        raise HyperError(f"{what}: cannot open the lock file {path}: {err.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    if not _same_file(fd, path):  # its holder removed it while we waited: the lock is the new file's
        os.close(fd)
        return None
    return fd


def holder(path: str) -> str:
    """What the lock file says of its holder (bounded read; empty when it says nothing)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
        try:
            text = os.read(fd, HOLDER_MAX).decode("utf-8", "replace")
        finally:
            os.close(fd)
        return "".join(c if c.isprintable() else " " for c in text).strip()
    return ""


def _note(fd: int, what: str) -> None:
    text = f"pid {os.getpid()}, {what}, since {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}"
    os.ftruncate(fd, 0)
    os.pwrite(fd, text.encode("utf-8")[:HOLDER_MAX], 0)


def _release(fd: int, path: str) -> None:
    # Removed while still held: a waiter on the old file notices and takes the next one.
    with contextlib.suppress(OSError):
        if _same_file(fd, path):
            os.unlink(path)
    os.close(fd)


@contextlib.contextmanager
def held(path: str, what: str, timeout: float, clock: Clock = time.monotonic, sleep: Sleep = time.sleep) -> Iterator[float]:
    """Hold the lock at ``path`` for the ``with`` block, waiting up to ``timeout`` seconds; yields the seconds waited.

    ``what``: the holder's description (``hyper_pod task for pod web``), written into the file
    and quoted to whoever waits in vain.
    """
    deadline = Deadline(timeout, clock)
    while True:
        fd = _take(path, what)
        if fd is not None:
            break
        if deadline.expired:
            other = holder(path) or "another process (it did not say which)"
            raise LockTimeout(
                f"{what}: waited {timeout:g} s for the lock {path}, held all that time by {other}; wait for that task to finish (or stop it) and run again",
                {"lock": path, "lock_holder": other},
            )
        sleep(min(POLL_SECONDS, max(deadline.remaining, 0.01)))
    try:
        _note(fd, what)
        yield deadline.elapsed
    finally:
        _release(fd, path)


@contextlib.contextmanager
def try_lock(path: str, what: str) -> Iterator[bool]:
    """Yield True while holding the lock at ``path``; False at once when another process holds it."""
    fd = _take(path, what)
    if fd is None:
        yield False
        return
    try:
        yield True
    finally:
        _release(fd, path)


def pod_lock(
    root: str, pod: str, timeout: float = POD_LOCK_TIMEOUT, clock: Clock = time.monotonic, sleep: Sleep = time.sleep
) -> contextlib.AbstractContextManager[float]:
    """The lock of pod ``pod`` (a checked pod name: letters, digits, '-', '_', '.')."""
    what = f"hyper_pod task for pod {pod}"
    return held(os.path.join(lock_dir(root, what), f"pod-{pod}.lock"), what, timeout, clock, sleep)


def resource_lock(
    root: str, pod: str, timeout: float = RESOURCE_LOCK_TIMEOUT, clock: Clock = time.monotonic, sleep: Sleep = time.sleep
) -> contextlib.AbstractContextManager[float]:
    """The host-wide lock over the claims of disk volumes, static addresses and host ports."""
    what = f"claiming volumes, addresses and ports for pod {pod}"
    return held(os.path.join(lock_dir(root, what), "resources.lock"), what, timeout, clock, sleep)
