# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""The pod's config disk: everything its guest needs to bring the pod up by itself, at every boot.

A tar archive (ustar, deterministic: sorted, mtime 0, numeric owners) on a raw, read-only virtio-blk
disk with serial ``hyper-config``, after a 4 KiB header ``hyper-config 1 LENGTH\n`` (NUL-padded) that
gives the archive's length. The guest's ``hyper-boot`` (roles/guest_image) finds the disk by serial at
every boot, reads the header, extracts the LENGTH bytes after it (``dd | tar``) into ``/run/hyper`` and
runs ``boot/plan``; nothing in the initrd is needed beyond busybox. Busybox ``tar`` reads its input
to the end in 512-byte reads: straight from the device that was the whole 16 MiB disk, about 0.3 s
of a TCG guest's boot.

The archive, relative to the guest's ``/run/hyper``::

    boot/plan                             one step a line, words the host checked (TOKEN):
                                          net MAC MODE GATEWAY ROUTE ...  (net/up.sh's argv)
                                          disk SERIAL TARGET OPTIONS      (hyper-container mount-disk)
                                          share TAG TARGET OPTIONS        (virtio-fs)
                                          vip ADDRESS/PREFIX              (a service address on lo)
                                          start NAME                      (hyper-container start)
    net/up.sh                             the interfaces script (guest/scripts/net_up.py)
    containers/NAME/config.json           the OCI runtime config (env values in clear: root only)
    containers/NAME/container.json        restart policy, stop signal and timeout, image serial
    containers/NAME/upper/etc/resolv.conf
    containers/NAME/upper/etc/haproxy/…   the services' haproxy.cfg and state (hyper_service)
    files/NAME/INDEX                      injected files, with their owner and mode

On the host the disk is ``<root>/pods/<vm id>/config.tar`` (0600, root; its directory 0711), removed with
the pod. QEMU keeps the file open, so a change is written into the same inode (a rename would
leave the running QEMU, and the guest's next reboot, on the old content).
"""

from __future__ import annotations

import io
import json
import os
import re
import tarfile
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import HyperError, SpecError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest import layout
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.containers import ROOT_PATH, PreparedContainer, container_meta
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.scripts import net_up
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.stored import StoredPod
from ansible_collections.hyper.pods.plugins.module_utils._hyper.storage.files import pod_dir
from ansible_collections.hyper.pods.plugins.module_utils._hyper.storage.pod import GuestFile, mount_options
from ansible_collections.hyper.pods.plugins.module_utils._hyper.storage.volumes import guest_mount_point, share_tag, volume_serial
from ansible_collections.hyper.pods.plugins.module_utils._hyper.virt.domain_xml import DiskSpec

CONFIG_DISK = "config.tar"
SERVICES_FILE = "services.json"
PLAN = "boot/plan"
UP_SCRIPT = "net/up.sh"
MIB = 1 << 20
# QEMU runs as its own user (libvirt-qemu) and libvirt hands it the disk file while the VM runs (DAC
# relabelling, restored to root:root 0600 at the stop): the pod's directory lets it pass, not list.
# Everything else in it stays root's: files/ 0700, env.json and services.json 0600.
POD_DIR_MODE = 0o711
# The disk's size is fixed while QEMU runs: room for later service changes, sparse on the host.
MIN_SIZE = 16 * MIB
HEADROOM = 8 * MIB
# The disk's header: the archive follows it; the guest reads LENGTH bytes of it and no more.
HEADER_SIZE = 4096
HEADER_MAGIC = b"hyper-config 1 "
# A word of boot/plan: the guest splits lines on blanks with globbing off; nothing else can be in one.
TOKEN = re.compile(r"[A-Za-z0-9_.,:/=+@-]{1,255}")
VERBS = ("net", "disk", "share", "vip", "start")
# The services' files in the haproxy container (service/haproxy.py CONFIG_PATH, STATE_PATH).
SERVICE_FILES = ("etc/haproxy/haproxy.cfg", "etc/haproxy/hyper-services.json")


@dataclass(frozen=True)
class Entry:
    """One file of the archive: its path under /run/hyper, content, numeric owner and mode."""

    path: str
    data: bytes = field(repr=False)
    uid: int = 0
    gid: int = 0
    mode: int = 0o644


@dataclass(frozen=True)
class Services:
    """A pod's services as hyper_service last applied them: the haproxy container, its files, the VIPs."""

    container: str
    config: str = field(repr=False)
    state: Mapping[str, Any] = field(default_factory=dict)
    vips: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"container": self.container, "config": self.config, "state": dict(self.state), "vips": list(self.vips)}


def config_path(root: str, vm_id: str) -> str:
    return os.path.join(pod_dir(root, vm_id), CONFIG_DISK)


def has_config_disk(root: str, vm_id: str) -> bool:
    """A pod made by this collection since the config disk exists; older pods boot over the agent."""
    return os.path.isfile(config_path(root, vm_id))


def config_disk_spec(root: str, vm_id: str, index: int) -> DiskSpec:
    return DiskSpec(path=config_path(root, vm_id), target=layout.disk_target(index), serial=layout.CONFIG_SERIAL, readonly=True, format="raw")


# -- the plan (pure) -------------------------------------------------------------------------------


def render_plan(steps: Sequence[Sequence[str]]) -> bytes:
    """boot/plan: one step a line; every word checked against TOKEN, every verb known."""
    lines = []
    for step in steps:
        if not step or step[0] not in VERBS:
            raise HyperError(f"config disk: unknown boot step {list(step)!r}")
        for word in step:
            if not TOKEN.fullmatch(word):
                raise HyperError(f"config disk: boot step {step[0]} has a word the guest cannot take: {word!r}")
        lines.append(" ".join(step))
    return ("\n".join(lines) + "\n").encode("ascii") if lines else b""


def boot_steps(pod: StoredPod, net_args: Sequence[str], names: Sequence[str], vips: Sequence[str] = ()) -> list[list[str]]:
    """The steps in order: interfaces, volumes, shares, service addresses, then the containers."""
    steps: list[list[str]] = []
    if net_args:
        steps.append(["net", *net_args])
    for volume in pod.disk_volumes:
        steps.append(["disk", volume_serial(volume.name), guest_mount_point(volume), mount_options(volume, pod.containers) + ",noatime"])
    for volume in pod.host_volumes:
        steps.append(["share", share_tag(volume.name), guest_mount_point(volume), mount_options(volume, pod.containers)])
    steps += [["vip", vip] for vip in vips]
    steps += [["start", layout.check_container_name(name)] for name in names]
    return steps


# -- the archive's entries (pure) ------------------------------------------------------------------


def _json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode("utf-8")


def container_entries(prepared: PreparedContainer, resolv_conf: str) -> list[Entry]:
    """config.json, container.json and resolv.conf of one container (checked as GuestPod.write_container checks them)."""
    name = layout.check_container_name(prepared.name)
    root = prepared.config.get("root")
    if not isinstance(root, Mapping) or root.get("path") != ROOT_PATH:
        where = root.get("path") if isinstance(root, Mapping) else root
        raise SpecError("config.root.path", where, f"must be {ROOT_PATH!r}: the guest mounts the overlay there")
    base = f"containers/{name}"
    return [
        Entry(f"{base}/{layout.CONFIG_FILE}", _json(prepared.config), mode=0o600),
        Entry(f"{base}/{layout.META_FILE}", _json(container_meta(name, prepared.meta))),
        Entry(f"{base}/upper/etc/resolv.conf", resolv_conf.encode("utf-8")),
    ]


def file_entries(files: Sequence[GuestFile]) -> list[Entry]:
    prefix = layout.RUN_DIR + "/"
    out = []
    for item in files:
        if not item.path.startswith(prefix) or ".." in item.path.split("/"):
            raise HyperError(f"config disk: an injected file's guest path {item.path} is not under {layout.RUN_DIR}")
        out.append(Entry(item.path[len(prefix) :], item.data, item.uid, item.gid, item.mode))
    return out


def service_entries(services: Optional[Services]) -> list[Entry]:
    if services is None:
        return []
    base = f"containers/{layout.check_container_name(services.container)}/upper"
    state = json.dumps(dict(services.state), sort_keys=True, indent=1).encode("utf-8")
    return [Entry(f"{base}/{SERVICE_FILES[0]}", services.config.encode("utf-8")), Entry(f"{base}/{SERVICE_FILES[1]}", state)]


def pod_entries(
    pod: StoredPod,
    containers: Sequence[PreparedContainer],
    net_args: Sequence[str],
    resolv_conf: str,
    files: Sequence[GuestFile] = (),
    services: Optional[Services] = None,
) -> list[Entry]:
    """Every file of a pod's config disk, from its stored spec and what the host prepared."""
    entries = [Entry(UP_SCRIPT, net_up.SCRIPT.encode("ascii"), mode=0o755)] if net_args else []
    for prepared in containers:
        entries += container_entries(prepared, resolv_conf)
    entries += file_entries(files)
    entries += service_entries(services)
    vips = services.vips if services is not None else ()
    entries.append(Entry(PLAN, render_plan(boot_steps(pod, net_args, [c.name for c in containers], vips))))
    return entries


def with_services(entries: Sequence[Entry], services: Optional[Services]) -> list[Entry]:
    """The entries of an existing disk with its services replaced (a hyper_service change): files and ``vip`` steps."""
    service_paths = {f"upper/{path}" for path in SERVICE_FILES}
    kept = [e for e in entries if e.path != PLAN and not (e.path.startswith("containers/") and e.path.split("/", 2)[-1] in service_paths)]
    plan = next((e.data for e in entries if e.path == PLAN), b"").decode("ascii", "replace").splitlines()
    steps = [line.split() for line in plan if line.strip() and not line.startswith("vip ")]
    vips = [["vip", vip] for vip in (services.vips if services is not None else ())]
    first_start = next((i for i, s in enumerate(steps) if s[0] == "start"), len(steps))
    steps[first_start:first_start] = vips
    return [*kept, *service_entries(services), Entry(PLAN, render_plan(steps))]


# -- the archive -----------------------------------------------------------------------------------


def build_tar(entries: Sequence[Entry]) -> bytes:
    """The archive: directories first (0755, root), every file once, sorted; byte for byte the same for the same entries."""
    paths = [e.path for e in entries]
    if len(set(paths)) != len(paths):
        raise HyperError("config disk: a path is in it twice: " + ", ".join(sorted({p for p in paths if paths.count(p) > 1})))
    directories = sorted({"/".join(p.split("/")[:i]) for p in paths for i in range(1, p.count("/") + 1)})
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        for directory in directories:
            info = tarfile.TarInfo(directory)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            archive.addfile(info)
        for entry in sorted(entries, key=lambda e: e.path):
            info = tarfile.TarInfo(entry.path)
            info.size, info.mode, info.uid, info.gid = len(entry.data), entry.mode, entry.uid, entry.gid
            archive.addfile(info, io.BytesIO(entry.data))
    return buffer.getvalue()


def read_tar(data: bytes) -> list[Entry]:
    """The files of an archive this module built (the host's own file: directories are implied)."""
    out = []
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as archive:
        for info in archive:
            if info.isfile():
                handle = archive.extractfile(info)
                out.append(Entry(info.name, handle.read() if handle else b"", info.uid, info.gid, info.mode))
    return out


def disk_size(length: int) -> int:
    return max(MIN_SIZE, -(-(length + HEADROOM) // MIB) * MIB)


def disk_image(archive: bytes) -> bytes:
    """The disk's content: the header with the archive's length, then the archive."""
    header = HEADER_MAGIC + str(len(archive)).encode("ascii") + b"\n"
    return header.ljust(HEADER_SIZE, b"\0") + archive


def disk_archive(data: bytes, path: str = "the config disk") -> bytes:
    """The archive of a disk's content (the host's own file; checked all the same)."""
    line = data[:HEADER_SIZE].split(b"\n", 1)[0]
    length = line[len(HEADER_MAGIC) :]
    if not line.startswith(HEADER_MAGIC) or not length.isdigit() or HEADER_SIZE + int(length) > len(data):
        raise HyperError(f"{path} is not a pod's config disk (bad header {line[:40]!r}); recreate the pod")
    return data[HEADER_SIZE : HEADER_SIZE + int(length)]


def write_disk(path: str, archive: bytes, *, in_place: bool) -> None:
    """Write the disk of ``archive`` at ``path`` (0600, directory 0711), in the file's own inode when ``in_place``.

    ``in_place`` (the VM exists, so QEMU may hold the file open): the content is written over the
    old one, the rest cut and the file grown back to its size (sparse, nothing of the old content
    left); an archive that no longer fits is an error, as QEMU would not see past the old size.
    Otherwise a new file replaces any old one by rename.
    """
    data = disk_image(archive)
    directory = os.path.dirname(path)
    os.makedirs(os.path.dirname(directory), exist_ok=True)
    os.makedirs(directory, mode=POD_DIR_MODE, exist_ok=True)
    os.chmod(directory, POD_DIR_MODE)
    if in_place and os.path.exists(path):
        fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW)
        try:
            size = os.fstat(fd).st_size
            if len(data) > size:
                raise HyperError(f"the pod's config ({len(data)} bytes) no longer fits its config disk ({size} bytes); recreate the pod")
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.ftruncate(fd, len(data))
            os.ftruncate(fd, size)
            os.fsync(fd)
        finally:
            os.close(fd)
        return
    temporary = f"{path}.{os.getpid()}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.truncate(disk_size(len(data)))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def read_disk(path: str) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as err:
        raise HyperError(f"cannot read the pod's config disk {path}: {err.strerror}") from None
    with os.fdopen(fd, "rb") as handle:
        return handle.read()


def read_archive(path: str) -> bytes:
    """The archive on the pod's config disk at ``path``."""
    return disk_archive(read_disk(path), path)


# -- the services' copy on the host ------------------------------------------------------------------


def services_path(root: str, vm_id: str) -> str:
    return os.path.join(pod_dir(root, vm_id), SERVICES_FILE)


def load_services(root: str, vm_id: str) -> Optional[Services]:
    """The services hyper_service last applied to the VM (the host's copy, never the guest's); None when it never did."""
    try:
        data = read_disk(services_path(root, vm_id))
    except HyperError:
        return None
    try:
        value = json.loads(data)
        return Services(str(value["container"]), str(value["config"]), dict(value["state"]), tuple(str(v) for v in value["vips"]))
    except (ValueError, KeyError, TypeError):
        raise HyperError(f"{services_path(root, vm_id)} does not hold a pod's services; run hyper_service again") from None


def save_services(root: str, vm_id: str, services: Services) -> None:
    path = services_path(root, vm_id)
    fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(_json(services.to_json()))
    os.replace(path + ".tmp", path)


def update_services(root: str, vm_id: str, services: Services) -> bool:
    """Keep ``services`` on the host and write them into the pod's config disk (in place); False for a pod without one."""
    path = config_path(root, vm_id)
    if not os.path.isfile(path) or load_services(root, vm_id) == services:
        return False
    save_services(root, vm_id, services)
    entries = with_services(read_tar(read_archive(path)), services)
    write_disk(path, build_tar(entries), in_place=True)
    return True
