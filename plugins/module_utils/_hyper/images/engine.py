# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""The image modules' calls: ``ensure_image`` (hyper_image), ``image_info`` (hyper_image_info), ``prune_images`` (hyper_image_prune).

Each checks its options first (nothing is touched for a bad one), reads the pods' stored specs from
libvirt (pod/store.py) to know which images are in use, and for a removal holds the image cache's users
lock exclusive (images/cache_lock.py) from that listing to the last file removed, so a pod task that
starts meanwhile waits, and one that runs is waited for.
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import Any, Callable, Iterator, Mapping, Optional, Sequence

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import ImageError, SpecError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.host.info import DEFAULT_ROOT
from ansible_collections.hyper.pods.plugins.module_utils._hyper.images.auth import normalise_registry_auth
from ansible_collections.hyper.pods.plugins.module_utils._hyper.images.cache_lock import REMOVAL_TIMEOUT, cache_users_lock
from ansible_collections.hyper.pods.plugins.module_utils._hyper.images.oci import DEFAULT_TRANSPORT, ImageCache, ImageRef, parse_image_ref, read_json
from ansible_collections.hyper.pods.plugins.module_utils._hyper.images.prune import (
    CachedTag,
    CacheState,
    RemovalPlan,
    apply_removal,
    plan_removal,
    removals_by_kind,
    scan,
)
from ansible_collections.hyper.pods.plugins.module_utils._hyper.images.usage import ImageUse, image_use, pairs_in_use
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.store import FoundPod
from ansible_collections.hyper.pods.plugins.module_utils._hyper.session import Session
from ansible_collections.hyper.pods.plugins.module_utils._hyper.virt.client import DEFAULT_URI

IMAGE_STATES = ("present", "absent")
IMAGE_PULL_POLICIES = ("missing", "always")
ListPods = Callable[[], Sequence[FoundPod]]


# -- options ---------------------------------------------------------------------------------------


def check_root(value: object) -> str:
    if not isinstance(value, str) or not value.startswith("/"):
        raise SpecError("root", value, "must be an absolute path")
    if not os.path.isdir(value):
        raise SpecError("root", value, "is not a directory on the hyper host (the hyper.pods.host role makes it)")
    return value


def check_choice(option: str, value: object, choices: Sequence[str]) -> str:
    if value not in choices:
        raise SpecError(option, value, f"must be one of {', '.join(choices)}")
    return str(value)


def image_option(params: Mapping[str, Any]) -> ImageRef:
    return parse_image_ref(params.get("name"), str(params.get("default_transport") or DEFAULT_TRANSPORT), option="name")


def _recorded_source(cache: ImageCache, ref: ImageRef) -> Optional[str]:
    """What the cache's record says the local source looked like when it was copied."""
    try:
        record = read_json(os.path.join(cache.refs_dir, ref.cache_tag + ".json"), "cache record")
    except ImageError:
        return None
    source = record.get("source") if isinstance(record, dict) else None
    return source if isinstance(source, str) else None


# -- views ---------------------------------------------------------------------------------------------


def image_view(state: CacheState, tag: CachedTag, use: Optional[ImageUse]) -> dict[str, Any]:
    """One cached image as the modules return it."""
    view: dict[str, Any] = {
        "reference": tag.reference,
        "digest": tag.digest,
        "size": tag.size,
        "bundle_bytes": state.bundles.get(tag.digest, 0),
        "disk_bytes": state.disks.get(tag.digest, 0),
    }
    if use is not None:
        view["pods"] = list(use.pods_of(tag.tag, tag.digest))
    return view


def _removal_result(plan: RemovalPlan, state: CacheState) -> dict[str, Any]:
    kept = [{**image_view(state, tag, None), "pods": list(plan.kept[tag.tag])} for tag in state.tags if tag.tag in plan.kept]
    return {
        "removed": [item.to_json() for item in plan.removals],
        "removed_counts": removals_by_kind(plan.removals),
        "bytes_freed": plan.bytes_freed,
        "kept": kept,
    }


# -- the cache, read and changed under its locks -------------------------------------------------------


class CacheTask:
    """The cache of one root, the pods of one libvirt host, and the locks a removal holds."""

    def __init__(self, params: Mapping[str, Any], list_pods: Optional[ListPods] = None, clock: Callable[[], float] = time.time) -> None:
        self.root = check_root(params.get("root") or DEFAULT_ROOT)
        self.cache = ImageCache(self.root)
        self.uri = str(params.get("uri") or DEFAULT_URI)
        self._list_pods = list_pods
        self.clock = clock

    def use(self) -> ImageUse:
        """Which images the pods use, read from libvirt now."""
        if self._list_pods is not None:
            return image_use(pairs_in_use(self._list_pods()))
        with Session(self.uri) as session:
            return image_use(pairs_in_use(session.pods()))

    def has_cache(self) -> bool:
        return os.path.isdir(self.cache.cache_dir)

    @contextlib.contextmanager
    def reading(self) -> Iterator[CacheState]:
        """The cache's state with the layout lock shared (nothing is made when there is no cache)."""
        with contextlib.ExitStack() as stack:
            if os.path.isdir(self.cache.layout):
                stack.enter_context(self.cache.lock(exclusive=False))
            yield scan(self.cache, self.clock())

    @contextlib.contextmanager
    def removing(self, what: str, check_mode: bool) -> Iterator[CacheState]:
        """The cache's state for a removal: the users lock and the layout lock exclusive (in check mode only the layout's, shared)."""
        with contextlib.ExitStack() as stack:
            if not check_mode and self.has_cache():
                stack.enter_context(cache_users_lock(self.root, what, exclusive=True, timeout=REMOVAL_TIMEOUT))
                stack.enter_context(self.cache.lock())
            elif os.path.isdir(self.cache.layout):
                stack.enter_context(self.cache.lock(exclusive=False))
            yield scan(self.cache, self.clock())


