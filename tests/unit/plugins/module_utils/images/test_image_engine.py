# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""hyper_image, hyper_image_info, hyper_image_prune and pull: never on a real cache (real skopeo, umoci), pods faked."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any, Optional

import pytest
import yaml

from ansible_collections.hyper.pods.plugins.doc_fragments.images import ModuleDocFragment
from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import HyperError, ImageError, SpecError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.host.locks import LockTimeout
from ansible_collections.hyper.pods.plugins.module_utils._hyper.images.args import CACHE_ARGUMENT_SPEC, REGISTRY_AUTH_SPEC
from ansible_collections.hyper.pods.plugins.module_utils._hyper.images.cache_lock import cache_users_lock, lock_path
from ansible_collections.hyper.pods.plugins.module_utils._hyper.images.engine import ensure_image, image_info, prune_images
from ansible_collections.hyper.pods.plugins.module_utils._hyper.images.oci import ImageCache, check_pull_policy, parse_image_ref
from ansible_collections.hyper.pods.plugins.module_utils._hyper.images.prepare import PodImages
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.store import CurrentPod, FoundPod
from ansible_collections.hyper.pods.tests.unit.plugins.module_utils.fake_agent import FakeClock
from ansible_collections.hyper.pods.tests.unit.plugins.module_utils.images.test_oci import build_tiny_layout, needs_tools
from ansible_collections.hyper.pods.tests.unit.plugins.modules.test_docs import _compare


def found_pod(name: str, image_ref: str, digest: Optional[str]) -> FoundPod:
    container = {"name": "app", "image": image_ref, "image_ref": image_ref, "digest": digest, "restart_policy": "never"}
    spec = {"name": name, "containers": [container]}
    return FoundPod(dom=None, current=CurrentPod(vm_id="hyper-0000000" + str(len(name)), uuid="u", spec=spec, state="stopped", running=False))


class Pods:
    def __init__(self, *pods: FoundPod) -> None:
        self.pods = list(pods)
        self.calls = 0

    def __call__(self) -> list[FoundPod]:
        self.calls += 1
        return self.pods


@pytest.fixture
def src(tmp_path: Any) -> str:
    layout = build_tiny_layout(str(tmp_path / "src"), "one")
    return build_tiny_layout(layout, "two", cmd="true")


@pytest.fixture
def root(tmp_path: Any) -> str:
    path = tmp_path / "root"
    path.mkdir()
    return str(path)


def params(root: str, **extra: Any) -> dict[str, Any]:
    return {"root": root, "state": "present", "pull": "missing", "default_transport": "docker://", "force": False, "registry_auth": None, **extra}


# -- the option twins --------------------------------------------------------------------------------


def test_registry_auth_fragment_is_the_twin_of_its_spec() -> None:
    doc = yaml.safe_load(ModuleDocFragment.DOCUMENTATION)["options"]
    assert _compare(doc, REGISTRY_AUTH_SPEC, "") == []


def test_cache_fragment_is_the_twin_of_its_spec() -> None:
    doc = yaml.safe_load(ModuleDocFragment.CACHE)["options"]
    assert _compare(doc, CACHE_ARGUMENT_SPEC, "") == []
    assert doc["root"]["aliases"] == CACHE_ARGUMENT_SPEC["root"]["aliases"]


# -- bad input: the option named, nothing made ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "option"),
    [
        ({"name": ""}, "name"),
        ({"name": "dir:/srv/x"}, "name"),
        ({"name": "Busybox"}, "name"),
        ({"name": "busybox", "state": "pruned"}, "state"),
        ({"name": "busybox", "pull": "never"}, "pull"),
        ({"name": "busybox", "pull": "sometimes"}, "pull"),
        ({"name": "busybox", "default_transport": "ftp://x"}, "default_transport"),
        ({"name": "busybox", "registry_auth": {"username": "u"}}, "registry_auth.password"),
        ({"name": "busybox", "registry_auth": {"auth_file": "/nonexistent.json"}}, "registry_auth.auth_file"),
        ({"name": "oci:/nonexistent/layout:tag"}, "name"),
        ({"name": "oci-archive:/nonexistent.tar", "state": "present"}, "name"),
    ],
)
def test_bad_image_options(root: str, extra: dict[str, Any], option: str) -> None:
    with pytest.raises(SpecError) as caught:
        ensure_image(params(root, **extra), check_mode=False, list_pods=Pods())
    assert caught.value.option == option
    assert os.listdir(root) == []


@pytest.mark.parametrize("value", ["relative/root", "/nonexistent/hyper-root"])
@pytest.mark.parametrize("call", [ensure_image, image_info, prune_images])
def test_bad_root(value: str, call: Any) -> None:
    with pytest.raises(SpecError) as caught:
        call({**params(value), "name": "busybox"}, False, list_pods=Pods())
    assert caught.value.option == "root" and not os.path.exists(value)


