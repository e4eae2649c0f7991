# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Volumes: spec checks (tables), OCI mounts, and the host side with a fake runner."""

from __future__ import annotations

import json
import os
from typing import Any, Optional

import pytest

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import ImageError, SpecError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.host.commands import CommandFailed, Completed
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.spec import normalise_pod
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.stored import StoredContainer, StoredVolume
from ansible_collections.hyper.pods.plugins.module_utils._hyper.storage import volumes as vol

IMAGE = "oci:/srv/images:busybox"


def _volumes(*items: dict[str, Any]) -> list[StoredVolume]:
    """The typed volumes of these stored (JSON) ones."""
    return [StoredVolume.from_json(item, f"volumes[{index}]") for index, item in enumerate(items)]


@pytest.mark.parametrize(
    ("value", "expected"),
    [("16M", 16 << 20), ("1G", 1 << 30), ("512MiB", 512 << 20), ("2g", 2 << 30), (str(64 << 20), 64 << 20), (64 << 20, 64 << 20), ("1T", 1 << 40)],
)
def test_parse_size(value: Any, expected: int) -> None:
    assert vol.parse_size(value, "volumes[data].size") == expected


@pytest.mark.parametrize(
    ("value", "needle"),
    [("1.5G", "size such as"), ("8M", "between"), ("100T", "between"), ("1000K", "whole number of MiB"), (True, "size such as"), ("", "size such as")],
)
def test_parse_size_refuses(value: Any, needle: str) -> None:
    with pytest.raises(SpecError, match=needle) as err:
        vol.parse_size(value, "volumes[data].size")
    assert err.value.option == "volumes[data].size"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("/data", "/data"), ("/data/", "/data"), ("//var//lib/x", "/var/lib/x")],
)
def test_check_absolute_normalises(value: str, expected: str) -> None:
    assert vol.check_absolute(value, "p") == expected


@pytest.mark.parametrize(("value", "needle"), [("data", "absolute"), ("/a/../b", "'..'"), ("/", "/ itself"), ("/a\nb", "newline"), (None, "absolute")])
def test_check_absolute_refuses(value: Any, needle: str) -> None:
    with pytest.raises(SpecError, match=needle):
        vol.check_absolute(value, "p")


@pytest.mark.parametrize(
    ("volumes", "option", "needle"),
    [
        ([{"name": "a/b", "size": "1G"}], "volumes[0].name", "must not contain '/'"),
        ([{"name": "Data", "size": "1G"}], "volumes[0].name", "lower-case"),
        ([{"name": "data"}], "volumes[data].size", "required"),
        ([{"name": "data", "size": "1G", "format": "vmdk"}], "volumes[data].format", "qcow2, raw"),
        ([{"name": "data", "host_path": "/srv", "size": "1G"}], "volumes[data].size", "disk volumes only"),
        ([{"name": "data", "host_path": "srv"}], "volumes[data].host_path", "absolute"),
        ([{"name": "data", "size": "1G"}, {"name": "data", "host_path": "/srv"}], "volumes[1].name", "unique"),
        ([{"name": "data", "size": "1G", "color": "red"}], "volumes[0]", "unknown keys"),
        ({"name": "data"}, "volumes", "list"),
    ],
)
def test_bad_volumes_name_the_option(volumes: Any, option: str, needle: str) -> None:
    with pytest.raises(SpecError, match=needle) as err:
        normalise_pod({"name": "p", "volumes": volumes})
    assert err.value.option == option


@pytest.mark.parametrize(
    ("mounts", "option", "needle"),
    [
        ([{"name": "data", "path": "data"}], "containers[app].volumes[0].path", "absolute"),
        ([{"name": "other", "path": "/x"}], "containers[app].volumes[0].name", "not a volume of the pod"),
        ([{"name": "data", "path": "/x", "read_only": "yes"}], "containers[app].volumes[0].read_only", "boolean"),
        ([{"name": "data", "path": "/x"}, {"name": "share", "path": "/x/"}], "containers[app].volumes[1].path", r"also the path of .*volumes\[0\]"),
    ],
)
def test_bad_mounts_name_the_option(mounts: Any, option: str, needle: str) -> None:
    params = {
        "name": "p",
        "volumes": [{"name": "data", "size": "64M"}, {"name": "share", "host_path": "/srv"}],
        "containers": [{"name": "app", "image": IMAGE, "volumes": mounts}],
    }
    with pytest.raises(SpecError, match=needle) as err:
        normalise_pod(params)
    assert err.value.option == option