# -- hyper_image -------------------------------------------------------------------------------------------


def ensure_image(params: Mapping[str, Any], check_mode: bool, diff: bool = False, list_pods: Optional[ListPods] = None) -> dict[str, Any]:
    """hyper_image: ``present`` pulls ``name`` into the cache (idempotent by digest); ``absent`` removes it unless a pod uses it."""
    state = check_choice("state", params.get("state") or "present", IMAGE_STATES)
    ref = image_option(params)
    pull = check_choice("pull", params.get("pull") or "missing", IMAGE_PULL_POLICIES)
    auth = normalise_registry_auth(params.get("registry_auth"))
    force = bool(params.get("force"))
    task = CacheTask(params, list_pods)
    if state == "absent":
        return _remove_image(task, ref, force, check_mode, diff)

    before = task.cache.lookup(ref)
    try:
        if check_mode:
            source = task.cache.source_fingerprint(ref)  # a missing local source fails in check mode too
            stale = before is not None and ref.is_local and _recorded_source(task.cache, ref) != source
            changed = before is None or stale
            digest = None if changed else before.digest if before else None
        else:
            resolved = task.cache.pull(ref, pull, auth)
            changed = resolved.changed or before is None
            digest = resolved.digest
    except SpecError as err:  # the cache names its option "image"; here it is "name"
        raise SpecError("name" if err.option == "image" else err.option, err.value, err.reason) from None
    result: dict[str, Any] = {"changed": changed}
    with task.reading() as cache_state:
        tag = cache_state.tag(ref.cache_tag)
        use = task.use()
        if tag is not None and digest is not None and tag.digest == digest:
            result["image"] = {"image": ref.original, **image_view(cache_state, tag, use)}
        else:  # check mode, not cached yet (or cached copy out of date)
            result["image"] = {"image": ref.original, "reference": ref.name, "digest": None, "size": None, "pods": list(use.pods_of(ref.cache_tag, None))}
    result["image"]["reference"] = ref.name
    if diff:
        result["diff"] = {
            "before": {"image": ref.name, "digest": before.digest if before else None, "state": "present" if before else "absent"},
            "after": {"image": ref.name, "digest": digest, "state": "present"},
        }
    return result


def _remove_image(task: CacheTask, ref: ImageRef, force: bool, check_mode: bool, diff: bool) -> dict[str, Any]:
    with task.removing(f"hyper_image removing {ref.name}", check_mode) as state:
        tag = state.tag(ref.cache_tag)
        if tag is None:
            result: dict[str, Any] = {"changed": False, "removed": [], "removed_counts": removals_by_kind(()), "bytes_freed": 0, "kept": []}
            if diff:
                result["diff"] = {"before": {"image": ref.name, "state": "absent"}, "after": {"image": ref.name, "state": "absent"}}
            return result
        use = task.use()
        plan = plan_removal(state, use, only=[tag.tag], force=force)
        if plan.kept:
            pods = ", ".join(plan.kept[tag.tag])
            raise ImageError(
                f"image {ref.original!r} ({tag.digest}) is used by the pods {pods}: nothing was removed. "
                "Remove those pods or change their images first, or set force: true (a pod that uses it then fails to start until it is pulled again)",
                {"pods": list(plan.kept[tag.tag]), "digest": tag.digest},
            )
        image = {"image": ref.original, **image_view(state, tag, use)}
        image["reference"] = ref.name
        if not check_mode:
            apply_removal(task.cache, plan)
    result = {"changed": True, "image": image, **_removal_result(plan, state)}
    if diff:
        result["diff"] = {"before": {"image": ref.name, "digest": tag.digest, "state": "present"}, "after": {"image": ref.name, "state": "absent"}}
    return result


# -- hyper_image_info ------------------------------------------------------------------------------------------


def image_info(params: Mapping[str, Any], check_mode: bool, list_pods: Optional[ListPods] = None) -> dict[str, Any]:
    """hyper_image_info: the cached images (one when ``name`` is given), with the pods that use each."""
    ref = image_option(params) if params.get("name") is not None else None
    task = CacheTask(params, list_pods)
    with task.reading() as state:
        use = task.use() if state.tags else ImageUse()
        tags = [tag for tag in state.tags if ref is None or tag.tag == ref.cache_tag]
        images = [image_view(state, tag, use) for tag in sorted(tags, key=lambda item: (item.reference or "", item.tag))]
    return {"changed": False, "images": images}


# -- hyper_image_prune -----------------------------------------------------------------------------------------


def prune_images(params: Mapping[str, Any], check_mode: bool, list_pods: Optional[ListPods] = None) -> dict[str, Any]:
    """hyper_image_prune: remove every cached image, bundle, disk and blob no pod uses (check mode: only list them)."""
    task = CacheTask(params, list_pods)
    with task.removing("hyper_image_prune", check_mode) as state:
        plan = plan_removal(state, task.use())
        if not check_mode:
            apply_removal(task.cache, plan)
    return {"changed": bool(plan.removals), **_removal_result(plan, state)}
