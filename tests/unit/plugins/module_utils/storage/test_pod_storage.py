# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PodStorage: guest setup against the fake guest, mounts in runtime configs, domain XML, plan, purge rules."""

from __future__ import annotations

from typing import Any

import pytest

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import AgentError, HyperError, SpecError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.agent import GuestAgent
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.layout import SYNC_TIMEOUT
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.plan import plan_pod
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.store import CurrentPod, FoundPod
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.stored import StoredPod, StoredVolume
from ansible_collections.hyper.pods.plugins.module_utils._hyper.storage.files import FileSpec, file_digest
from ansible_collections.hyper.pods.plugins.module_utils._hyper.storage.pod import (
    VOLUME_SYNC_TIMEOUT,
    GuestFile,
    PodStorage,
    add_mounts,
    check_volume_users,
    mount_options,
    sync_timeout,
    volumes_to_purge,
)
from ansible_collections.hyper.pods.plugins.module_utils._hyper.storage.volumes import share_tag, volume_serial
from ansible_collections.hyper.pods.plugins.module_utils._hyper.virt.domain_xml import DomainSpec, FilesystemSpec, render_domain_xml
from ansible_collections.hyper.pods.tests.unit.plugins.module_utils.fake_agent import FakeClock
from ansible_collections.hyper.pods.tests.unit.plugins.module_utils.guest.test_guest_pod import FakeGuest, Run

IMAGE = "oci:/srv/images:busybox"
SPEC: dict[str, Any] = {
    "name": "p",
    "volumes": [{"name": "data", "kind": "disk", "size": 64 << 20, "format": "qcow2"}, {"name": "share", "kind": "host", "host_path": "/srv/share"}],
    "containers": [
        {
            "name": "app",
            "image": IMAGE,
            "volumes": [{"name": "data", "path": "/data", "read_only": False}, {"name": "share", "path": "/share", "read_only": True}],
            "files": [{"path": "/etc/x", "mode": "0640", "owner": "1:2", "sha256": file_digest("p", "app", "/etc/x", b"xx")}],
        },
        {"name": "reader", "image": IMAGE, "volumes": [{"name": "share", "path": "/share", "read_only": True}]},
    ],
}
POD = StoredPod.from_json(SPEC)


def _pod(data: dict[str, Any]) -> StoredPod:
    """A typed stored pod (named p) from the JSON fields a test gives."""
    return StoredPod.from_json({"name": "p", **data})


@pytest.fixture
def guest(clock: FakeClock) -> FakeGuest:
    return FakeGuest(clock)


def test_mount_options_follow_the_containers() -> None:
    containers = POD.containers
    assert mount_options(POD.volumes[0], containers) == "rw"
    assert mount_options(POD.volumes[1], containers) == "ro"  # every container mounts it read-only
    assert mount_options(StoredVolume.from_json({"name": "unused"}, "volumes[0]"), containers) == "ro"


def test_setup_mounts_then_writes_files_as_argv_lists(guest: FakeGuest, clock: FakeClock) -> None:
    guest.run(("/usr/sbin/hyper-container",), Run()).run(("mkdir",), Run()).run(("mount",), Run()).run(("chown",), Run()).run(("chmod",), Run())
    agent = GuestAgent(guest, name="vm-1", clock=clock, sleep=clock.sleep)
    PodStorage("/root", POD).setup(agent, [GuestFile("/run/hyper/files/app/0", b"xx", 1, 2, 0o640)])
    assert guest.argvs == [
        ["/usr/sbin/hyper-container", "mount-disk", volume_serial("data"), "/run/hyper/volumes/data", "rw,noatime"],
        ["mkdir", "-p", "/run/hyper/shares/share"],
        ["mount", "-t", "virtiofs", "-o", "ro", share_tag("share"), "/run/hyper/shares/share"],
        ["mkdir", "-p", "/run/hyper/files/app"],
        ["chown", "1:2", "/run/hyper/files/app/0"],
        ["chmod", "640", "/run/hyper/files/app/0"],
    ]
    assert guest.files == {"/run/hyper/files/app/0": b"xx"}


def test_a_failed_mount_says_which_volume(guest: FakeGuest, clock: FakeClock) -> None:
    guest.run(("/usr/sbin/hyper-container",), Run(rc=1, stderr="no disk with serial hyper-vol-x in the guest\n"))
    agent = GuestAgent(guest, name="vm-1", clock=clock, sleep=clock.sleep)
    with pytest.raises(AgentError, match="mounting volume data failed: no disk with serial"):
        PodStorage("/root", POD).setup(agent, [])


def test_add_mounts_appends_to_the_image_mounts() -> None:
    app: dict[str, Any] = {"mounts": [{"destination": "/proc", "type": "proc"}]}
    reader: dict[str, Any] = {}
    add_mounts([("app", app), ("reader", reader), ("other", {})], POD)
    assert [m["destination"] for m in app["mounts"]] == ["/proc", "/data", "/share", "/etc/x"]
    assert reader["mounts"] == [{"destination": "/share", "type": "bind", "source": "/run/hyper/shares/share", "options": ["rbind", "ro"]}]