def test_pull_policies() -> None:
    assert [check_pull_policy(p) for p in ("missing", "always", "never")] == ["missing", "always", "never"]


# -- pull: never --------------------------------------------------------------------------------------------------


class Named:
    def __init__(self, name: str, image: str) -> None:
        self.name = name
        self.ref = parse_image_ref(image)


@needs_tools
@pytest.mark.parametrize("check_mode", [False, True])
def test_pull_never_fails_naming_the_container_and_image(src: str, root: str, check_mode: bool) -> None:
    with pytest.raises(SpecError) as caught:
        PodImages(root).digests([Named("web", f"oci:{src}:one")], "never", check_mode)
    assert caught.value.option == "containers[web].image" and caught.value.value == f"oci:{src}:one"
    assert "pull is never" in caught.value.reason
    assert os.listdir(root) == []


@needs_tools
def test_pull_never_uses_the_cached_copy_without_the_source(src: str, root: str, tmp_path: Any) -> None:
    cache = ImageCache(root)
    pulled = cache.pull(parse_image_ref(f"oci:{src}:one"))
    os.rename(src, str(tmp_path / "moved"))  # the source is gone: never does not look at it
    for check_mode in (False, True):
        assert PodImages(root).digests([Named("web", f"oci:{src}:one")], "never", check_mode) == {"web": pulled.digest}
    with pytest.raises(SpecError, match="is not an OCI image layout"):
        PodImages(root).digests([Named("web", f"oci:{src}:one")], "missing", False)


# -- hyper_image present / absent, info, prune ----------------------------------------------------------------------


@needs_tools
def test_present_is_idempotent_by_digest(src: str, root: str) -> None:
    name = f"oci:{src}:one"
    check = ensure_image(params(root, name=name), check_mode=True, diff=True, list_pods=Pods())
    assert check["changed"] and check["image"]["digest"] is None and not os.path.exists(os.path.join(root, "cache"))
    assert check["diff"]["before"]["state"] == "absent"
    first = ensure_image(params(root, name=name), check_mode=False, list_pods=Pods())
    assert first["changed"] and first["image"]["digest"].startswith("sha256:") and first["image"]["size"] > 0
    assert first["image"]["reference"] == name and first["image"]["pods"] == []
    for mode in (True, False):
        again = ensure_image(params(root, name=name), check_mode=mode, list_pods=Pods())
        assert not again["changed"] and again["image"]["digest"] == first["image"]["digest"]
    always = ensure_image(params(root, name=name, pull="always"), check_mode=False, list_pods=Pods())
    assert not always["changed"] and always["image"]["digest"] == first["image"]["digest"]


@needs_tools
def test_absent_refused_in_use_then_forced(src: str, root: str) -> None:
    name = f"oci:{src}:one"
    digest = ensure_image(params(root, name=name), check_mode=False, list_pods=Pods())["image"]["digest"]
    pods = Pods(found_pod("web", name, digest))
    for mode in (True, False):
        with pytest.raises(ImageError) as caught:
            ensure_image(params(root, name=name, state="absent"), check_mode=mode, list_pods=pods)
        assert "used by the pods web" in caught.value.message and caught.value.details["pods"] == ["web"]
    assert image_info(params(root), False, list_pods=pods)["images"][0]["pods"] == ["web"]
    check = ensure_image(params(root, name=name, state="absent", force=True), check_mode=True, diff=True, list_pods=pods)
    assert check["changed"] and check["bytes_freed"] > 0 and check["removed_counts"]["tag"] == 1
    assert check["diff"]["after"]["state"] == "absent"
    assert image_info(params(root, name=name), False, list_pods=pods)["images"] != []  # check mode removed nothing
    gone = ensure_image(params(root, name=name, state="absent", force=True), check_mode=False, list_pods=pods)
    assert gone["changed"] and gone["removed"] == check["removed"]
    assert image_info(params(root, name=name), False, list_pods=pods)["images"] == []
    again = ensure_image(params(root, name=name, state="absent"), check_mode=False, list_pods=pods)
    assert not again["changed"] and again["bytes_freed"] == 0


@needs_tools
def test_absent_of_an_unused_image_keeps_the_other(src: str, root: str) -> None:
    for tag in ("one", "two"):
        ensure_image(params(root, name=f"oci:{src}:{tag}"), check_mode=False, list_pods=Pods())
    result = ensure_image(params(root, name=f"oci:{src}:two", state="absent"), check_mode=False, list_pods=Pods())
    assert result["changed"] and result["removed_counts"]["record"] == 1
    assert [image["reference"] for image in image_info(params(root), False, list_pods=Pods())["images"]] == [f"oci:{src}:one"]


