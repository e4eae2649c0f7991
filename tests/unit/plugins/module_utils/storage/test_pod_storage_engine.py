# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""ensure_pod with volumes, shares and files, against the fakes of test_pod (no VM, no mke2fs)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import ContainerError, ImageError, SpecError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.boot import PodError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.session import PodSession
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.stored import StoredVolume
from ansible_collections.hyper.pods.plugins.module_utils._hyper.storage import pod as pod_storage
from ansible_collections.hyper.pods.plugins.module_utils._hyper.storage.files import host_file
from ansible_collections.hyper.pods.plugins.module_utils._hyper.storage.volumes import volume_serial
from ansible_collections.hyper.pods.tests.unit.plugins.module_utils.pod.test_pod import FakeDomain, FakeGuestPod, FakeTransport, Harness

SECRET = "pa55-word-of-the-test"


class FileTransport(FakeTransport):
    """FakeTransport that also takes guest-file-open/write/close (the injected files)."""

    def send(self, json_text: str, timeout: int) -> str:
        request = json.loads(json_text)
        if request["execute"] == "guest-file-open":
            return json.dumps({"return": 7})
        if request["execute"] == "guest-file-write":
            return json.dumps({"return": {"count": request["arguments"]["count"], "eof": False}})
        return super().send(json_text, timeout)


class MountsGuestPod(FakeGuestPod):
    """FakeGuestPod that keeps each container's runtime config (with the bind mounts added) instead of checking it."""

    configs: dict[str, dict[str, Any]] = {}

    def write_container(self, name: str, config: dict[str, Any], meta: dict[str, Any]) -> None:
        self.calls.append(f"write {name}")
        self.configs[name] = config


class StorageHarness(Harness):
    def deps(self) -> PodSession:
        deps = super().deps()
        deps.make_transport = lambda dom, name: FileTransport(dom, self.agent)
        deps.make_guest_pod = lambda agent: MountsGuestPod(self.calls, self.fail, self.guest)
        return deps


def fake_create(root: str, volume: StoredVolume, runner: Any = None) -> Any:
    path = os.path.join(root, "volumes", f"{volume.name}.{volume.format}")
    if os.path.exists(path):
        return None
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(b"new volume")
    return path


