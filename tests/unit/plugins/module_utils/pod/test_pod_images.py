# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""hyper_pod's image options through the engine: registry_auth reaches the pull and nothing else; the cache users lock."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import SpecError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.images.auth import RegistryAuth
from ansible_collections.hyper.pods.plugins.module_utils._hyper.images.cache_lock import cache_users_lock
from ansible_collections.hyper.pods.tests.unit.plugins.module_utils.pod.test_pod import Harness, h  # noqa: F401  # pylint: disable=unused-import

SECRET = "s3cr3t-Pa55"


def test_registry_auth_goes_to_the_pull_only(h: Harness) -> None:  # noqa: F811
    result = h.run(registry_auth={"username": "deploy", "password": SECRET, "auth_file": None}, pull="always")
    assert result["changed"] and h.pulls[-1] == ("always", RegistryAuth("deploy", SECRET))
    (dom,) = h.pods()
    assert SECRET not in json.dumps(dom.meta) and "deploy" not in json.dumps(dom.meta)
    assert SECRET not in json.dumps(result)


def test_pull_never_reaches_the_images(h: Harness) -> None:  # noqa: F811
    h.run(pull="never")
    assert h.pulls[-1] == ("never", None)


def test_bad_registry_auth_fails_before_anything(h: Harness) -> None:  # noqa: F811
    with pytest.raises(SpecError) as caught:
        h.run(registry_auth={"username": "deploy"})
    assert caught.value.option == "registry_auth.password" and h.pulls == [] and h.pods() == []


def test_a_pod_task_waits_for_a_removal_holding_the_cache_lock(h: Harness) -> None:  # noqa: F811
    released: list[float] = []
    held = threading.Event()

    def removal() -> None:
        with cache_users_lock(str(h.root), "prune", exclusive=True):
            held.set()
            time.sleep(0.5)
            released.append(time.monotonic())

    thread = threading.Thread(target=removal)
    thread.start()
    held.wait(5)
    h.run()
    finished = time.monotonic()
    thread.join()
    assert released and finished >= released[0]
    assert (Path(h.root) / "locks" / "image-cache.lock").exists()


def test_check_mode_takes_no_cache_lock(h: Harness) -> None:  # noqa: F811
    with cache_users_lock(str(h.root), "prune", exclusive=True):
        result = h.run(check_mode=True)  # would wait 900 s if it took the lock
    assert result["changed"]
