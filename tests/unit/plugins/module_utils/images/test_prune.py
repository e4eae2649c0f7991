# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The image cache's removal plan (a table over a made-up cache), and scan → plan → apply on a real one."""

from __future__ import annotations

import os
import subprocess
from typing import Any, Optional

import pytest

from ansible_collections.hyper.pods.plugins.module_utils._hyper.images.bundle import build_disk, unpack
from ansible_collections.hyper.pods.plugins.module_utils._hyper.images.oci import ImageCache, layout_tags, parse_image_ref
from ansible_collections.hyper.pods.plugins.module_utils._hyper.images.prune import CachedTag, CacheState, allocated, apply_removal, plan_removal, scan
from ansible_collections.hyper.pods.plugins.module_utils._hyper.images.usage import ImageUse, cache_tag, image_use
from ansible_collections.hyper.pods.tests.unit.plugins.module_utils.images.test_oci import build_tiny_layout, needs_tools


def d(name: str) -> str:
    """A digest named for the table: sha256 of 64 hex made from the name."""
    return "sha256:" + (name.encode().hex() * 64)[:64]


def t(name: str) -> str:
    return "ref-" + (name.encode().hex() * 40)[:40]


NAMES = {d(n): n for n in ("D0", "D1", "D2", "D3", "D4", "M1", "C1", "L1", "M2", "C2", "M3", "C3", "L3", "O")}
NAMES.update({t(n): n for n in ("a", "b", "c", "e", "x")})
CACHE = "/r/cache"


def tag(name: str, digest: str, blobs: tuple[str, ...]) -> CachedTag:
    return CachedTag(t(name), f"oci:/src:{name}", d(digest), {d(blob): 100 for blob in blobs})


A = tag("a", "D1", ("M1", "C1", "L1"))
B = tag("b", "D2", ("M2", "C2", "L1"))
C = tag("c", "D3", ("M3", "C3", "L3"))
E = tag("e", "D1", ("M1", "C1", "L1"))  # another reference with a's digest
BLOBS = ("M1", "C1", "L1", "M2", "C2", "M3", "C3", "L3", "O")


def state(*tags: CachedTag) -> CacheState:
    return CacheState(
        CACHE,
        tags=tags,
        blobs={d(b): 4096 for b in BLOBS},
        records={t(n): 4096 for n in ("a", "b", "c", "e", "x") if n == "x" or any(item.tag == t(n) for item in tags)},
        bundles={d("D1"): 8192, d("D2"): 8192, d("D4"): 8192},
        disks={d("D1"): 16384, d("D3"): 16384},
        temps=((f"{CACHE}/bundles/.tmp-old", 4096, 7200.0), (f"{CACHE}/disks/.tmp-new", 4096, 60.0)),
    )


def use(*pairs: tuple[str, Optional[str], Optional[str]]) -> ImageUse:
    """(pod, tag name or None, digest name or None)."""
    tags: dict[str, tuple[str, ...]] = {}
    digests: dict[str, tuple[str, ...]] = {}
    for pod, tag_name, digest in pairs:
        if tag_name:
            tags[t(tag_name)] = (*tags.get(t(tag_name), ()), pod)
        if digest:
            digests[d(digest)] = (*digests.get(d(digest), ()), pod)
    return ImageUse(tags, digests)


def short(plan: Any) -> set[str]:
    """Removals as KIND:NAME (NAME from the table, or the file name of a leftover)."""
    out = set()
    for item in plan.removals:
        key = item.path.rsplit(":", 1)[1] if item.kind == "tag" else os.path.basename(item.path)
        key = key[: -len(".json")] if item.kind == "record" else key[: -len(".img")] if item.kind == "disk" else key
        full = key if key.startswith("ref-") or key.startswith(".tmp") else f"sha256:{key}"
        out.add(f"{item.kind}:{NAMES.get(full, key)}")
    return out


ALL_BLOBS = {f"blob:{b}" for b in BLOBS}

