# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The pod's config disk (pod/config_disk.py): a table of specs → the files and boot steps the guest gets."""

from __future__ import annotations

import io
import json
import os
import stat
import tarfile
from pathlib import Path
from typing import Any

import pytest

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import HyperError, SpecError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.containers import PreparedContainer
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod import config_disk as cd
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.stored import StoredPod
from ansible_collections.hyper.pods.plugins.module_utils._hyper.storage.pod import GuestFile
from ansible_collections.hyper.pods.plugins.module_utils._hyper.storage.volumes import share_tag, volume_serial

BASE: dict[str, Any] = {"name": "p", "hostname": "p", "vcpus": 1, "memory": 128, "accelerator": "tcg", "guest": {"kernel": "k", "initrd": "i"}}


def container(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "image": "busybox", "restart_policy": "always", **extra}


def prepared(name: str) -> PreparedContainer:
    return PreparedContainer(
        name, {"root": {"path": "rootfs"}, "process": {"env": ["SECRET=s3"]}}, {"serial": "hyper-img-0123456789", "restart_policy": "always"}
    )


NET = ["52:54:00:aa:bb:00", "10.88.0.9/24", "10.88.0.1", "1"]

CASES = [
    pytest.param({"containers": [container("web")]}, [], ["start web"], id="no network"),
    pytest.param({"containers": [container("web"), container("db")]}, NET, ["net " + " ".join(NET), "start web", "start db"], id="static address, in order"),
    pytest.param(
        {
            "containers": [container("web", volumes=[{"name": "data", "path": "/d", "read_only": True}])],
            "volumes": [{"name": "data", "kind": "disk", "size": 1, "format": "raw"}],
        },
        ["52:54:00:aa:bb:00", "dhcp", "10.88.0.1", "1"],
        ["net 52:54:00:aa:bb:00 dhcp 10.88.0.1 1", f"disk {volume_serial('data')} /run/hyper/volumes/data ro,noatime", "start web"],
        id="dhcp and a read-only disk volume",
    ),
    pytest.param(
        {"containers": [container("web", volumes=[{"name": "s", "path": "/s"}])], "volumes": [{"name": "s", "kind": "host", "host_path": "/srv"}]},
        [],
        [f"share {share_tag('s')} /run/hyper/shares/s rw", "start web"],
        id="a host directory",
    ),
]


@pytest.mark.parametrize(("spec", "net", "plan"), CASES)
def test_pod_entries(spec: dict[str, Any], net: list[str], plan: list[str]) -> None:
    pod = StoredPod.from_json({**BASE, **spec})
    entries = cd.pod_entries(pod, [prepared(c.name) for c in pod.containers], net, "nameserver 10.88.0.1\n")
    by_path = {e.path: e for e in entries}
    assert by_path[cd.PLAN].data.decode().splitlines() == plan
    assert (cd.UP_SCRIPT in by_path) == bool(net)
    for c in pod.containers:
        config = by_path[f"containers/{c.name}/config.json"]
        assert json.loads(config.data)["process"]["env"] == ["SECRET=s3"] and config.mode == 0o600
        meta = json.loads(by_path[f"containers/{c.name}/container.json"].data)
        assert meta["serial"] == "hyper-img-0123456789" and meta["restart_policy"] == "always" and meta["stop_timeout"] == 10
        assert by_path[f"containers/{c.name}/upper/etc/resolv.conf"].data == b"nameserver 10.88.0.1\n"


def test_files_and_services() -> None:
    pod = StoredPod.from_json({**BASE, "containers": [container("haproxy"), container("web")]})
    files = [GuestFile("/run/hyper/files/web/0", b"secret file", 33, 34, 0o640)]
    services = cd.Services("haproxy", "global\n", {"format": 1, "services": []}, ("10.96.0.1/32",))
    entries = cd.pod_entries(pod, [prepared("haproxy"), prepared("web")], [], "", files, services)
    by_path = {e.path: e for e in entries}
    item = by_path["files/web/0"]
    assert (item.data, item.uid, item.gid, item.mode) == (b"secret file", 33, 34, 0o640)
    assert by_path["containers/haproxy/upper/etc/haproxy/haproxy.cfg"].data == b"global\n"
    assert by_path[cd.PLAN].data.decode().splitlines() == ["vip 10.96.0.1/32", "start haproxy", "start web"]
    # A hyper_service change replaces the services and the vip steps, and keeps everything else.
    changed = cd.with_services(entries, cd.Services("haproxy", "global2\n", {}, ("10.96.0.2/32", "10.96.0.3/32")))
    after = {e.path: e for e in changed}
    assert after["containers/haproxy/upper/etc/haproxy/haproxy.cfg"].data == b"global2\n"
    assert after[cd.PLAN].data.decode().splitlines() == ["vip 10.96.0.2/32", "vip 10.96.0.3/32", "start haproxy", "start web"]
    assert after["files/web/0"] == item and set(after) == set(by_path)
    removed = {e.path: e for e in cd.with_services(entries, None)}
    assert "containers/haproxy/upper/etc/haproxy/haproxy.cfg" not in removed
    assert removed[cd.PLAN].data.decode().splitlines() == ["start haproxy", "start web"]


@pytest.mark.parametrize(
    "step",
    [["start", "a b"], ["start", "a\nreboot"], ["start", "*"], ["start", "$(reboot)"], ["start", ""], ["rm", "-rf"], [], ["net", "x;y"]],
)
def test_plan_refuses_words_the_guest_would_split(step: list[str]) -> None:
    with pytest.raises(HyperError):
        cd.render_plan([step])


