# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""A pod's volumes: named disk volumes under ``<root>/volumes`` and host directories shared with virtio-fs.

The pod option ``volumes`` declares them; a container's ``volumes`` mounts them at a path. The
spec part (``normalise_volumes``, ``normalise_mounts``) is pure; the host part creates a disk
volume once (ext4 made by ``mke2fs`` on the host, then ``qemu-img convert`` to its format) and
removes it only when asked to. A pod never deletes a volume by itself.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Optional, Sequence

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import ImageError, SpecError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest import layout
from ansible_collections.hyper.pods.plugins.module_utils._hyper.host.commands import CommandFailed, Runner, run
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.stored import StoredContainer, StoredMount, StoredPod, StoredVolume

VOLUMES_DIR = "volumes"
VOLUME_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
FORMATS = ("qcow2", "raw")
DEFAULT_FORMAT = "qcow2"
KINDS = ("disk", "host")
VOLUME_KEYS = ("name", "size", "format", "host_path")
MOUNT_KEYS = ("name", "path", "read_only")
MIN_VOLUME_BYTES = 16 << 20
MAX_VOLUME_BYTES = 64 << 40
# At most 20 digits: more is no size (and int() of thousands of digits is slow, then refused by Python).
_SIZE = re.compile(r"^([0-9]{1,20})\s*([KMGT]?)(i?B)?$", re.IGNORECASE)
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
# Virtio serials are at most 20 bytes; the guest finds a volume's disk by its serial.
VOLUME_SERIAL_PREFIX = layout.VOLUME_SERIAL_PREFIX
# virtio-fs tags are at most 36 bytes.
SHARE_TAG_PREFIX = "hyper-fs-"
# Where the guest mounts them; containers get bind mounts of these.
GUEST_VOLUMES_DIR = layout.VOLUMES_DIR
GUEST_SHARES_DIR = layout.SHARES_DIR
MKFS_TIMEOUT = 600.0
CONVERT_TIMEOUT = 600.0


@dataclass(frozen=True)
class VolumeSpec:
    """A named disk volume (``kind="disk"``, size and format) or a host directory (``kind="host"``)."""

    name: str
    kind: str
    size: Optional[int] = None
    format: str = DEFAULT_FORMAT
    host_path: Optional[str] = None

    def stored(self) -> dict[str, Any]:
        return StoredVolume(name=self.name, kind=self.kind, size=self.size, format=self.format, host_path=self.host_path).to_json()


@dataclass(frozen=True)
class MountSpec:
    """A volume of the pod mounted into one container at ``path``."""

    name: str
    path: str
    read_only: bool = False

    def stored(self) -> dict[str, Any]:
        return StoredMount(self.name, self.path, self.read_only).to_json()


# -- spec (pure) ----------------------------------------------------------------------------------


def check_volume_name(value: object, option: str) -> str:
    if not isinstance(value, str) or not VOLUME_NAME.fullmatch(value):
        reason = "must not contain '/': a volume is named, its file lives under the hyper root" if isinstance(value, str) and "/" in value else ""
        raise SpecError(option, value, reason or "must be 1-63 lower-case letters, digits, '_', '.', '-', starting with a letter or digit")
    return value


def _human(size: int) -> str:
    return f"{size >> 40}T" if size >= 1 << 40 and not size % (1 << 40) else f"{size >> 30}G" if not size % (1 << 30) else f"{size >> 20}M"


