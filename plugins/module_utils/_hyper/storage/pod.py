# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""A pod's storage on its way into the VM: volume disks and virtio-fs shares in the domain, mounts in the guest.

``PodStorage`` is made from a stored spec. On the host it creates missing disk volumes (and can
undo that), gives the domain its extra disks and filesystems, and adds bind mounts to the
containers' runtime configs. At boot, before any container starts, ``setup`` mounts every volume
and share in the guest and writes the injected files, through the guest agent, with argv lists.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import AgentError, HyperError, SpecError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest import layout
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.agent import GuestAgent
from ansible_collections.hyper.pods.plugins.module_utils._hyper.host.commands import Runner, run
from ansible_collections.hyper.pods.plugins.module_utils._hyper.images.bundle import ROOTFS_DIR, UserDb, bundle_path, load_user_db, resolve_user
from ansible_collections.hyper.pods.plugins.module_utils._hyper.images.oci import ImageCache, ResolvedImage, parse_image_ref
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.store import FoundPod
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.stored import StoredContainer, StoredPod, StoredVolume
from ansible_collections.hyper.pods.plugins.module_utils._hyper.storage.files import (
    FileSpec,
    guest_file,
    load_staged,
    oci_file_mounts,
    stage_files,
)
from ansible_collections.hyper.pods.plugins.module_utils._hyper.storage.volumes import (
    VolumeSpec,
    check_volumes,
    create_volume,
    disk_target,
    existing_volume_files,
    guest_mount_point,
    oci_mounts,
    share_tag,
    volume_path,
    volume_serial,
)
from ansible_collections.hyper.pods.plugins.module_utils._hyper.virt.domain_xml import DiskSpec, FilesystemSpec

MOUNT_TIMEOUT = 60.0
# The guest's sync before its VM is destroyed: with a disk volume it writes the volume's data, which
# can take a while under TCG; without one it is nearly free (guest/layout.py SYNC_TIMEOUT).
VOLUME_SYNC_TIMEOUT = 60.0


@dataclass(frozen=True)
class GuestFile:
    """One file to write in the guest: where, its content, numeric owner and mode."""

    path: str
    data: bytes = field(repr=False)
    uid: int
    gid: int
    mode: int


def mount_options(volume: StoredVolume, containers: Sequence[StoredContainer]) -> str:
    """``rw`` unless every container that mounts the volume mounts it read-only (or none mounts it)."""
    uses = [m for c in containers for m in c.volumes if m.name == volume.name]
    return "ro" if all(m.read_only for m in uses) else "rw"


def add_mounts(configs: Sequence[tuple[str, dict[str, Any]]], pod: StoredPod) -> None:
    """Append the bind mounts of each container's volumes and files to its runtime config (``(name, config)`` pairs)."""
    by_name = {c.name: c for c in pod.containers}
    for name, config in configs:
        container = by_name.get(name)
        if container is None:
            continue
        extra = oci_mounts(container, pod.volumes) + oci_file_mounts(container)
        if extra:
            config["mounts"] = list(config.get("mounts") or []) + extra


