# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PodImages.prepare from a typed stored pod: the runtime options it hands on, and real bundles and disks."""

from __future__ import annotations

from typing import Any

import pytest

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import ImageError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.images.oci import parse_image_ref
from ansible_collections.hyper.pods.plugins.module_utils._hyper.images.prepare import PodImages, runtime_options
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.stored import StoredContainer, StoredPod
from ansible_collections.hyper.pods.tests.unit.plugins.module_utils.images.test_oci import build_tiny_layout, needs_tools

OPTION_KEYS = ("name", "command", "entrypoint", "env", "workdir", "user")


def _container(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "app",
        "image": "oci:/srv/images:tiny",
        "image_ref": "oci:/srv/images:tiny",
        "digest": None,
        "command": None,
        "entrypoint": None,
        "env": {},
        "workdir": None,
        "user": None,
        "restart_policy": "never",
        "stop_signal": "SIGTERM",
        "stop_timeout": 10,
    }
    return {**base, **fields}


@pytest.mark.parametrize(
    "stored",
    [
        _container(),
        _container(command=["-c", "echo hi"], entrypoint=["/bin/sh"], env={"B": "2", "A": "1"}, workdir="/data", user="alice:staff"),
        _container(command=[], user="1000"),
    ],
)
def test_runtime_options_are_the_stored_json_options(stored: dict[str, Any]) -> None:
    # What runtime_config was given when the engine passed the stored JSON: the same values, env in its order.
    options = runtime_options(StoredContainer.from_json(stored, "containers[0]"))
    assert options == {key: stored.get(key) for key in OPTION_KEYS}
    assert list(options["env"]) == list(stored["env"])


def test_a_container_without_a_digest_is_refused(tmp_path: Any) -> None:
    pod = StoredPod.from_json({"name": "p", "containers": [_container()]})
    with pytest.raises(ImageError, match=r"container app: image 'oci:/srv/images:tiny' has no digest"):
        PodImages(str(tmp_path)).prepare(pod)


@needs_tools
def test_prepare_makes_one_disk_per_image(tmp_path: Any) -> None:
    layout = build_tiny_layout(str(tmp_path / "src"))
    images = PodImages(str(tmp_path / "root"))
    image = f"oci:{layout}:tiny"
    digest = images.cache.pull(parse_image_ref(image)).digest
    ref = parse_image_ref(image).name
    pod = StoredPod.from_json(
        {
            "name": "p",
            "hostname": "web-1",
            "containers": [
                _container(image=image, image_ref=ref, digest=digest, env={"A": "1"}, user="alice", restart_policy="always", stop_timeout=3),
                _container(name="side", image=image, image_ref=ref, digest=digest, command=["-c", "sleep 1"]),
            ],
        }
    )
    prepared, disks = images.prepare(pod)
    assert [c.name for c in prepared] == ["app", "side"]
    assert len(disks) == 1 and disks[0].target == "vda"
    app, side = prepared
    assert app.meta == {"name": "app", "serial": disks[0].serial, "restart_policy": "always", "stop_signal": "SIGTERM", "stop_timeout": 3}
    assert app.config["hostname"] == "web-1" and "A=1" in app.config["process"]["env"]
    assert app.config["process"]["user"]["uid"] == 1000
    assert side.config["process"]["args"][-2:] == ["-c", "sleep 1"]
