# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""What the image cache holds, and the removal of what no pod uses: scan (reads) → plan (pure) → apply.

The cache (images/oci.py, images/bundle.py) is ``<root>/cache/``: ``oci/`` (one OCI layout, a tag
``ref-<hash>`` per image reference), ``refs/<tag>.json`` (what each reference's source looked like),
``bundles/<hex>/`` and ``disks/<hex>.img`` (by manifest digest). Nothing else under ``<root>/cache``
(the guest image role's ``debs/``, ``kernels/`` …) is ever looked at or removed.

Sizes are what ``du`` counts: allocated blocks, each inode once, directories included, so the bytes
a prune reports freed are the bytes the file system gets back.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Optional, Sequence

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import ImageError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.images.bundle import BUNDLES_DIR, DISKS_DIR
from ansible_collections.hyper.pods.plugins.module_utils._hyper.images.oci import SHA256_DIGEST, ImageCache, blob_path, read_json, write_json_atomic
from ansible_collections.hyper.pods.plugins.module_utils._hyper.images.usage import ImageUse

_REF_NAME = "org.opencontainers.image.ref.name"
_OUR_TAG = re.compile(r"^ref-[0-9a-f]{40}$")
_HEX = re.compile(r"^[0-9a-f]{64}$")
# Leftovers of a killed unpack or disk build (``.tmp-…``) go when they are older than this.
TEMP_AGE = 3600.0
# Manifests and indexes read while walking the layout: bounded, like any file we parse.
MAX_MANIFEST_BYTES = 4 << 20
KINDS = ("tag", "record", "blob", "bundle", "disk", "temp")


def allocated(path: str) -> int:
    """Bytes ``du`` counts for ``path``: allocated blocks of every inode below it (once each), directories too; no symlink followed."""
    seen: set[tuple[int, int]] = set()
    total = 0
    stack = [path]
    while stack:
        current = stack.pop()
        try:
            info = os.lstat(current)
        except FileNotFoundError:
            continue
        if (info.st_dev, info.st_ino) not in seen:
            seen.add((info.st_dev, info.st_ino))
            total += info.st_blocks * 512
        if stat.S_ISDIR(info.st_mode):
            with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                stack.extend(os.path.join(current, name) for name in os.listdir(current))
    return total


@dataclass(frozen=True)
class CachedTag:
    """One image reference in the cache layout: its tag, the reference its record names, its digest and blobs."""

    tag: str
    reference: Optional[str]
    digest: str
    # Manifest, config and layers: digest → bytes as the manifest declares them.
    blobs: Mapping[str, int] = field(default_factory=dict)

    @property
    def size(self) -> int:
        """The image's size in the layout (manifest, config and layers; layers shared with others counted here too)."""
        return sum(self.blobs.values())


@dataclass(frozen=True)
class CacheState:
    """What the cache holds, read once under the cache lock. Paths are absolute; bytes as ``du`` counts them."""

    cache_dir: str
    tags: tuple[CachedTag, ...] = ()
    # Blobs reachable from index entries that are not our tags (never removed, nor what they reach).
    foreign: frozenset[str] = frozenset()
    blobs: Mapping[str, int] = field(default_factory=dict)
    records: Mapping[str, int] = field(default_factory=dict)
    bundles: Mapping[str, int] = field(default_factory=dict)
    disks: Mapping[str, int] = field(default_factory=dict)
    # (path, bytes, age in seconds)
    temps: tuple[tuple[str, int, float], ...] = ()

    def tag(self, name: str) -> Optional[CachedTag]:
        return next((item for item in self.tags if item.tag == name), None)


@dataclass(frozen=True)
class Removal:
    kind: str
    path: str
    bytes: int
    digest: Optional[str] = None
    reference: Optional[str] = None

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "path": self.path, "bytes": self.bytes, "digest": self.digest, "reference": self.reference}


@dataclass(frozen=True)
class RemovalPlan:
    """What goes (in the order it is removed) and what stays because a pod uses it (tag → pod names)."""

    removals: tuple[Removal, ...] = ()
    kept: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def bytes_freed(self) -> int:
        return sum(item.bytes for item in self.removals)

    @property
    def removed_tags(self) -> frozenset[str]:
        return frozenset(item.path.rsplit(":", 1)[1] for item in self.removals if item.kind == "tag")


# -- scan ------------------------------------------------------------------------------------------


def _manifest_blobs(layout: str, digest: str, seen: set[str]) -> dict[str, int]:
    """Digest → declared size of the blobs a manifest (or an index, recursively) reaches, itself included."""
    found: dict[str, int] = {}
    pending = [(digest, 0)]
    while pending:
        current, declared = pending.pop()
        if current in seen or not SHA256_DIGEST.match(current):
            continue
        seen.add(current)
        path = blob_path(layout, current)
        try:
            size = os.lstat(path).st_size
        except FileNotFoundError:
            continue
        found[current] = declared or size
        if size > MAX_MANIFEST_BYTES:
            continue  # a layer, not a manifest
        data = _read_small_json(path)
        if not isinstance(data, dict):
            continue
        children: list[Any] = []
        if isinstance(data.get("config"), dict):
            children.append(data["config"])
        for key in ("layers", "manifests"):
            if isinstance(data.get(key), list):
                children.extend(data[key])
        for child in children:
            if isinstance(child, dict) and isinstance(child.get("digest"), str):
                size_value = child.get("size")
                pending.append((child["digest"], size_value if isinstance(size_value, int) and not isinstance(size_value, bool) else 0))
    return found


def _read_small_json(path: str) -> Any:
    """A blob parsed as JSON when it is one (layers are not: None)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(1)
            if head not in (b"{", b"["):
                return None
            return read_json(path, "OCI blob")
    except (OSError, ImageError):
        return None


def scan(cache: ImageCache, now: float) -> CacheState:
    """Read what the cache holds (call it with the cache lock held; nothing is changed)."""
    layout = cache.layout
    tags: list[CachedTag] = []
    foreign: set[str] = set()
    index_path = os.path.join(layout, "index.json")
    if os.path.isfile(index_path):
        index = read_json(index_path, "OCI index")
        manifests = index.get("manifests") if isinstance(index, dict) else None
        if not isinstance(manifests, list):
            raise ImageError(f"{index_path} has no manifests list: not an OCI image layout; nothing was removed")
        for desc in manifests:
            if not isinstance(desc, dict) or not isinstance(desc.get("digest"), str):
                continue
            name = (desc.get("annotations") or {}).get(_REF_NAME)
            if isinstance(name, str) and _OUR_TAG.match(name):
                record = _record(cache, name)
                reference = record.get("image") if isinstance(record.get("image"), str) else None
                tags.append(CachedTag(name, reference, desc["digest"], _manifest_blobs(layout, desc["digest"], set())))
            else:
                foreign.update(_manifest_blobs(layout, desc["digest"], set()))
    blobs_dir = os.path.join(layout, "blobs", "sha256")
    blobs = {f"sha256:{name}": allocated(os.path.join(blobs_dir, name)) for name in _listdir(blobs_dir) if _HEX.match(name)}
    records = {
        name[: -len(".json")]: allocated(os.path.join(cache.refs_dir, name))
        for name in _listdir(cache.refs_dir)
        if name.endswith(".json") and _OUR_TAG.match(name[: -len(".json")])
    }
    bundles_dir = os.path.join(cache.cache_dir, BUNDLES_DIR)
    disks_dir = os.path.join(cache.cache_dir, DISKS_DIR)
    bundles = {f"sha256:{name}": allocated(os.path.join(bundles_dir, name)) for name in _listdir(bundles_dir) if _HEX.match(name)}
    disks = {f"sha256:{name[:-4]}": allocated(os.path.join(disks_dir, name)) for name in _listdir(disks_dir) if name.endswith(".img") and _HEX.match(name[:-4])}
    temps = []
    for directory in (bundles_dir, disks_dir, cache.refs_dir, layout):
        for name in _listdir(directory):
            if name.startswith(".tmp-"):
                path = os.path.join(directory, name)
                with contextlib.suppress(FileNotFoundError):
                    temps.append((path, allocated(path), now - os.lstat(path).st_mtime))
    return CacheState(cache.cache_dir, tuple(tags), frozenset(foreign), blobs, records, bundles, disks, tuple(sorted(temps)))


def _record(cache: ImageCache, tag: str) -> dict[str, Any]:
    try:
        data = read_json(os.path.join(cache.refs_dir, tag + ".json"), "cache record")
    except ImageError:
        return {}
    return data if isinstance(data, dict) else {}


def _listdir(path: str) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except (FileNotFoundError, NotADirectoryError):
        return []


# -- plan (pure) -------------------------------------------------------------------------------------


def plan_removal(state: CacheState, use: ImageUse, *, only: Optional[Iterable[str]] = None, force: bool = False, temp_age: float = TEMP_AGE) -> RemovalPlan:
    """What a prune (``only`` None: every tag no pod uses) or an image removal (``only``: those tags) takes away.

    A tag stays while a pod uses its reference, or its digest when no other staying tag has that digest
    (``force`` removes ``only``'s tags all the same). A bundle or disk goes when no pod uses its digest and no remaining tag points at it (a
    prune: whenever no pod uses its digest; with ``force``, the removed tags' even then). A blob goes
    when no remaining tag (nor any index entry not ours) reaches it. A prune also removes the records
    of tags that are gone and temporary leftovers older than ``temp_age`` seconds.
    """
    pruning = only is None
    wanted = {item.tag for item in state.tags} if only is None else set(only)
    removals: list[Removal] = []
    kept: dict[str, tuple[str, ...]] = {}
    removed: list[CachedTag] = []
    # Tags that stay whatever the digests: not asked about, or a pod uses their reference.
    fixed = [item for item in state.tags if item.tag not in wanted or (use.tags.get(item.tag) and not force)]
    kept_digests = {item.digest for item in fixed}
    for item in state.tags:
        if item.tag not in wanted:
            continue
        if use.tags.get(item.tag) and not force:
            kept[item.tag] = use.pods_of(item.tag, item.digest)
            continue
        # A pod uses the digest under another reference: one tag keeps its blobs (and with them its bundle and disk).
        by_digest = use.digests.get(item.digest, ())
        if by_digest and not force and item.digest not in kept_digests:
            kept[item.tag] = tuple(by_digest)
            kept_digests.add(item.digest)
            continue
        removed.append(item)
    staying = [item for item in state.tags if item not in removed]
    reachable = set(state.foreign).union(*(item.blobs for item in staying)) if staying else set(state.foreign)
    staying_digests = {item.digest for item in staying}
    gone_digests = {item.digest for item in removed}

    blobs_dir = os.path.join(state.cache_dir, "oci", "blobs", "sha256")
    for item in removed:
        # A tag is an entry of the layout's index.json, named as umoci names it (LAYOUT:TAG); it frees no bytes itself.
        removals.append(Removal("tag", os.path.join(state.cache_dir, "oci") + ":" + item.tag, 0, item.digest, item.reference))
        if item.tag in state.records:
            removals.append(Removal("record", os.path.join(state.cache_dir, "refs", item.tag + ".json"), state.records[item.tag], item.digest, item.reference))
    if pruning:
        present = {item.tag for item in state.tags}
        for tag, size in sorted(state.records.items()):
            if tag not in present:
                removals.append(Removal("record", os.path.join(state.cache_dir, "refs", tag + ".json"), size))
    candidates = set(state.blobs) if pruning else set().union(*(item.blobs for item in removed)) if removed else set()
    for digest in sorted(candidates - reachable):
        if digest in state.blobs:
            removals.append(Removal("blob", os.path.join(blobs_dir, digest.split(":", 1)[1]), state.blobs[digest], digest))
    for kind, held, directory, suffix in (("bundle", state.bundles, "bundles", ""), ("disk", state.disks, "disks", ".img")):
        for digest in sorted(held):
            used = bool(use.digests.get(digest))
            # A prune: whatever no pod uses. A removal: only the removed tags' digests that nothing else keeps.
            goes = not used if pruning else digest in gone_digests and digest not in staying_digests and (force or not used)
            if goes:
                removals.append(Removal(kind, os.path.join(state.cache_dir, directory, digest.split(":", 1)[1] + suffix), held[digest], digest))
    if pruning:
        removals.extend(Removal("temp", path, size) for path, size, age in state.temps if age >= temp_age)
    return RemovalPlan(tuple(removals), kept)


# -- apply ---------------------------------------------------------------------------------------------


def apply_removal(cache: ImageCache, plan: RemovalPlan) -> None:
    """Carry out ``plan`` (the cache lock held): the index first, so no reader finds a tag whose blobs are going."""
    tags = plan.removed_tags
    if tags:
        index_path = os.path.join(cache.layout, "index.json")
        index = read_json(index_path, "OCI index")
        index["manifests"] = [d for d in index["manifests"] if not (isinstance(d, dict) and (d.get("annotations") or {}).get(_REF_NAME) in tags)]
        write_json_atomic(index_path, index)
    for item in plan.removals:
        if item.kind == "tag":
            continue
        try:
            if os.path.isdir(item.path) and not os.path.islink(item.path):
                shutil.rmtree(item.path)
            else:
                os.unlink(item.path)
        except FileNotFoundError:
            continue
        except OSError as err:
            raise ImageError(f"cannot remove {item.path} from the image cache: {err.strerror}") from None


def removals_by_kind(removals: Sequence[Removal]) -> dict[str, int]:
    counts = {kind: 0 for kind in KINDS}
    for item in removals:
        counts[item.kind] += 1
    return counts
