# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""A pod VM's scratch disk: its containers' writable layers and logs, off the guest's RAM.

One sparse raw file per VM, ``<root>/scratch/<vm id>.raw``, made with the VM (ext4 by ``mke2fs`` on the
host, on an empty file: the host never mounts what a guest wrote) and removed with it. The guest
mounts it on ``/run/hyper/containers`` at every boot (the init's rc), so a container's writable
layer and its log survive a pod restart, a guest reboot and a QEMU crash; a new VM (a changed spec
that recreates it) starts with an empty one, as a recreated docker container does.

The file's apparent size is the bound of what a guest can make the host store for it: its
containers fill it, never the host's disk. ``discard`` lets the guest give freed blocks back.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from typing import Optional

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import ImageError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest import layout
from ansible_collections.hyper.pods.plugins.module_utils._hyper.host.commands import CommandFailed, Runner, run
from ansible_collections.hyper.pods.plugins.module_utils._hyper.storage.volumes import parse_size
from ansible_collections.hyper.pods.plugins.module_utils._hyper.virt.domain_xml import DiskSpec

SCRATCH_DIR = "scratch"
SCRATCH_SERIAL = layout.SCRATCH_SERIAL
DEFAULT_SCRATCH_BYTES = 1 << 30
# 0 means no scratch disk: writable layers and logs in the guest's RAM (tmpfs), as before it existed.
MIN_SCRATCH_BYTES = 64 << 20
MAX_SCRATCH_BYTES = 16 << 40
# Each container's log: the current file and one rotated file of at most this many bytes each.
DEFAULT_LOG_BYTES = 10 << 20
MIN_LOG_BYTES = 1 << 20
MAX_LOG_BYTES = 1 << 30
MKFS_TIMEOUT = 600.0


def parse_scratch_size(value: object, option: str = "scratch_size") -> int:
    """The scratch disk's size in bytes: ``0`` (none: tmpfs in the guest's RAM) or 64M … 16T."""
    if value in (0, "0"):
        return 0
    return parse_size(value, option, MIN_SCRATCH_BYTES, MAX_SCRATCH_BYTES)


def parse_log_size(value: object, option: str = "log_size") -> int:
    """The bound of each container's log file (one rotated file besides it): 1M … 1G."""
    return parse_size(value, option, MIN_LOG_BYTES, MAX_LOG_BYTES)


def scratch_dir(root: str) -> str:
    return os.path.join(root, SCRATCH_DIR)


def scratch_path(root: str, vm_id: str) -> str:
    return os.path.join(scratch_dir(root), f"{vm_id}.raw")


def scratch_disk(root: str, vm_id: str, target: str) -> DiskSpec:
    return DiskSpec(path=scratch_path(root, vm_id), target=target, serial=SCRATCH_SERIAL, readonly=False, discard=True)


def create_scratch(root: str, vm_id: str, size: int, runner: Runner = run) -> str:
    """Make the VM's scratch disk (an empty ext4 on a sparse file of ``size`` bytes); its path.

    Made under a temporary name and renamed into place, so the disk is whole or absent. Mode 0600:
    libvirt gives it to QEMU's user while the VM runs; the directory only lets QEMU through.
    """
    directory = scratch_dir(root)
    os.makedirs(directory, mode=0o711, exist_ok=True)
    final = scratch_path(root, vm_id)
    fd, tmp = tempfile.mkstemp(prefix=f".tmp-{vm_id}-", suffix=".raw", dir=directory)
    os.close(fd)
    try:
        os.truncate(tmp, size)
        # mke2fs "discards" the inode tables of a file (punches holes: zeroes) instead of writing them, and
        # the journal of a new file reads as zeroes: 1 GiB takes ~0.7 MiB on the host until containers write.
        mkfs = ["mke2fs", "-q", "-F", "-t", "ext4", "-m", "0", "-L", "hyper-scratch", "-E", "root_owner=0:0,lazy_itable_init=0,lazy_journal_init=1", tmp]
        try:
            runner(mkfs, timeout=MKFS_TIMEOUT)
        except CommandFailed as err:
            raise ImageError(f"cannot create the pod's scratch disk {final}: {err.message}", err.details) from None
        os.chmod(tmp, 0o600)
        os.replace(tmp, final)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return final


def remove_scratch(root: str, vm_id: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(scratch_path(root, vm_id))


def scratch_usage(root: str, vm_id: str) -> Optional[dict[str, int]]:
    """The disk's size and the bytes it takes on the host (sparse), or None when the VM has none."""
    try:
        stat = os.stat(scratch_path(root, vm_id))
    except FileNotFoundError:
        return None
    return {"size": stat.st_size, "allocated": stat.st_blocks * 512}