@pytest.mark.parametrize(
    ("make", "error"),
    [
        (lambda: cd.container_entries(PreparedContainer("web", {"root": {"path": "/"}}, {"serial": "hyper-img-0123456789"}), ""), SpecError),
        (lambda: cd.container_entries(PreparedContainer("Web", {"root": {"path": "rootfs"}}, {"serial": "hyper-img-0123456789"}), ""), SpecError),
        (lambda: cd.container_entries(PreparedContainer("web", {"root": {"path": "rootfs"}}, {"serial": "nope"}), ""), SpecError),
        (lambda: cd.file_entries([GuestFile("/etc/passwd", b"", 0, 0, 0o644)]), HyperError),
        (lambda: cd.file_entries([GuestFile("/run/hyper/../../etc/passwd", b"", 0, 0, 0o644)]), HyperError),
        (lambda: cd.build_tar([cd.Entry("a", b"1"), cd.Entry("a", b"2")]), HyperError),
    ],
)
def test_bad_entries(make: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        make()


def test_tar_is_deterministic_and_keeps_owners() -> None:
    entries = [cd.Entry("files/web/0", b"x", 7, 8, 0o600), cd.Entry("boot/plan", b"start web\n")]
    data = cd.build_tar(entries)
    assert data == cd.build_tar(list(reversed(entries)))
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        members = {m.name: m for m in archive.getmembers()}
    assert list(members) == ["boot", "files", "files/web", "boot/plan", "files/web/0"]
    assert members["files/web"].isdir() and members["files/web"].mode == 0o755
    assert (members["files/web/0"].uid, members["files/web/0"].gid, members["files/web/0"].mode, members["files/web/0"].mtime) == (7, 8, 0o600, 0)
    assert sorted(cd.read_tar(data), key=lambda e: e.path) == sorted(entries, key=lambda e: e.path)


def test_write_disk_new_then_in_place(tmp_path: Path) -> None:
    path = cd.config_path(str(tmp_path), "hyper-00000001")
    first = cd.build_tar([cd.Entry("boot/plan", b"start a\n"), cd.Entry("containers/a/config.json", b"old-secret" * 100)])
    cd.write_disk(path, first, in_place=False)
    info = os.stat(path)
    assert stat.S_IMODE(info.st_mode) == 0o600 and info.st_size == cd.MIN_SIZE
    assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == cd.POD_DIR_MODE
    assert cd.read_tar(cd.read_archive(path))[0].path == "boot/plan"
    # In place: the same inode (QEMU's open file), the same size, nothing of the old content left.
    second = cd.build_tar([cd.Entry("boot/plan", b"start b\n")])
    cd.write_disk(path, second, in_place=True)
    after = os.stat(path)
    assert (after.st_ino, after.st_size) == (info.st_ino, info.st_size)
    data = cd.read_disk(path)
    assert b"old-secret" not in data and [e.data for e in cd.read_tar(cd.disk_archive(data))] == [b"start b\n"]
    assert data.startswith(b"hyper-config 1 %d\n\0" % len(second)) and data[cd.HEADER_SIZE :].startswith(second)
    with pytest.raises(HyperError, match="no longer fits"):
        cd.write_disk(path, b"x" * (cd.MIN_SIZE + 1), in_place=True)
    # Off (a start): a new file may be larger.
    cd.write_disk(path, b"x" * (cd.MIN_SIZE + 1), in_place=False)
    assert os.stat(path).st_size == cd.disk_size(cd.MIN_SIZE + 1) > cd.MIN_SIZE


def test_update_services(tmp_path: Path) -> None:
    root, vm = str(tmp_path), "hyper-00000002"
    services = cd.Services("haproxy", "cfg\n", {"format": 1}, ("10.96.0.1/32",))
    assert cd.update_services(root, vm, services) is False  # no config disk: a pod from before it
    cd.write_disk(cd.config_path(root, vm), cd.build_tar([cd.Entry("boot/plan", b"start haproxy\n")]), in_place=False)
    inode = os.stat(cd.config_path(root, vm)).st_ino
    assert cd.update_services(root, vm, services) is True
    assert cd.update_services(root, vm, services) is False  # the same again: nothing written
    assert cd.load_services(root, vm) == services
    assert stat.S_IMODE(os.stat(cd.services_path(root, vm)).st_mode) == 0o600
    assert os.stat(cd.config_path(root, vm)).st_ino == inode
    plan = {e.path: e.data for e in cd.read_tar(cd.read_archive(cd.config_path(root, vm)))}[cd.PLAN]
    assert plan == b"vip 10.96.0.1/32\nstart haproxy\n"
    Path(cd.services_path(root, vm)).write_text("[]")
    with pytest.raises(HyperError, match="does not hold"):
        cd.load_services(root, vm)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"tar data without a header",
        b"hyper-config 2 10\n".ljust(cd.HEADER_SIZE, b"\0") + b"x" * 10,  # another format
        b"hyper-config 1 -1\n".ljust(cd.HEADER_SIZE, b"\0"),
        b"hyper-config 1 11\n".ljust(cd.HEADER_SIZE, b"\0") + b"x" * 10,  # longer than the disk
    ],
)
def test_a_disk_without_its_header_is_refused(data: bytes) -> None:
    with pytest.raises(HyperError, match="is not a pod's config disk"):
        cd.disk_archive(data)


def test_the_header_gives_the_archive_length() -> None:
    image = cd.disk_image(b"archive") + b"\0" * 100
    assert len(image) == cd.HEADER_SIZE + 107 and cd.disk_archive(image) == b"archive"