def parse_size(value: object, option: str, low: int = MIN_VOLUME_BYTES, high: int = MAX_VOLUME_BYTES) -> int:
    """``1G``, ``512M``, ``512MiB``, ``1073741824`` (bytes) → bytes, a whole number of MiB from ``low`` to ``high``."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise SpecError(option, value, "must be a size such as 512M or 2G")
    if isinstance(value, int) and not -(10**20) < value < 10**20:
        # repr() of such a number fails in Python itself (over 4300 digits): name it, do not print it.
        raise SpecError(option, f"<a number of {value.bit_length()} bits>", "must be a size such as 512M or 2G")
    match = _SIZE.fullmatch(str(value).strip())
    if not match:
        raise SpecError(option, value, "must be a size such as 512M or 2G (units K, M, G, T, powers of 1024)")
    size = int(match.group(1)) * _UNITS[match.group(2).upper()]
    if size % (1 << 20):
        raise SpecError(option, value, "must be a whole number of MiB")
    if not low <= size <= high:
        raise SpecError(option, value, f"must be between {low >> 20}M and {_human(high)}")
    return size


def check_absolute(value: object, option: str, *, allow_root: bool = False) -> str:
    """An absolute path without ``.``/``..`` parts, NUL or newline, normalised (no double or trailing slashes)."""
    if not isinstance(value, str) or not value.startswith("/"):
        raise SpecError(option, value, "must be an absolute path")
    if any(ch in value for ch in "\x00\n"):
        raise SpecError(option, value, "must not contain NUL or newline characters")
    parts = [part for part in value.split("/") if part]
    if any(part in (".", "..") for part in parts):
        raise SpecError(option, value, "must not contain '.' or '..' components")
    path = "/" + "/".join(parts)
    if path == "/" and not allow_root:
        raise SpecError(option, value, "must not be / itself")
    return path


def _mapping(value: object, option: str, keys: Sequence[str]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise SpecError(option, value, f"must be a mapping with the keys {', '.join(keys)}")
    unknown = sorted(key for key, val in value.items() if key not in keys and val is not None)
    if unknown:
        raise SpecError(option, unknown, f"unknown keys; known: {', '.join(keys)}")
    return value


def normalise_volume(value: object, index: int) -> VolumeSpec:
    item = _mapping(value, f"volumes[{index}]", VOLUME_KEYS)
    name = check_volume_name(item.get("name"), f"volumes[{index}].name")
    where = f"volumes[{name}]"
    host_path = item.get("host_path")
    if host_path is not None:
        for key in ("size", "format"):
            if item.get(key) is not None:
                raise SpecError(f"{where}.{key}", item.get(key), "applies to disk volumes only, not to a host directory (host_path)")
        return VolumeSpec(name=name, kind="host", host_path=check_absolute(host_path, f"{where}.host_path", allow_root=True))
    if item.get("size") is None:
        raise SpecError(f"{where}.size", None, "is required for a disk volume (or give host_path to share a host directory)")
    fmt = item.get("format") or DEFAULT_FORMAT
    if fmt not in FORMATS:
        raise SpecError(f"{where}.format", fmt, f"must be one of {', '.join(FORMATS)}")
    return VolumeSpec(name=name, kind="disk", size=parse_size(item["size"], f"{where}.size"), format=str(fmt))


def normalise_volumes(value: object) -> tuple[VolumeSpec, ...]:
    if value is None:
        return ()
    if not isinstance(value, (list, tuple)):
        raise SpecError("volumes", value, "must be a list of volumes")
    volumes = tuple(normalise_volume(item, index) for index, item in enumerate(value))
    seen: set[str] = set()
    for index, volume in enumerate(volumes):
        if volume.name in seen:
            raise SpecError(f"volumes[{index}].name", volume.name, "is used by an earlier volume; names must be unique within the pod")
        seen.add(volume.name)
    return volumes


def normalise_mounts(value: object, where: str, volume_names: Iterable[str]) -> tuple[MountSpec, ...]:
    """A container's ``volumes``: each names a volume of the pod and an absolute path in the container."""
    if value is None:
        return ()
    if not isinstance(value, (list, tuple)):
        raise SpecError(f"{where}.volumes", value, "must be a list of {name, path, read_only}")
    known = set(volume_names)
    mounts = []
    for index, raw in enumerate(value):
        option = f"{where}.volumes[{index}]"
        item = _mapping(raw, option, MOUNT_KEYS)
        name = check_volume_name(item.get("name"), f"{option}.name")
        if name not in known:
            raise SpecError(
                f"{option}.name", name, f"is not a volume of the pod; declare it in the pod's volumes ({', '.join(sorted(known)) or 'none declared'})"
            )
        read_only = item.get("read_only")
        if read_only is not None and not isinstance(read_only, bool):
            raise SpecError(f"{option}.read_only", read_only, "must be a boolean")
        mounts.append(MountSpec(name=name, path=check_absolute(item.get("path"), f"{option}.path"), read_only=bool(read_only)))
    return tuple(mounts)


