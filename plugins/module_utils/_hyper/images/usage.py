# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""Which cached images the pods use, from their stored specs (libvirt metadata, pod/store.py). Pure.

A pod uses an image by its reference (the cache tag of its ``image_ref``: a later hyper_pod run
looks it up there) and by its digest (its bundle and disk, which the VM attaches at every start).
Stopped pods count as much as running ones.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Mapping, Optional, Sequence

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import ImageError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.store import FoundPod
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.stored import StoredSpecError


def cache_tag(image_ref: str) -> str:
    """The tag of a skopeo reference in the cache layout (as ``ImageRef.cache_tag``)."""
    return "ref-" + hashlib.sha256(image_ref.encode("utf-8")).hexdigest()[:40]


@dataclass(frozen=True)
class ImageUse:
    """Cache tag → pods using that reference, and digest → pods using that digest (pod names, sorted)."""

    tags: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    digests: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def pods_of(self, tag: str, digest: Optional[str]) -> tuple[str, ...]:
        """The pods that use the image cached under ``tag`` with ``digest`` (by either)."""
        names = set(self.tags.get(tag, ()))
        if digest:
            names.update(self.digests.get(digest, ()))
        return tuple(sorted(names))


def pairs_in_use(pods: Sequence[FoundPod]) -> list[tuple[str, str, Optional[str]]]:
    """(pod name, image_ref, digest) of every container of every pod; an unreadable spec is an error naming its VM."""
    found: list[tuple[str, str, Optional[str]]] = []
    for item in pods:
        try:
            stored = item.current.pod
        except StoredSpecError as err:
            raise ImageError(
                f"cannot tell which images the VM {item.current.vm_id} uses ({err.message}); nothing was removed: fix or remove that domain first"
            ) from None
        found.extend((stored.name, container.image_ref, container.digest) for container in stored.containers)
    return found


def image_use(pairs: Sequence[tuple[str, str, Optional[str]]]) -> ImageUse:
    """Fold ``(pod, image_ref, digest)`` triples into an ImageUse."""
    tags: dict[str, set[str]] = {}
    digests: dict[str, set[str]] = {}
    for pod, image_ref, digest in pairs:
        tags.setdefault(cache_tag(image_ref), set()).add(pod)
        if digest:
            digests.setdefault(digest, set()).add(pod)
    return ImageUse(
        {tag: tuple(sorted(names)) for tag, names in tags.items()},
        {digest: tuple(sorted(names)) for digest, names in digests.items()},
    )
