# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""Many pods on one host at once: the host's boot slots, and the ``async`` limit a booting task needs.

A boot (VM start → containers running) is the expensive part of a pod start: under TCG one boot
keeps a core busy for seconds. The host has ``boot_slots`` of them (``<root>/host.json``, written
by the host role; 0 or absent: one per CPU this process may run on). A boot takes a free slot, an
exclusive ``flock`` on ``<root>/locks/boot/slot-<i>.lock``, for as long as it boots; past the
slots, boots queue (polling, not in order) for up to ``boot_queue_timeout`` seconds and then fail
with BootQueueTimeout, which the engine turns into a removed VM like any failed boot. The kernel
drops a lock when its process dies, so a killed task never keeps a slot.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from dataclasses import dataclass
from typing import Any, Iterator, Mapping, Optional

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import HyperError, ImageError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.host.info import host_file, load_host_info
from ansible_collections.hyper.pods.plugins.module_utils._hyper.waiter import Clock, Deadline, Sleep

SLOTS_KEY = "boot_slots"
QUEUE_TIMEOUT_KEY = "boot_queue_timeout"
DEFAULT_QUEUE_TIMEOUT = 300.0
SLOT_DIR = os.path.join("locks", "boot")
# How often a queued boot looks for a free slot.
POLL_SECONDS = 0.25
# What a failed boot needs after its wait_timeout to leave nothing behind (destroy, undefine, files).
ASYNC_MARGIN = 15
# The hyper_pod states that never boot a VM.
NO_BOOT_STATES = ("absent", "stopped")
_ROLE_HINT = "set hyper_host_boot_slots / hyper_host_boot_queue_timeout of the hyper.pods.host role and run it again"


class BootQueueTimeout(HyperError):
    """Every boot slot of the host stayed busy for the whole queue timeout."""


@dataclass(frozen=True)
class BootSlotSettings:
    slots: int
    queue_timeout: float


def host_cpus() -> int:
    """CPUs this process may run on (its affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def boot_slot_settings(record: Mapping[str, Any], path: str, cpus: int) -> BootSlotSettings:
    """The settings of a host.json record (its extra keys); absent keys take the defaults."""
    slots = record.get(SLOTS_KEY, 0)
    if not isinstance(slots, int) or isinstance(slots, bool) or slots < 0:
        raise ImageError(f"{path}: {SLOTS_KEY} is {slots!r}, expected an integer >= 0 (0: one per CPU); {_ROLE_HINT}")
    timeout = record.get(QUEUE_TIMEOUT_KEY, DEFAULT_QUEUE_TIMEOUT)
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or not 0 <= timeout < float("inf"):
        raise ImageError(f"{path}: {QUEUE_TIMEOUT_KEY} is {timeout!r}, expected a number of seconds >= 0; {_ROLE_HINT}")
    return BootSlotSettings(slots=slots or cpus, queue_timeout=float(timeout))


def load_boot_slot_settings(root: str, cpus: Optional[int] = None) -> BootSlotSettings:
    """The settings in ``<root>/host.json``, or the defaults when the host role never wrote one."""
    cpus = host_cpus() if cpus is None else cpus
    path = host_file(root)
    if not os.path.exists(path):
        return boot_slot_settings({}, path, cpus)
    return boot_slot_settings(load_host_info(root).extra, path, cpus)


def _try_lock(path: str) -> Optional[int]:
    """An open descriptor holding an exclusive lock on ``path``, or None when another process holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return fd


@dataclass
class BootSlots:
    """The host's boot slots under ``directory``; ``hold()`` waits for one."""

    directory: str
    settings: BootSlotSettings
    clock: Clock = time.monotonic
    sleep: Sleep = time.sleep

    @classmethod
    def for_root(cls, root: str, clock: Clock = time.monotonic, sleep: Sleep = time.sleep) -> BootSlots:
        return cls(os.path.join(root, SLOT_DIR), load_boot_slot_settings(root), clock, sleep)

    def slot_path(self, index: int) -> str:
        return os.path.join(self.directory, f"slot-{index}.lock")

    def _take_free_slot(self, what: str) -> Optional[int]:
        for index in range(self.settings.slots):
            path = self.slot_path(index)
            try:
                fd = _try_lock(path)
            except OSError as err:  # ELOOP: a symlink where a slot file goes is never followed
                raise HyperError(f"{what}: cannot open the boot slot {path}: {err.strerror}") from None
            if fd is not None:
                return fd
        return None

    @contextlib.contextmanager
    def hold(self, what: str) -> Iterator[float]:
        """Hold a free slot for the ``with`` block; yields the seconds waited for it."""
        try:
            os.makedirs(self.directory, mode=0o700, exist_ok=True)
        except OSError as err:
            raise HyperError(f"{what}: cannot create the boot slot directory {self.directory}: {err.strerror}") from None
        deadline = Deadline(self.settings.queue_timeout, self.clock)
        while True:
            fd = self._take_free_slot(what)
            if fd is not None:
                break
            if deadline.expired:
                raise BootQueueTimeout(
                    f"{what}: waited {self.settings.queue_timeout:g} s for a boot slot, and all {self.settings.slots} of the host's "
                    f"boot slots stayed busy with other pods' boots ({SLOTS_KEY} and {QUEUE_TIMEOUT_KEY} in host.json under the "
                    f"hyper root); start fewer pods at once, or {_ROLE_HINT}",
                    {"step": "waiting for a boot slot", "boot_slots": self.settings.slots, "boot_queue_timeout": self.settings.queue_timeout},
                )
            self.sleep(min(POLL_SECONDS, max(deadline.remaining, 0.01)))
        try:
            yield deadline.elapsed
        finally:
            os.close(fd)


def async_too_short(async_limit: object, state: object, wait_timeout: object, default_wait: float) -> Optional[str]:
    """Why a hyper_pod task's ``async`` limit cannot hold a boot (None when it can, or when it does not boot).

    Ansible SIGKILLs an async module at its limit; a pod killed while it boots cannot remove itself.
    Values are the task's raw arguments: what is not a number is left to the module's own checks.
    ``default_wait`` is hyper_pod's default wait_timeout (pod/boot.py).
    """
    try:
        limit = int(str(async_limit))
        wait = int(str(int(default_wait) if wait_timeout is None else wait_timeout))
    except ValueError:
        return None
    if limit <= 0 or str(state or "started") in NO_BOOT_STATES:
        return None
    need = wait + ASYNC_MARGIN
    if limit >= need:
        return None
    return (
        f"async={limit} is too short for this task: a pod that boots may take wait_timeout={wait} s and up to {ASYNC_MARGIN} s "
        f"more to clean up if it fails, and Ansible kills an async task at its limit, which would leave a half-made pod; "
        f"set async to at least {need} (plus the host's boot_queue_timeout when more pods start at once than it has boot slots), "
        f"or lower wait_timeout"
    )