def check_root_shares(volumes: Iterable[VolumeSpec], containers: Iterable[tuple[str, Iterable[MountSpec]]]) -> None:
    """A host share of ``/`` (the host's whole file system) is refused read-write: a guest could rewrite the host."""
    whole = {v.name for v in volumes if v.kind == "host" and v.host_path == "/"}
    for container, mounts in containers:
        for index, mount in enumerate(mounts):
            if mount.name in whole and not mount.read_only:
                raise SpecError(
                    f"containers[{container}].volumes[{index}].read_only",
                    False,
                    f"volume {mount.name} shares the hyper host's whole file system (host_path: /): mount it with read_only: true, "
                    "or share a narrower directory",
                )


def check_distinct_paths(paths: Iterable[tuple[str, str]]) -> None:
    """``(option, path)`` pairs of one container: two mounts (volumes or files) at one path is an error."""
    seen: dict[str, str] = {}
    for option, path in paths:
        if path in seen:
            raise SpecError(option, path, f"is also the path of {seen[path]}; two mounts cannot share one path")
        seen[path] = option


def volume_serial(name: str) -> str:
    return VOLUME_SERIAL_PREFIX + hashlib.sha256(name.encode("utf-8")).hexdigest()[: layout.SERIAL_MAX - len(VOLUME_SERIAL_PREFIX)]


def share_tag(name: str) -> str:
    return SHARE_TAG_PREFIX + hashlib.sha256(name.encode("utf-8")).hexdigest()[:16]


def guest_mount_point(volume: StoredVolume) -> str:
    base = GUEST_SHARES_DIR if volume.kind == "host" else GUEST_VOLUMES_DIR
    return f"{base}/{volume.name}"


def oci_mounts(container: StoredContainer, volumes: Sequence[StoredVolume]) -> list[dict[str, Any]]:
    """The OCI runtime ``mounts`` entries (bind mounts of the guest mount points) of a stored container."""
    by_name = {v.name: v for v in volumes}
    mounts = []
    for mount in container.volumes:
        volume = by_name[mount.name]
        options = ["rbind", "ro" if mount.read_only else "rw"]
        mounts.append({"destination": mount.path, "type": "bind", "source": guest_mount_point(volume), "options": options})
    return mounts


# -- host ----------------------------------------------------------------------------------------


def volumes_dir(root: str) -> str:
    return os.path.join(root, VOLUMES_DIR)


def volume_path(root: str, name: str, fmt: str) -> str:
    return os.path.join(volumes_dir(root), f"{name}.{fmt}")


def existing_volume_files(root: str, name: str) -> list[str]:
    """The files of volume ``name`` under the root, whatever their format."""
    return [path for path in (volume_path(root, name, fmt) for fmt in FORMATS) if os.path.exists(path)]


def virtual_size(path: str, fmt: str, runner: Runner = run) -> int:
    if fmt == "raw":
        return os.stat(path).st_size
    try:
        info = json.loads(runner(["qemu-img", "info", "--output=json", "-f", fmt, "-U", path], timeout=60).stdout)
    except (CommandFailed, ValueError) as err:
        raise ImageError(f"cannot read the volume {path}: {err}") from None
    return int(info.get("virtual-size") or 0)


# Where QEMU's vhost-user descriptions point libvirt at virtiofsd, and where distributions put it.
VHOST_USER_DIRS = ("/etc/qemu/vhost-user", "/usr/share/qemu/vhost-user")
VIRTIOFSD_PATHS = ("/usr/libexec/virtiofsd", "/usr/lib/qemu/virtiofsd", "/usr/bin/virtiofsd")