def test_a_file_and_a_volume_cannot_share_a_path() -> None:
    params = {
        "name": "p",
        "volumes": [{"name": "data", "size": "64M"}],
        "containers": [{"name": "app", "image": IMAGE, "volumes": [{"name": "data", "path": "/etc/app"}], "files": [{"path": "/etc/app", "content": "x"}]}],
    }
    with pytest.raises(SpecError) as err:
        normalise_pod(params)
    assert err.value.option == "containers[app].files[0].path"


def test_stored_spec_has_volumes_and_mounts_only_when_used() -> None:
    spec, user_set = normalise_pod(
        {
            "name": "p",
            "volumes": [{"name": "data", "size": "64M"}, {"name": "share", "host_path": "/srv//x/"}],
            "containers": [
                {"name": "app", "image": IMAGE, "volumes": [{"name": "data", "path": "/data"}, {"name": "share", "path": "/s", "read_only": True}]},
                {"name": "plain", "image": IMAGE},
            ],
        }
    )
    stored = spec.to_stored(accelerator="tcg", guest={}, digests={})
    assert "volumes" in user_set
    assert stored["volumes"] == [
        {"name": "data", "kind": "disk", "size": 64 << 20, "format": "qcow2"},
        {"name": "share", "kind": "host", "host_path": "/srv/x"},
    ]
    assert stored["containers"][0]["volumes"] == [{"name": "data", "path": "/data", "read_only": False}, {"name": "share", "path": "/s", "read_only": True}]
    assert "volumes" not in stored["containers"][1] and "files" not in stored["containers"][1]
    bare, bare_set = normalise_pod({"name": "p", "containers": [{"name": "plain", "image": IMAGE}]})
    assert "volumes" not in bare.to_stored(accelerator="tcg", guest={}, digests={}) and "volumes" not in bare_set


def test_oci_mounts_bind_the_guest_mount_points() -> None:
    volumes = _volumes({"name": "data", "kind": "disk"}, {"name": "share", "kind": "host"})
    container = StoredContainer.from_json(
        {"name": "app", "image": IMAGE, "volumes": [{"name": "data", "path": "/data", "read_only": False}, {"name": "share", "path": "/s", "read_only": True}]},
        "containers[0]",
    )
    assert vol.oci_mounts(container, volumes) == [
        {"destination": "/data", "type": "bind", "source": "/run/hyper/volumes/data", "options": ["rbind", "rw"]},
        {"destination": "/s", "type": "bind", "source": "/run/hyper/shares/share", "options": ["rbind", "ro"]},
    ]


@pytest.mark.parametrize(("index", "target"), [(0, "vda"), (1, "vdb"), (25, "vdz"), (26, "vdaa"), (27, "vdab")])
def test_disk_targets(index: int, target: str) -> None:
    assert vol.disk_target(index) == target


def test_serial_and_tag_fit_virtio_limits() -> None:
    name = "a" * 63
    assert len(vol.volume_serial(name)) <= 20 and vol.volume_serial(name).startswith("hyper-vol-")
    assert len(vol.share_tag(name)) <= 36
    assert vol.volume_serial("a") != vol.volume_serial("b")


# -- host side ----------------------------------------------------------------------------------


class FakeRunner:
    """mke2fs writes a marker into the raw file; qemu-img convert copies it; qemu-img info reports the size."""

    def __init__(self, fail: Optional[str] = None) -> None:
        self.argvs: list[list[str]] = []
        self.fail = fail

    def __call__(self, argv: Any, *, timeout: float = 0, env: Any = None, cwd: Any = None, check: bool = True) -> Completed:
        argv = list(argv)
        self.argvs.append(argv)
        if self.fail and argv[0] == self.fail:
            raise CommandFailed(argv, 1, "", "boom", "failed (rc=1)")
        if argv[0] == "mke2fs":
            with open(argv[-1], "r+b") as handle:
                handle.write(b"EXT4")
        elif argv[:2] == ["qemu-img", "convert"]:
            with open(argv[-2], "rb") as src, open(argv[-1], "wb") as dst:
                dst.write(src.read(4))
        elif argv[:2] == ["qemu-img", "info"]:
            return Completed(tuple(argv), 0, json.dumps({"virtual-size": 64 << 20}), "", 0.0)
        return Completed(tuple(argv), 0, "", "", 0.0)


