# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""The image cache's users lock: pod tasks hold it shared, removals (hyper_image absent, prune) exclusive.

A pod task pulls an image, unpacks its bundle, builds its disk and only then defines the domain whose
metadata says that it uses them. A removal that looked at the pods in between would find the image
unused. So every hyper_pod task that changes something holds this lock *shared* from its plan to its
end (pod tasks never wait for each other on it), and a removal holds it *exclusive* while it lists
the pods and removes what none of them uses: it waits for the pod tasks that run, and pod tasks that
start meanwhile wait for it (seconds).

``<root>/locks/image-cache.lock`` (a host/locks.py directory: 0700, never a symlink; the file opened
with ``O_NOFOLLOW``). Unlike the other host locks the file is never removed: shared holders cannot
agree on who removes it. The exclusive holder writes who it is into the file and empties it again
when it is done, so a task that waits in vain says who held it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from typing import Iterator

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import HyperError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.host.locks import HOLDER_MAX, POD_LOCK_TIMEOUT, LockTimeout, holder, lock_dir
from ansible_collections.hyper.pods.plugins.module_utils._hyper.waiter import Clock, Deadline, Sleep

LOCK_NAME = "image-cache.lock"
# A removal waits for pod tasks (a pull and a TCG boot: minutes); a pod task waits for a removal (seconds).
REMOVAL_TIMEOUT = POD_LOCK_TIMEOUT
USER_TIMEOUT = POD_LOCK_TIMEOUT
POLL_SECONDS = 0.2


def lock_path(root: str, what: str) -> str:
    return os.path.join(lock_dir(root, what), LOCK_NAME)


@contextlib.contextmanager
def cache_users_lock(
    root: str, what: str, *, exclusive: bool, timeout: float = USER_TIMEOUT, clock: Clock = time.monotonic, sleep: Sleep = time.sleep
) -> Iterator[float]:
    """Hold the image cache's users lock (shared for a pod task, exclusive for a removal); yields the seconds waited."""
    path = lock_path(root, what)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, 0o600)
    except OSError as err:  # ELOOP: a symlink where the lock file goes is never followed
        raise HyperError(f"{what}: cannot open the lock file {path}: {err.strerror}") from None
    try:
        mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        deadline = Deadline(timeout, clock)
        while True:
            try:
                fcntl.flock(fd, mode | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if deadline.expired:
                    other = holder(path) or ("hyper_pod tasks that use the image cache" if exclusive else "another process (it did not say which)")
                    raise LockTimeout(
                        f"{what}: waited {timeout:g} s for the image cache lock {path}, held all that time by {other}; "
                        "wait for that task to finish (or stop it) and run again",
                        {"lock": path, "lock_holder": other},
                    ) from None
                sleep(min(POLL_SECONDS, max(deadline.remaining, 0.01)))
        if exclusive:
            note = f"pid {os.getpid()}, {what}, since {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}"
            os.ftruncate(fd, 0)
            os.pwrite(fd, note.encode("utf-8")[:HOLDER_MAX], 0)
        try:
            yield deadline.elapsed
        finally:
            if exclusive:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, 0)
    finally:
        os.close(fd)