class PodStorage:
    """The storage of one pod (a stored spec) on the host and in its guest."""

    def __init__(self, root: str, pod: StoredPod, *, runner: Runner = run) -> None:
        self.root = root
        self.pod = pod
        self.runner = runner
        self.created: list[str] = []

    # -- host -------------------------------------------------------------------------------------

    def check(self) -> None:
        """Host directories exist; existing volumes have the declared format and size. Creates nothing."""
        check_volumes(self.root, self.pod.volumes, self.runner)

    def create_volumes(self) -> list[str]:
        """Create the disk volumes that do not exist yet; remember them so that ``undo`` can remove them."""
        self.check()
        try:
            for volume in self.pod.disk_volumes:
                made = create_volume(self.root, volume, self.runner)
                if made:
                    self.created.append(made)
        except BaseException:
            self.undo()  # the volumes made before the one that failed
            raise
        return list(self.created)

    def undo(self) -> None:
        """Remove the volumes this object created (a failed create); volumes that existed before are kept."""
        for path in self.created:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        self.created = []

    def disks(self, first: int) -> list[DiskSpec]:
        """The volume disks, writable, with targets after the ``first`` ones the image disks use."""
        return [
            DiskSpec(
                path=volume_path(self.root, v.name, str(v.format)),
                target=disk_target(first + index),
                serial=volume_serial(v.name),
                readonly=False,
                format=str(v.format),
            )
            for index, v in enumerate(self.pod.disk_volumes)
        ]

    def filesystems(self) -> tuple[FilesystemSpec, ...]:
        return tuple(FilesystemSpec(source=str(v.host_path), tag=share_tag(v.name)) for v in self.pod.host_volumes)

    def contents(self, task: Mapping[str, Sequence[FileSpec]], vm_id: Optional[str]) -> dict[str, list[bytes]]:
        """Each container's file contents: from the task (``task``: container → FileSpecs with data) or else the copy kept for ``vm_id``.

        A recreate whose task did not give the containers keeps the files of the VM it replaces.
        """
        out: dict[str, list[bytes]] = {}
        pod = self.pod.name
        for container in self.pod.containers:
            name = container.name
            items = container.files
            if not items:
                continue
            given = task.get(name)
            if given is not None and len(given) == len(items) and all(f.data is not None for f in given):
                out[name] = [f.data for f in given if f.data is not None]
            elif vm_id is not None:
                out[name] = load_staged(self.root, vm_id, pod, container)
            else:
                raise HyperError(f"container {name}: the content of its files is neither in the task nor kept on the host")
        return out

    def stage(self, vm_id: str, contents: Mapping[str, Sequence[bytes]]) -> None:
        """Keep the injected files' contents for the VM on the host (``<root>/pods/<vm id>/files``, root only)."""
        stage_files(self.root, vm_id, contents)

    def owners(self, cache: Optional[ImageCache]) -> dict[tuple[str, int], tuple[int, int]]:
        """(container, file index) → (uid, gid); names are looked up in the container image's /etc/passwd and /etc/group."""
        out: dict[tuple[str, int], tuple[int, int]] = {}
        for container in self.pod.containers:
            users: Optional[UserDb] = None
            for index, item in enumerate(container.files):
                owner = item.owner or "0:0"
                if users is None and not all(part.isdigit() for part in owner.split(":")):
                    users = load_user_db(os.path.join(self._bundle(container, cache), ROOTFS_DIR))
                resolved = resolve_user(owner, users or UserDb(), f"containers[{container.name}].files[{index}].owner")
                out[(container.name, index)] = (resolved.uid, resolved.gid)
        return out

    def guest_files(self, vm_id: str, owners: Mapping[tuple[str, int], tuple[int, int]]) -> list[GuestFile]:
        """Every injected file as the guest gets it: content from the host copy, numeric owner, mode."""
        out: list[GuestFile] = []
        pod = self.pod.name
        for container in self.pod.containers:
            items = container.files
            if not items:
                continue
            name = container.name
            for index, (item, data) in enumerate(zip(items, load_staged(self.root, vm_id, pod, container))):
                uid, gid = owners[(name, index)]
                out.append(GuestFile(guest_file(name, index), data, uid, gid, int(item.mode, 8)))
        return out

    @staticmethod
    def _bundle(container: StoredContainer, cache: Optional[ImageCache]) -> str:
        if cache is None or not container.digest:
            raise HyperError(f"container {container.name}: owner names need the image's /etc/passwd, and its bundle is not known")
        ref = parse_image_ref(container.image_ref, option=f"containers[{container.name}].image")
        return str(bundle_path(cache, ResolvedImage(ref, container.digest, cache.layout, ref.cache_tag, changed=False)))

    # -- guest ------------------------------------------------------------------------------------

    def setup(self, agent: GuestAgent, files: Sequence[GuestFile]) -> None:
        """Mount the volumes and shares in the guest and write the files; before any container starts."""
        containers = self.pod.containers
        for volume in self.pod.disk_volumes:
            target = guest_mount_point(volume)
            opts = mount_options(volume, containers) + ",noatime"
            self._run(agent, [layout.GUEST_COMMAND, "mount-disk", volume_serial(volume.name), target, opts], f"mounting volume {volume.name}")
        for volume in self.pod.host_volumes:
            target = guest_mount_point(volume)
            self._run(agent, ["mkdir", "-p", target], f"creating {target}")
            opts = mount_options(volume, containers)
            self._run(agent, ["mount", "-t", "virtiofs", "-o", opts, share_tag(volume.name), target], f"mounting the host directory {volume.host_path}")
        for item in files:
            self._run(agent, ["mkdir", "-p", os.path.dirname(item.path)], f"creating {os.path.dirname(item.path)}")
            agent.write_file(item.path, item.data)
            self._run(agent, ["chown", f"{item.uid}:{item.gid}", item.path], f"chown {item.path}")
            self._run(agent, ["chmod", format(item.mode, "o"), item.path], f"chmod {item.path}")

    @staticmethod
    def _run(agent: GuestAgent, argv: list[str], what: str) -> None:
        result = agent.exec(argv, timeout=MOUNT_TIMEOUT)
        if result.rc != 0:
            reason = result.stderr.decode("utf-8", errors="replace").strip().removeprefix("hyper-container: ")
            reason = reason or f"exit code {result.rc}, signal {result.signal}"
            raise AgentError(f"{agent.name}: {what} failed: {reason}")


def sync_timeout(pod: StoredPod) -> float:
    """How long the stop waits for the guest's sync: long enough for a disk volume's dirty data."""
    return VOLUME_SYNC_TIMEOUT if pod.disk_volumes else layout.SYNC_TIMEOUT


def check_volume_users(pods: Sequence[FoundPod], pod: str, volumes: Sequence[StoredVolume]) -> None:
    """A disk volume belongs to one pod at a time (two guests mounting one ext4 would corrupt it)."""
    wanted = {v.name for v in volumes if v.kind == "disk"}
    for found in pods:
        other = found.current.pod
        if other.name == pod:
            continue
        shared = sorted(wanted & {v.name for v in other.disk_volumes})
        if shared:
            raise SpecError(f"volumes[{shared[0]}]", shared[0], f"is a volume of pod {other.name} already; a disk volume belongs to one pod at a time")


def volumes_to_purge(root: str, pods: Sequence[FoundPod], pod: str, current: Optional[StoredPod], given: Sequence[VolumeSpec]) -> list[str]:
    """The files ``volumes_purge`` removes: the disk volumes of the pod (stored and given); none may belong to another pod."""
    names = {v.name for v in (current.disk_volumes if current else ())} | {v.name for v in given if v.kind == "disk"}
    check_volume_users(pods, pod, [StoredVolume(name, "disk") for name in sorted(names)])
    return sorted(path for name in names for path in existing_volume_files(root, name))


def purge_volumes(paths: Sequence[str]) -> list[str]:
    removed = []
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
            removed.append(path)
    return removed
