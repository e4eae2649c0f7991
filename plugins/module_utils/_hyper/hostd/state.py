# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""What the host keeps that libvirt cannot: each pod's desired run state, the service's pid file. Root-only, under the state root."""

from __future__ import annotations

import contextlib
import os
import re
from typing import Any, Optional

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import HyperError

SERVICE_NAME = "hyper-hostd"
_VM_ID = re.compile(r"^hyper-[0-9a-f]{8}$")
DESIRED_STATES = ("running", "stopped")


def hostd_dir(root: str, *parts: str) -> str:
    """``<root>/hostd/...``, made root-only (0700) on the way."""
    base = os.path.join(root, "hostd")
    os.makedirs(base, mode=0o700, exist_ok=True)
    if os.stat(base).st_mode & 0o077:
        os.chmod(base, 0o700)
    path = os.path.join(base, *parts)
    os.makedirs(path, mode=0o700, exist_ok=True)
    return path


def _desired_path(root: str, vm_id: str) -> str:
    if not _VM_ID.match(vm_id):
        raise HyperError(f"{vm_id!r} is not a hyper VM id")
    return os.path.join(hostd_dir(root, "desired"), vm_id)


def write_private(path: str, text: str) -> None:
    """Write ``text`` to ``path`` atomically, mode 0600."""
    tmp = f"{path}.tmp{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_desired(root: str, vm_id: str, state: str) -> None:
    """Record that a task wants the VM ``running`` or ``stopped`` (written before a stop, after a start)."""
    if state not in DESIRED_STATES:
        raise ValueError(f"desired state must be one of {DESIRED_STATES}, not {state!r}")
    try:
        write_private(_desired_path(root, vm_id), state + "\n")
    except OSError as err:
        raise HyperError(f"VM {vm_id}: cannot record its desired state under {root}: {err.strerror}") from None


def read_desired(root: str, vm_id: str) -> Optional[str]:
    """The recorded desired state, or None (never recorded: the host service then leaves the pod alone)."""
    try:
        with open(_desired_path(root, vm_id), encoding="utf-8") as handle:
            value = handle.read(32).strip()
    except (OSError, HyperError):
        return None
    return value if value in DESIRED_STATES else None


def forget_desired(root: str, vm_id: str) -> None:
    with contextlib.suppress(OSError, HyperError):
        os.unlink(os.path.join(root, "hostd", "desired", vm_id))


def pid_path(root: str) -> str:
    return os.path.join(root, "hostd", f"{SERVICE_NAME}.pid")


def log_path(root: str) -> str:
    return os.path.join(root, "hostd", f"{SERVICE_NAME}.log")


def running_pid(root: str) -> Optional[int]:
    """The pid of the host service of ``root`` if it runs (its pid file names a live process that is the service)."""
    try:
        with open(pid_path(root), encoding="ascii") as handle:
            pid = int(handle.read(32).strip())
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            cmdline = handle.read(4096)
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read(512)
    except (OSError, ValueError):
        return None
    # A zombie (an init that does not reap) is not running.
    if SERVICE_NAME.encode() not in cmdline or stat.rpartition(b")")[2].split()[:1] == [b"Z"]:
        return None
    return pid


def service_status(root: str) -> dict[str, Any]:
    pid = running_pid(root)
    return {"running": pid is not None, "pid": pid, "log": log_path(root)}