PRUNE_CASES = [
    (
        "no pod: everything but the young leftover",
        (A, B, C),
        use(),
        {"tag:a", "tag:b", "tag:c", "record:a", "record:b", "record:c", "record:x", *ALL_BLOBS}
        | {"bundle:D1", "bundle:D2", "bundle:D4", "disk:D1", "disk:D3", "temp:.tmp-old"},
        {},
    ),
    (
        "a pod on a keeps a's tag, blobs, bundle and disk",
        (A, B, C),
        use(("web", "a", "D1")),
        {"tag:b", "tag:c", "record:b", "record:c", "record:x", "blob:M2", "blob:C2", "blob:M3", "blob:C3", "blob:L3", "blob:O"}
        | {"bundle:D2", "bundle:D4", "disk:D3", "temp:.tmp-old"},
        {"a": ("web",)},
    ),
    (
        "a pod using b's digest under another reference keeps b",
        (A, B, C),
        use(("api", "z", "D2")),
        {"tag:a", "tag:c", "record:a", "record:c", "record:x", "blob:M1", "blob:C1", "blob:M3", "blob:C3", "blob:L3", "blob:O"}
        | {"bundle:D1", "bundle:D4", "disk:D1", "disk:D3", "temp:.tmp-old"},
        {"b": ("api",)},
    ),
    (
        "a pod on a with an older digest: the tag stays, a's bundle and disk of the newer digest go",
        (A, B, C),
        use(("old", "a", "D0")),
        {"tag:b", "tag:c", "record:b", "record:c", "record:x", "blob:M2", "blob:C2", "blob:M3", "blob:C3", "blob:L3", "blob:O"}
        | {"bundle:D1", "bundle:D2", "bundle:D4", "disk:D1", "disk:D3", "temp:.tmp-old"},
        {"a": ("old",)},
    ),
    (
        "every image in use: only what nothing reaches",
        (A, B, C),
        use(("p1", "a", "D1"), ("p2", "b", "D2"), ("p3", "c", "D3")),
        {"record:x", "blob:O", "bundle:D4", "temp:.tmp-old"},
        {"a": ("p1",), "b": ("p2",), "c": ("p3",)},
    ),
    (
        "two references of one digest, a pod on neither's reference: one tag keeps the digest",
        (A, E),
        use(("web", "z", "D1")),
        {
            "tag:e",
            "record:e",
            "record:x",
            "blob:M2",
            "blob:C2",
            "blob:M3",
            "blob:C3",
            "blob:L3",
            "blob:O",
            "bundle:D2",
            "bundle:D4",
            "disk:D3",
            "temp:.tmp-old",
        },
        {"a": ("web",)},
    ),
    (
        "two references of one digest, a pod on e's: a goes, its blobs stay with e",
        (A, E),
        use(("web", "e", "D1")),
        {
            "tag:a",
            "record:a",
            "record:x",
            "blob:M2",
            "blob:C2",
            "blob:M3",
            "blob:C3",
            "blob:L3",
            "blob:O",
            "bundle:D2",
            "bundle:D4",
            "disk:D3",
            "temp:.tmp-old",
        },
        {"e": ("web",)},
    ),
    ("an empty cache", (), use(("web", "a", "D1")), {"record:x", *ALL_BLOBS, "bundle:D2", "bundle:D4", "disk:D3", "temp:.tmp-old"}, {}),
]


@pytest.mark.parametrize(("what", "tags", "image_use_", "removed", "kept"), PRUNE_CASES, ids=[case[0] for case in PRUNE_CASES])
def test_prune_selection(what: str, tags: tuple[CachedTag, ...], image_use_: ImageUse, removed: set[str], kept: dict[str, tuple[str, ...]]) -> None:
    plan = plan_removal(state(*tags), image_use_)
    assert short(plan) == removed, what
    assert {NAMES[tag_]: pods for tag_, pods in plan.kept.items()} == kept


ABSENT_CASES = [
    (
        "unused: its tag, record, own blobs, bundle and disk",
        (A, B, C),
        "a",
        use(),
        False,
        {"tag:a", "record:a", "blob:M1", "blob:C1", "bundle:D1", "disk:D1"},
        {},
    ),
    ("in use: refused, nothing goes", (A, B, C), "a", use(("web", "a", "D1")), False, set(), {"a": ("web",)}),
    ("in use by digest only: refused too", (A, B, C), "a", use(("web", "z", "D1")), False, set(), {"a": ("web",)}),
    ("in use, forced", (A, B, C), "a", use(("web", "a", "D1")), True, {"tag:a", "record:a", "blob:M1", "blob:C1", "bundle:D1", "disk:D1"}, {}),
    ("another reference keeps the digest's blobs, bundle and disk", (A, B, E), "a", use(), False, {"tag:a", "record:a"}, {}),
    ("used by digest through a reference that stays: only the tag goes", (A, B, E), "a", use(("web", "e", "D1")), False, {"tag:a", "record:a"}, {}),
    ("used by digest, the other reference goes too: refused", (A, B), "a", use(("web", "e", "D1")), False, set(), {"a": ("web",)}),
    ("a shared layer stays with the image that has it", (A, B, C), "b", use(), False, {"tag:b", "record:b", "blob:M2", "blob:C2", "bundle:D2"}, {}),
    ("not cached: nothing", (B, C), "a", use(), False, set(), {}),
]