def test_disks_and_filesystems(tmp_path: Any) -> None:
    storage = PodStorage(str(tmp_path), POD)
    (disk,) = storage.disks(2)
    assert (disk.target, disk.readonly, disk.format, disk.serial) == ("vdc", False, "qcow2", volume_serial("data"))
    assert disk.path == str(tmp_path / "volumes" / "data.qcow2")
    assert storage.filesystems() == (FilesystemSpec("/srv/share", share_tag("share")),)


def test_contents_from_the_task_else_from_the_old_vm(tmp_path: Any) -> None:
    storage = PodStorage(str(tmp_path), POD)
    given = {"app": (FileSpec("/etc/x", data=b"xx"),)}
    assert storage.contents(given, None) == {"app": [b"xx"]}
    with pytest.raises(HyperError, match="neither in the task nor kept"):
        storage.contents({}, None)
    storage.stage("hyper-old", {"app": [b"xx"]})
    assert storage.contents({}, "hyper-old") == {"app": [b"xx"]}
    assert storage.owners(None) == {("app", 0): (1, 2)}
    assert storage.guest_files("hyper-old", {("app", 0): (1, 2)}) == [GuestFile("/run/hyper/files/app/0", b"xx", 1, 2, 0o640)]


def test_owner_names_need_the_image() -> None:
    spec = _pod({"containers": [{"name": "app", "image": IMAGE, "files": [{"path": "/x", "mode": "0644", "owner": "nobody"}]}]})
    with pytest.raises(HyperError, match="need the image's /etc/passwd"):
        PodStorage("/root", spec).owners(None)


def test_undo_removes_only_what_it_made(tmp_path: Any) -> None:
    storage = PodStorage(str(tmp_path), POD)
    made = tmp_path / "made.qcow2"
    made.write_bytes(b"x")
    storage.created = [str(made)]
    storage.undo()
    assert not made.exists() and storage.created == []


class _Dom:
    def name(self) -> str:
        return "hyper-1"


def _found(name: str, volumes: list[dict[str, Any]]) -> FoundPod:
    return FoundPod(_Dom(), CurrentPod("hyper-1", "u", {"name": name, "volumes": volumes}, "running", True))


def test_a_disk_volume_belongs_to_one_pod() -> None:
    pods = [_found("other", [SPEC["volumes"][0]]), _found("p", [SPEC["volumes"][0]])]
    with pytest.raises(SpecError, match="volume of pod other") as err:
        check_volume_users(pods, "p", POD.volumes)
    assert err.value.option == "volumes[data]"
    check_volume_users(pods[1:], "p", POD.volumes)
    # Host directories may be shared by several pods.
    check_volume_users([_found("other", [SPEC["volumes"][1]])], "p", POD.volumes)


def test_purge_takes_stored_and_given_volumes(tmp_path: Any) -> None:
    root = str(tmp_path)
    (tmp_path / "volumes").mkdir()
    for name in ("data.qcow2", "extra.raw", "kept.qcow2"):
        (tmp_path / "volumes" / name).write_bytes(b"x")
    from ansible_collections.hyper.pods.plugins.module_utils._hyper.storage.volumes import VolumeSpec

    paths = volumes_to_purge(root, [], "p", POD, [VolumeSpec("extra", "disk", 1 << 24, "raw"), VolumeSpec("share", "host", host_path="/srv")])
    assert paths == [str(tmp_path / "volumes" / "data.qcow2"), str(tmp_path / "volumes" / "extra.raw")]
    with pytest.raises(SpecError, match="volume of pod other"):
        volumes_to_purge(root, [_found("other", [SPEC["volumes"][0]])], "p", POD, [])


def test_domain_xml_with_a_share_has_shared_memory() -> None:
    base: dict[str, Any] = {"name": "hyper-1", "title": "p", "memory_mib": 128, "vcpus": 1, "accelerator": "tcg"}
    base.update(kernel="/k", initrd="/i", cmdline="", console_log="/c")
    plain = render_domain_xml(DomainSpec(**base))
    assert "memoryBacking" not in plain and "filesystem" not in plain
    shared = render_domain_xml(DomainSpec(**base, filesystems=(FilesystemSpec("/srv/a&b", "hyper-fs-1"),)))
    assert '<source type="memfd" />' in shared and '<access mode="shared" />' in shared
    assert '<filesystem type="mount" accessmode="passthrough">' in shared
    assert '<driver type="virtiofs" />' in shared and '<source dir="/srv/a&amp;b" />' in shared and '<target dir="hyper-fs-1" />' in shared


def test_a_volume_change_replaces_the_vm() -> None:
    stored = {"name": "p", "memory": 128, "volumes": SPEC["volumes"][:1]}
    current = CurrentPod("hyper-1", "u", stored, "running", True)
    plan = plan_pod({**stored, "volumes": SPEC["volumes"]}, frozenset({"volumes"}), current, "started")
    assert plan.actions == ["recreate", "start"] and plan.differences == ["volumes"]
    same = plan_pod(dict(stored), frozenset({"volumes"}), current, "started")
    assert not same.changed


def test_a_pod_with_a_disk_volume_waits_longer_for_its_sync() -> None:
    assert sync_timeout(POD) == VOLUME_SYNC_TIMEOUT > SYNC_TIMEOUT
    assert sync_timeout(_pod({"volumes": [SPEC["volumes"][1]]})) == SYNC_TIMEOUT == sync_timeout(_pod({}))