@pytest.fixture
def h(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> StorageHarness:
    (tmp_path / "host.json").write_text('{"accelerator": "tcg", "format": 1}')
    image = tmp_path / "images" / "default"
    image.mkdir(parents=True)
    (image / "vmlinuz").write_bytes(b"kernel")
    (image / "initrd.img").write_bytes(b"initrd")
    (image / "manifest.json").write_text(json.dumps({"kernel_args": "console=ttyS0 quiet"}))
    (tmp_path / "run").mkdir()
    (tmp_path / "share").mkdir()
    monkeypatch.setattr(pod_storage, "create_volume", fake_create)
    # No dependence on the test machine's virtiofsd.
    monkeypatch.setattr("ansible_collections.hyper.pods.plugins.module_utils._hyper.storage.volumes.find_virtiofsd", lambda: "/usr/libexec/virtiofsd")
    # The fake volumes are no qcow2: report their declared size.
    monkeypatch.setattr("ansible_collections.hyper.pods.plugins.module_utils._hyper.storage.volumes.virtual_size", lambda path, fmt, runner=None: 64 << 20)
    return StorageHarness(tmp_path)


def params(h: Harness, **kwargs: Any) -> dict[str, Any]:
    base = {
        "volumes": [{"name": "data", "size": "64M"}, {"name": "share", "host_path": str(h.root / "share")}],
        "containers": [
            {
                "name": "app",
                "image": "docker://busybox:1.36",
                "volumes": [{"name": "data", "path": "/data"}, {"name": "share", "path": "/share", "read_only": True}],
                "files": [{"path": "/etc/secret", "content": SECRET, "mode": "0400", "owner": "1000:1000"}],
            }
        ],
    }
    base.update(kwargs)
    return base


def volume(h: Harness) -> Path:
    return h.root / "volumes" / "data.qcow2"


def test_create_attaches_the_volume_and_the_share_and_injects_the_file(h: StorageHarness) -> None:
    result = h.run(**params(h))
    assert result["actions"] == ["create", "start"]
    (dom,) = h.pods()
    assert dom.serials == ["hyper-img-1111111111", volume_serial("data"), "hyper-scratch"]
    assert '<source type="memfd" />' in dom.xml and f'<source dir="{h.root / "share"}" />' in dom.xml
    assert volume(h).read_bytes() == b"new volume"
    execs = [argv for argv in h.agent.execs if argv[0] != "sync"]
    mount_disk = ["/usr/sbin/hyper-container", "mount-disk"]
    assert [argv[:2] for argv in execs] == [mount_disk, ["mkdir", "-p"], ["mount", "-t"], ["mkdir", "-p"], ["chown", "1000:1000"], ["chmod", "400"]]
    assert (execs[0][-1], execs[2][4]) == ("rw,noatime", "ro")
    with open(host_file(str(h.root), dom.vm_name, "app", 0), "rb") as handle:
        assert handle.read() == SECRET.encode()
    assert SECRET not in json.dumps(dom.meta) and SECRET not in json.dumps(result)
    mounts = MountsGuestPod.configs["app"]["mounts"]
    assert [(m["destination"], m["source"], m["options"]) for m in mounts] == [
        ("/data", "/run/hyper/volumes/data", ["rbind", "rw"]),
        ("/share", "/run/hyper/shares/share", ["rbind", "ro"]),
        ("/etc/secret", "/run/hyper/files/app/0", ["bind", "rw"]),
    ]
    assert h.run(**params(h))["changed"] is False


def test_a_failed_create_removes_the_volume_it_made_and_keeps_an_old_one(h: StorageHarness) -> None:
    h.fail["wait"] = ContainerError("app", "exited with code 1")
    with pytest.raises(PodError):
        h.run(**params(h))
    assert h.pods() == [] and not volume(h).exists()
    assert os.listdir(h.root / "pods") == []
    volume(h).write_bytes(b"old data")
    with pytest.raises(PodError):
        h.run(**params(h))
    assert volume(h).read_bytes() == b"old data"


@pytest.mark.parametrize(
    ("change", "option"),
    [
        ({"volumes": [{"name": "data", "size": "64M"}, {"name": "share", "host_path": "/nonexistent/dir"}]}, "volumes[share].host_path"),
        ({"volumes": [{"name": "data", "size": "128M"}, {"name": "share", "host_path": "/"}]}, "volumes[data].size"),
    ],
)
def test_bad_host_storage_creates_nothing_also_in_check_mode(h: StorageHarness, change: dict[str, Any], option: str) -> None:
    if option == "volumes[data].size":
        fake_create(str(h.root), StoredVolume("data", "disk", format="qcow2"))
    for check_mode in (True, False):
        with pytest.raises(SpecError) as err:
            h.run(check_mode=check_mode, **params(h, **change))
        assert err.value.option == option
        assert h.pods() == [] and h.client.log == []
    assert not (h.root / "pods").exists() or os.listdir(h.root / "pods") == []


def test_recreate_without_containers_keeps_the_files_and_the_volume(h: StorageHarness) -> None:
    h.run(**params(h))
    old = h.pods()[0].vm_name
    volume(h).write_bytes(b"written by the pod")
    result = h.run(memory=160, containers=None, volumes=None)
    assert result["actions"] == ["recreate", "start"]
    (dom,) = h.pods()
    assert dom.vm_name != old and not (h.root / "pods" / old).exists()
    with open(host_file(str(h.root), dom.vm_name, "app", 0), "rb") as handle:
        assert handle.read() == SECRET.encode()
    assert volume(h).read_bytes() == b"written by the pod"


def test_remove_keeps_volumes_unless_purged(h: StorageHarness) -> None:
    h.run(**params(h))
    assert h.run(state="absent", containers=None)["actions"] == ["remove"]
    assert volume(h).exists() and os.listdir(h.root / "pods") == []
    h.run(**params(h))
    check = h.run(check_mode=True, state="absent", volumes_purge=True, containers=None)
    assert check["actions"] == ["remove", "purge_volumes"] and volume(h).exists()
    result = h.run(state="absent", volumes_purge=True, containers=None)
    assert result["volumes_removed"] == [str(volume(h))] and not volume(h).exists()
    assert h.run(state="absent", volumes_purge=True, containers=None)["changed"] is False
    # A pod that is gone already: the volumes named in the task are purged.
    fake_create(str(h.root), StoredVolume("data", "disk", format="qcow2"))
    gone = h.run(state="absent", volumes_purge=True, containers=None, volumes=[{"name": "data", "size": "64M"}])
    assert (gone["actions"], gone["changed"]) == (["purge_volumes"], True) and not volume(h).exists()


def test_a_volume_of_another_pod_is_refused(h: StorageHarness) -> None:
    h.run(**params(h))
    with pytest.raises(SpecError, match="volume of pod pe-test-1") as err:
        h.run(name="pe-test-2", **params(h))
    assert err.value.option == "volumes[data]"
    assert len(h.pods()) == 1


def test_a_stop_never_needs_the_host_directory(h: StorageHarness) -> None:
    h.run(**params(h))
    os.rmdir(h.root / "share")
    assert h.run(state="stopped", containers=None, volumes=None)["actions"] == ["stop"]
    with pytest.raises(SpecError, match="not an existing directory"):
        h.run(state="started", containers=None, volumes=None)


def test_fake_domain_is_the_one_of_test_pod() -> None:
    assert FakeDomain.__module__.endswith("test_pod")


def test_a_volume_that_cannot_be_made_takes_the_ones_made_before_it(h: StorageHarness, monkeypatch: pytest.MonkeyPatch) -> None:
    def create(root: str, volume: StoredVolume, runner: Any = None) -> Any:
        if volume.name == "second":
            raise ImageError("cannot create the volume second: mke2fs failed")
        return fake_create(root, volume)

    monkeypatch.setattr(pod_storage, "create_volume", create)
    volumes = [{"name": "data", "size": "64M"}, {"name": "second", "size": "64M"}]
    with pytest.raises(ImageError):
        h.run(**params(h, volumes=volumes, containers=[{"name": "app", "image": "docker://busybox:1.36"}]))
    assert h.pods() == [] and os.listdir(h.root / "volumes") == []


def test_a_removal_never_reads_src_files(h: StorageHarness) -> None:
    containers = [{"name": "app", "image": "docker://busybox:1.36", "files": [{"path": "/etc/x", "src": str(h.root / "gone")}]}]
    assert h.run(state="absent", containers=containers)["changed"] is False
    with pytest.raises(SpecError, match="cannot be read"):
        h.run(containers=containers)