@pytest.mark.parametrize(("what", "tags", "name", "image_use_", "force", "removed", "kept"), ABSENT_CASES, ids=[case[0] for case in ABSENT_CASES])
def test_image_removal_selection(
    what: str, tags: tuple[CachedTag, ...], name: str, image_use_: ImageUse, force: bool, removed: set[str], kept: dict[str, tuple[str, ...]]
) -> None:
    plan = plan_removal(state(*tags), image_use_, only=[t(name)], force=force)
    assert short(plan) == removed, what
    assert {NAMES[tag_]: pods for tag_, pods in plan.kept.items()} == kept


def test_bytes_freed_is_the_sum_of_the_removals() -> None:
    plan = plan_removal(state(A, B, C), use())
    assert plan.bytes_freed == 9 * 4096 + 4 * 4096 + 3 * 8192 + 2 * 16384 + 4096


@pytest.mark.parametrize(
    ("pairs", "tags", "digests"),
    [
        ([], {}, {}),
        ([("web", "oci:/s:a", "sha256:1"), ("api", "oci:/s:a", None)], {cache_tag("oci:/s:a"): ("api", "web")}, {"sha256:1": ("web",)}),
        (
            [("web", "oci:/s:a", "sha256:1"), ("web", "oci:/s:b", "sha256:1")],
            {cache_tag("oci:/s:a"): ("web",), cache_tag("oci:/s:b"): ("web",)},
            {"sha256:1": ("web",)},
        ),
    ],
)
def test_image_use(pairs: list[tuple[str, str, Optional[str]]], tags: dict[str, tuple[str, ...]], digests: dict[str, tuple[str, ...]]) -> None:
    found = image_use(pairs)
    assert dict(found.tags) == tags and dict(found.digests) == digests


def test_cache_tag_is_the_image_refs() -> None:
    ref = parse_image_ref("oci:/srv/images:tiny")
    assert cache_tag(ref.name) == ref.cache_tag


def du(path: str) -> int:
    return int(subprocess.run(["du", "-s", "--block-size=1", path], check=True, capture_output=True, text=True).stdout.split()[0])


@needs_tools
def test_scan_plan_apply_on_a_real_cache(tmp_path: Any) -> None:
    src = build_tiny_layout(str(tmp_path / "src"), "one")
    build_tiny_layout(src, "two", cmd="true", extra_layer=True)
    cache = ImageCache(str(tmp_path / "root"))
    one = cache.pull(parse_image_ref(f"oci:{src}:one"))
    two = cache.pull(parse_image_ref(f"oci:{src}:two"))
    for image in (one, two):
        build_disk(unpack(cache, image))
    leftover = os.path.join(cache.cache_dir, "bundles", ".tmp-killed")
    os.makedirs(leftover)
    os.utime(leftover, (1, 1))
    state_ = scan(cache, now=1e10)
    assert {item.tag for item in state_.tags} == {one.tag, two.tag} and set(state_.bundles) == set(state_.disks) == {one.digest, two.digest}
    assert state_.tag(one.tag) is not None and state_.tag(one.tag).reference == f"oci:{src}:one"  # type: ignore[union-attr]
    assert all(blob in state_.blobs for item in state_.tags for blob in item.blobs)

    in_use = image_use([("web", f"oci:{src}:one", one.digest)])
    plan = plan_removal(state_, in_use)
    assert {item.kind for item in plan.removals} == {"tag", "record", "blob", "bundle", "disk", "temp"}
    assert plan.kept == {one.tag: ("web",)}
    before = du(cache.cache_dir)
    apply_removal(cache, plan)
    after = du(cache.cache_dir)
    # index.json is rewritten in place of its old self: within a block of what du sees go.
    assert abs((before - after) - plan.bytes_freed) <= 4096, (before, after, plan.bytes_freed)
    assert list(layout_tags(cache.layout)) == [one.tag]
    assert cache.lookup(parse_image_ref(f"oci:{src}:one")) is not None and cache.lookup(parse_image_ref(f"oci:{src}:two")) is None
    assert not os.path.exists(leftover)
    # What stays is whole: the kept image unpacks again from the layout, and skopeo reads it.
    subprocess.run(["umoci", "unpack", "--image", f"{cache.layout}:{one.tag}", str(tmp_path / "check")], check=True, capture_output=True)
    assert not plan_removal(scan(cache, now=1e10), in_use).removals  # a second prune: nothing left to do
    assert allocated(str(tmp_path / "nothing-here")) == 0
