# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""The host ↔ guest contract in one place: the guest's ``/run/hyper`` layout, names, serials, defaults.

Both sides depend on these: the guest image's ``hyper-container`` and init (roles/guest_image)
read the same paths and serials. docs/guest-protocol.md describes them.
"""

from __future__ import annotations

import re

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import SpecError

# -- the guest's /run/hyper (a tmpfs rebuilt at every boot) ------------------------------------
RUN_DIR = "/run/hyper"
CONTAINERS_DIR = f"{RUN_DIR}/containers"
NET_DIR = f"{RUN_DIR}/net"
VOLUMES_DIR = f"{RUN_DIR}/volumes"
SHARES_DIR = f"{RUN_DIR}/shares"
FILES_DIR = f"{RUN_DIR}/files"
# Temporary files of one exec live next to the containers' state.
EXEC_DIR = RUN_DIR
# The guest's container supervisor, shipped in the initrd by the guest_image role.
GUEST_COMMAND = "/usr/sbin/hyper-container"
# In a container's directory: the OCI config, the host's metadata, the overlay mount point.
CONFIG_FILE = "config.json"
META_FILE = "container.json"
ROOTFS = "rootfs"
UPPER = "upper"

# -- names ---------------------------------------------------------------------------------------
# One rule for container names, wherever they come from (the spec, the connection, the guest).
CONTAINER_NAME_MAX = 63
CONTAINER_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
CONTAINER_NAME_RULE = "1-63 lower-case letters, digits, '_', '.', '-', starting with a letter or digit"
_CONTAINER_NAME_ERROR = f"container names use a-z, 0-9, '_', '.' and '-', start with a letter or digit, at most {CONTAINER_NAME_MAX} characters"

# -- container defaults (the spec fills them; the guest's container.json has them too) ----------
RESTART_POLICIES = ("never", "on-failure", "always")
DEFAULT_RESTART_POLICY = "never"
DEFAULT_STOP_SIGNAL = "SIGTERM"
DEFAULT_STOP_TIMEOUT = 10
MAX_STOP_TIMEOUT = 3600

# -- stop ----------------------------------------------------------------------------------------
# After the containers stopped: the guest's page cache is flushed before the VM is destroyed. Without a
# disk volume nothing needs it, so it is short and never killed (storage/pod.py waits longer with one).
SYNC_TIMEOUT = 3.0

# -- disks: the guest finds them by virtio serial (at most 20 bytes), never by name ----------------
SERIAL_MAX = 20
IMAGE_SERIAL_PREFIX = "hyper-img-"
VOLUME_SERIAL_PREFIX = "hyper-vol-"
# The pod VM's scratch disk (storage/scratch.py): the guest mounts it on CONTAINERS_DIR at boot.
SCRATCH_SERIAL = "hyper-scratch"
IMAGE_SERIAL = re.compile(r"^hyper-img-[0-9a-f]{10}$")
# virtio-blk targets vda … vdzz; a pod has far fewer disks than that.
MAX_DISKS = 26 + 26 * 26


def check_container_name(name: object, option: str = "name") -> str:
    if not isinstance(name, str) or not CONTAINER_NAME.fullmatch(name):
        raise SpecError(option, name, _CONTAINER_NAME_ERROR)
    return name


def container_dir(name: str) -> str:
    return f"{CONTAINERS_DIR}/{check_container_name(name)}"


def container_rootfs(name: str) -> str:
    """The container's root filesystem as the guest sees it (the overlay ``hyper-container`` mounts)."""
    return f"{container_dir(name)}/{ROOTFS}"


def container_file(name: str, relative: str) -> str:
    """A file of the container's directory: ``config.json``, ``upper/etc/resolv.conf`` …"""
    return f"{container_dir(name)}/{relative}"


def disk_target(index: int) -> str:
    """virtio-blk target names: vda … vdz, vdaa … (the guest finds disks by serial, not by name)."""
    if not 0 <= index < MAX_DISKS:
        raise SpecError("disks", index + 1, f"a pod has at most {MAX_DISKS} disks")
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(ord("a") + rest) + letters
    return "vd" + letters


def image_serial(digest: str) -> str:
    """The virtio-blk serial of an image's disk: 20 characters, from the digest."""
    hexdigest = digest.split(":", 1)[-1]
    return IMAGE_SERIAL_PREFIX + hexdigest[: SERIAL_MAX - len(IMAGE_SERIAL_PREFIX)]


# -- the pod's config disk: the guest brings the pod up from it at every boot (pod/config_disk.py) --
CONFIG_SERIAL = "hyper-config"
# The guest's boot of the pod (roles/guest_image hyper-boot): ``run`` at every boot, ``wait`` for the host.
BOOT_COMMAND = "/usr/sbin/hyper-boot"
BOOT_DIR = f"{RUN_DIR}/boot"