def find_virtiofsd(vhost_user_dirs: Sequence[str] = VHOST_USER_DIRS, paths: Sequence[str] = VIRTIOFSD_PATHS) -> Optional[str]:
    """The virtiofsd libvirt would start: from a vhost-user description of type ``fs``, else a known path."""
    for directory in vhost_user_dirs:
        with contextlib.suppress(OSError):
            for entry in sorted(os.listdir(directory)):
                with contextlib.suppress(OSError, ValueError, AttributeError):
                    with open(os.path.join(directory, entry), encoding="utf-8") as handle:
                        described = json.load(handle)
                    binary = described.get("binary")
                    if described.get("type") == "fs" and isinstance(binary, str) and os.access(binary, os.X_OK):
                        return binary
    return next((path for path in paths if os.access(path, os.X_OK)), None)


def check_volumes(root: str, volumes: Sequence[StoredVolume], runner: Runner = run) -> None:
    """What can be checked on the host before anything is made: host directories exist, existing volumes fit.

    A disk volume that exists in another format, or with another size, is refused: it is never
    converted, resized or replaced.
    """
    for volume in volumes:
        where = f"volumes[{volume.name}]"
        if volume.kind == "host":
            path = str(volume.host_path)
            if not os.path.isdir(path):
                raise SpecError(f"{where}.host_path", path, "is not an existing directory on the hyper host")
            if find_virtiofsd() is None:
                raise SpecError(
                    f"{where}.host_path", path, "needs virtiofsd on the hyper host, and there is none: install it (bindep.txt; the hyper.pods.host role does)"
                )
            continue
        fmt = str(volume.format)
        wanted = volume_path(root, volume.name, fmt)
        for found in existing_volume_files(root, volume.name):
            if found != wanted:
                raise SpecError(f"{where}.format", volume.format, f"the volume exists as {found}; it is never converted (remove it first, or keep its format)")
            size = virtual_size(found, fmt, runner)
            if size != volume.size:
                raise SpecError(
                    f"{where}.size",
                    f"{int(volume.size or 0) >> 20}M",
                    f"the volume {found} has {size >> 20}M; volumes are not resized (keep its size, or remove it first)",
                )


def create_volume(root: str, volume: StoredVolume, runner: Runner = run) -> Optional[str]:
    """Create the disk volume if it does not exist; return its path when this call made it, else None.

    The file system (ext4 with a journal, labelled with the volume name) is made on a sparse raw
    file and converted into place under a temporary name, so a volume file is either whole or absent.
    """
    name, fmt, size = volume.name, str(volume.format), int(volume.size or 0)
    final = volume_path(root, name, fmt)
    if os.path.exists(final):
        return None
    directory = volumes_dir(root)
    os.makedirs(directory, mode=0o711, exist_ok=True)  # qemu (libvirt-qemu) must traverse it
    fd, raw = tempfile.mkstemp(prefix=f".tmp-{name}-", suffix=".raw", dir=directory)
    os.close(fd)
    converted = raw[: -len(".raw")] + ".out." + fmt  # never the raw file itself, whatever the format
    try:
        os.truncate(raw, size)
        mkfs = ["mke2fs", "-q", "-F", "-t", "ext4", "-m", "0", "-L", name[:16], "-E", "root_owner=0:0,lazy_itable_init=0,lazy_journal_init=0", raw]
        convert = ["qemu-img", "convert", "-q", "-f", "raw", "-O", fmt, raw, converted]
        try:
            runner(mkfs, timeout=MKFS_TIMEOUT)
            runner(convert, timeout=CONVERT_TIMEOUT)
        except CommandFailed as err:
            raise ImageError(f"cannot create the volume {final}: {err.message}", err.details) from None
        os.chmod(converted, 0o600)
        # link, not rename: a volume made meanwhile by another task is never replaced.
        try:
            os.link(converted, final)
        except FileExistsError:
            return None
        return final
    finally:
        for path in (raw, converted):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)


def remove_volume(root: str, name: str) -> list[str]:
    """Delete every file of volume ``name``; return the paths removed."""
    removed = []
    for path in existing_volume_files(root, check_volume_name(name, "name")):
        os.unlink(path)
        removed.append(path)
    return removed


def disk_volumes(pod: StoredPod) -> tuple[StoredVolume, ...]:
    return pod.disk_volumes


def host_volumes(pod: StoredPod) -> tuple[StoredVolume, ...]:
    return pod.host_volumes


disk_target = layout.disk_target
