# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""PodImages: a pod's container images on the host: digests (pull, or look up in check mode), disks and runtime configs."""

from __future__ import annotations

import os
from typing import Any, Optional, Protocol, Sequence

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import ImageError, SpecError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest import layout
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.containers import PreparedContainer
from ansible_collections.hyper.pods.plugins.module_utils._hyper.host.commands import Runner, run
from ansible_collections.hyper.pods.plugins.module_utils._hyper.images.auth import RegistryAuth
from ansible_collections.hyper.pods.plugins.module_utils._hyper.images.bundle import (
    ROOTFS_DIR,
    build_disk,
    bundle_path,
    disk_serial,
    load_bundle,
    load_user_db,
    runtime_config,
    unpack,
)
from ansible_collections.hyper.pods.plugins.module_utils._hyper.images.oci import ImageCache, ImageRef, ResolvedImage, parse_image_ref, read_json
from ansible_collections.hyper.pods.plugins.module_utils._hyper.images.runtime_options import apply_options
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.container_checks import check_pod_limits
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.stored import StoredContainer, StoredPod
from ansible_collections.hyper.pods.plugins.module_utils._hyper.virt.domain_xml import DiskSpec

# virtio-blk targets vda..vdz: one per distinct image of the pod.
# Image disks take the first targets (vda …); volumes follow them.
MAX_IMAGES = 26


class NamedImage(Protocol):
    """A container's name and image reference (pod/spec.py's ContainerSpec is one)."""

    @property
    def name(self) -> str: ...

    @property
    def ref(self) -> ImageRef: ...


class PodImages:
    """Image work for pods on top of the shared cache under ``<root>/cache`` (never removed by a pod)."""

    def __init__(self, root: str, *, runner: Runner = run) -> None:
        self.cache = ImageCache(root, runner=runner)
        self.runner = runner

    def digests(self, containers: Sequence[NamedImage], pull: str, check_mode: bool, auth: Optional[RegistryAuth] = None) -> dict[str, Optional[str]]:
        """Container name → manifest digest. Pulls (once per reference) unless in check mode.

        In check mode nothing is copied: a missing local source still fails, and a digest is
        None when the cache does not have the image or the local source changed since it was
        copied (the real run would copy it again). With ``pull: never`` an image not in the cache
        fails in both modes, naming the container and the image.
        """
        by_ref: dict[str, Optional[str]] = {}
        result: dict[str, Optional[str]] = {}
        for container in containers:
            ref = container.ref
            if ref.name not in by_ref:
                try:
                    if pull == "never":
                        by_ref[ref.name] = self.cache.cached(ref).digest
                    else:
                        by_ref[ref.name] = self._lookup(ref) if check_mode else self.cache.pull(ref, pull, auth).digest
                except SpecError as err:
                    # The cache names its option "image"; the user wrote containers[NAME].image.
                    option = f"containers[{container.name}].image" if err.option == "image" else err.option
                    raise SpecError(option, err.value, err.reason) from None
            result[container.name] = by_ref[ref.name]
        return result

    def _lookup(self, ref: ImageRef) -> Optional[str]:
        source = self.cache.source_fingerprint(ref)  # raises SpecError for a missing local image
        found = self.cache.lookup(ref)
        if found is None:
            return None
        if ref.is_local:
            record = read_json(os.path.join(self.cache.refs_dir, ref.cache_tag + ".json"), "cache record")
            if not isinstance(record, dict) or record.get("source") != source:
                return None
        return found.digest

    def prepare(self, pod: StoredPod) -> tuple[list[PreparedContainer], list[DiskSpec]]:
        """Bundles, disks and runtime configs for the containers of a stored spec (made once per digest)."""
        disks: dict[str, DiskSpec] = {}
        prepared: list[PreparedContainer] = []
        for container in pod.containers:
            name = container.name
            digest = container.digest
            if not digest:
                raise ImageError(f"container {name}: image {container.image!r} has no digest in the pod's spec")
            bundle = self._bundle(container, digest)
            if digest not in disks:
                if len(disks) == MAX_IMAGES:
                    raise ImageError(f"a pod can use at most {MAX_IMAGES} different images")
                disks[digest] = DiskSpec(path=build_disk(bundle, runner=self.runner), target=layout.disk_target(len(disks)), serial=disk_serial(digest))
            loaded = load_bundle(bundle)
            check_pod_limits(name, container.options, pod.vcpus, pod.memory)
            config = runtime_config(
                loaded.base_config,
                runtime_options(container),
                hostname=container.options.hostname or pod.hostname,
                image_config=loaded.image_config,
                users=load_user_db(os.path.join(bundle, ROOTFS_DIR)),
            )
            config = apply_options(config, container.options)
            meta = {
                "name": name,
                "serial": disks[digest].serial,
                "restart_policy": container.restart_policy,
                "stop_signal": container.stop_signal,
                "stop_timeout": container.stop_timeout,
            }
            prepared.append(PreparedContainer(name, config, meta))
        return prepared, list(disks.values())

    def _bundle(self, container: StoredContainer, digest: str) -> str:
        """The bundle of ``digest``, unpacked from the cache if need be (it must still hold that digest)."""
        ref = parse_image_ref(container.image_ref, option=f"containers[{container.name}].image")
        resolved = ResolvedImage(ref, digest, self.cache.layout, ref.cache_tag, changed=False)
        path = bundle_path(self.cache, resolved)
        if os.path.isfile(os.path.join(path, "config.json")):
            return path
        cached = self.cache.lookup(ref)
        if cached is None or cached.digest != digest:
            raise ImageError(
                f"container {container.name}: image {container.image!r} ({digest}) is no longer in the image cache; "
                "run the task with its containers (or recreate: true) to pull it again"
            )
        return unpack(self.cache, cached, runner=self.runner)


def runtime_options(container: StoredContainer) -> dict[str, Any]:
    """The stored container's options as ``bundle.runtime_config`` takes them (its JSON form: lists and a mapping)."""
    return {
        "name": container.name,
        "command": list(container.command) if container.command is not None else None,
        "entrypoint": list(container.entrypoint) if container.entrypoint is not None else None,
        "env": dict(container.env),
        "workdir": container.workdir,
        "user": container.user,
    }