DISK_JSON: dict[str, Any] = {"name": "data", "kind": "disk", "size": 64 << 20, "format": "qcow2"}
(DISK,) = _volumes(DISK_JSON)


@pytest.mark.parametrize("fmt", ["qcow2", "raw"])
def test_create_volume_once(tmp_path: Any, fmt: str) -> None:
    runner = FakeRunner()
    (disk,) = _volumes({**DISK_JSON, "format": fmt})
    path = vol.create_volume(str(tmp_path), disk, runner)
    assert path == str(tmp_path / "volumes" / f"data.{fmt}")
    convert = runner.argvs[1]
    assert convert[:7] == ["qemu-img", "convert", "-q", "-f", "raw", "-O", fmt] and convert[-2] != convert[-1]
    with open(path, "rb") as handle:
        assert handle.read() == b"EXT4"
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    assert os.listdir(tmp_path / "volumes") == [f"data.{fmt}"]  # no temporary file left
    assert runner.argvs[0][:5] == ["mke2fs", "-q", "-F", "-t", "ext4"]
    assert vol.create_volume(str(tmp_path), disk, runner) is None  # exists: left alone
    assert len(runner.argvs) == 2


@pytest.mark.parametrize("tool", ["mke2fs", "qemu-img"])
def test_a_failed_create_leaves_no_file(tmp_path: Any, tool: str) -> None:
    with pytest.raises(ImageError, match="cannot create the volume"):
        vol.create_volume(str(tmp_path), DISK, FakeRunner(fail=tool))
    assert os.listdir(tmp_path / "volumes") == []


def test_check_volumes(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vol, "find_virtiofsd", lambda: "/usr/libexec/virtiofsd")
    root = str(tmp_path)
    runner = FakeRunner()
    vol.check_volumes(root, _volumes(DISK_JSON, {"name": "s", "kind": "host", "host_path": root}), runner)  # nothing exists yet: fine
    with pytest.raises(SpecError, match="not an existing directory") as err:
        vol.check_volumes(root, _volumes({"name": "s", "kind": "host", "host_path": root + "/missing"}), runner)
    assert err.value.option == "volumes[s].host_path"
    vol.create_volume(root, DISK, runner)
    vol.check_volumes(root, [DISK], runner)
    with pytest.raises(SpecError, match="not resized") as err:
        vol.check_volumes(root, _volumes({**DISK_JSON, "size": 128 << 20}), runner)
    assert err.value.option == "volumes[data].size"
    with pytest.raises(SpecError, match="never converted") as err:
        vol.check_volumes(root, _volumes({**DISK_JSON, "format": "raw"}), runner)
    assert err.value.option == "volumes[data].format"


def test_remove_volume(tmp_path: Any) -> None:
    root = str(tmp_path)
    vol.create_volume(root, DISK, FakeRunner())
    assert vol.remove_volume(root, "data") == [str(tmp_path / "volumes" / "data.qcow2")]
    assert vol.remove_volume(root, "data") == []
    with pytest.raises(SpecError):
        vol.remove_volume(root, "../etc")


def test_find_virtiofsd(tmp_path: Any) -> None:
    binary = tmp_path / "virtiofsd"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    described = tmp_path / "vhost-user"
    described.mkdir()
    (described / "10-gpu.json").write_text(json.dumps({"type": "gpu", "binary": "/bin/sh"}))
    (described / "20-broken.json").write_text("{")
    assert vol.find_virtiofsd([str(described)], []) is None
    (described / "50-fs.json").write_text(json.dumps({"type": "fs", "binary": str(binary)}))
    assert vol.find_virtiofsd([str(described), "/nonexistent"], []) == str(binary)
    assert vol.find_virtiofsd(["/nonexistent"], ["/nonexistent/virtiofsd", str(binary)]) == str(binary)


def test_a_share_without_virtiofsd_is_refused(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vol, "find_virtiofsd", lambda: None)
    with pytest.raises(SpecError, match="needs virtiofsd") as err:
        vol.check_volumes(str(tmp_path), _volumes({"name": "s", "kind": "host", "host_path": str(tmp_path)}))
    assert err.value.option == "volumes[s].host_path"