@needs_tools
def test_prune_check_mode_then_real_keeps_what_pods_use(src: str, root: str) -> None:
    digests = {tag: ensure_image(params(root, name=f"oci:{src}:{tag}"), check_mode=False, list_pods=Pods())["image"]["digest"] for tag in ("one", "two")}
    pods = Pods(found_pod("web", f"oci:{src}:one", digests["one"]))
    check = prune_images(params(root), True, list_pods=pods)
    assert check["changed"] and check["bytes_freed"] > 0 and [k["pods"] for k in check["kept"]] == [["web"]]
    assert len(image_info(params(root), False, list_pods=pods)["images"]) == 2
    real = prune_images(params(root), False, list_pods=pods)
    assert real["removed"] == check["removed"] and real["bytes_freed"] == check["bytes_freed"]
    assert [image["reference"] for image in image_info(params(root), False, list_pods=pods)["images"]] == [f"oci:{src}:one"]
    assert prune_images(params(root), False, list_pods=pods)["changed"] is False


def test_prune_of_a_root_without_cache_changes_nothing(root: str) -> None:
    result = prune_images(params(root), False, list_pods=Pods())
    assert (result["changed"], result["removed"], result["bytes_freed"]) == (False, [], 0)
    assert image_info(params(root), False, list_pods=Pods())["images"] == []
    assert os.listdir(root) == []


def test_an_unreadable_pod_spec_stops_a_prune(root: str, tmp_path: Any) -> None:
    os.makedirs(os.path.join(root, "cache", "disks"))
    bad = FoundPod(dom=None, current=CurrentPod(vm_id="hyper-deadbeef", uuid="u", spec={"name": "x", "containers": "nope"}, state="running", running=True))
    with pytest.raises(ImageError, match="hyper-deadbeef"):
        prune_images(params(root), False, list_pods=Pods(bad))


# -- the cache users lock ---------------------------------------------------------------------------------------------


def test_pod_tasks_share_the_lock_and_a_removal_waits_for_them(root: str) -> None:
    clock = FakeClock()
    with cache_users_lock(root, "pod a", exclusive=False), cache_users_lock(root, "pod b", exclusive=False):
        with pytest.raises(LockTimeout) as caught, cache_users_lock(root, "prune", exclusive=True, timeout=5, clock=clock, sleep=clock.sleep):
            pass  # pragma: no cover
        assert "hyper_pod tasks" in caught.value.message
    with cache_users_lock(root, "prune", exclusive=True, timeout=5):
        assert "prune" in Path(lock_path(root, "x")).read_text(encoding="utf-8")
        with pytest.raises(LockTimeout) as waited, cache_users_lock(root, "pod c", exclusive=False, timeout=2, clock=clock, sleep=clock.sleep):
            pass  # pragma: no cover
        assert "prune" in waited.value.message
    assert Path(lock_path(root, "x")).read_text(encoding="utf-8") == ""  # the holder's note goes with it
    assert os.stat(os.path.join(root, "locks")).st_mode & 0o077 == 0


def test_a_removal_waits_for_a_running_pod_task(root: str) -> None:
    order: list[str] = []
    held = threading.Event()

    def pod_task() -> None:
        with cache_users_lock(root, "pod web", exclusive=False):
            held.set()
            time.sleep(0.5)
            order.append("pod done")

    thread = threading.Thread(target=pod_task)
    thread.start()
    held.wait(5)
    with cache_users_lock(root, "prune", exclusive=True, timeout=10):
        order.append("prune")
    thread.join()
    assert order == ["pod done", "prune"]


def test_a_symlinked_lock_file_is_not_followed(root: str, tmp_path: Any) -> None:
    target = tmp_path / "elsewhere"
    os.makedirs(os.path.join(root, "locks"), mode=0o700)
    os.symlink(str(target), os.path.join(root, "locks", "image-cache.lock"))
    with pytest.raises(HyperError, match="cannot open the lock file"), cache_users_lock(root, "prune", exclusive=True):
        pass  # pragma: no cover
    assert not target.exists()


@needs_tools
def test_no_secret_in_the_result(src: str, root: str) -> None:
    auth = {"username": "deploy", "password": "s3cr3t-Pa55", "auth_file": None}
    result = ensure_image(params(root, name=f"oci:{src}:one", registry_auth=auth), check_mode=False, diff=True, list_pods=Pods())
    assert result["changed"] and "s3cr3t-Pa55" not in json.dumps(result) and "deploy" not in json.dumps(result)
