# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""One container changed, one container touched: the plan (pure) and its apply against the fakes."""

from __future__ import annotations

import copy
import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Optional

import pytest

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import ContainerError, SpecError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.containers import PreparedContainer
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.layout import image_serial
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.config_disk import PLAN, config_path, read_archive, read_tar
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.engine import ensure_pod
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.inplace import LiveVm, container_changes, plan_containers, recreate_reasons
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.plan import plan_pod
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.service_container import ADD_PARAM, keep_service_containers, with_service_container
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.store import CurrentPod
from ansible_collections.hyper.pods.tests.unit.plugins.module_utils.pod import test_pod, test_selfboot

D1, D2, D3 = "sha256:" + "1" * 64, "sha256:" + "2" * 64, "sha256:" + "3" * 64
S1, S2, S3 = image_serial(D1), image_serial(D2), image_serial(D3)


def container(name: str, digest: str = D1, **extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"name": name, "image": "docker://busybox:1.36", "image_ref": "docker://busybox:1.36", "digest": digest, "command": None, "env": {}}
    base.update(extra)
    return base


def spec(*containers: dict[str, Any], **extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"name": "p", "hostname": "p", "vcpus": 1, "memory": 128, "accelerator": "tcg", "guest": {}, "containers": list(containers)}
    base.update(extra)
    return base


LIVE = LiveVm(frozenset({S1}), 4, True)

# -- the plan (pure) -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        ([container("a")], [container("a")], []),
        ([container("a")], [container("a", env={"X": "1"})], ["replace container a: env changed"]),
        ([container("a")], [container("a", digest=D2)], ["replace container a: image digest changed"]),
        ([container("a")], [container("a", image="docker://alpine", image_ref="docker://alpine", digest=D2)], ["replace container a: image changed"]),
        ([container("a")], [container("a", digest=D2, env={"X": "1"})], ["replace container a: image digest changed, env changed"]),
        ([container("a")], [container("a"), container("b")], ["add container b"]),
        ([container("a"), container("b")], [container("b")], ["remove container a"]),
        (
            [container("a"), container("b")],
            [container("c"), container("b", command=["sh"])],
            ["remove container a", "add container c", "replace container b: command changed"],
        ),
    ],
)
def test_container_changes(before: list[Any], after: list[Any], expected: list[str]) -> None:
    assert [c.describe for c in container_changes(before, after)] == expected


def test_a_new_image_is_attached_and_an_unused_one_detached() -> None:
    plan = plan_containers(spec(container("a"), container("b")), spec(container("a"), container("b", digest=D2)), LIVE)
    assert plan.in_place and plan.attach == (S2,) and plan.detach == ()
    plan = plan_containers(spec(container("a", digest=D2)), spec(container("a", digest=D3)), LiveVm(frozenset({S2}), 0, True))
    assert plan.in_place and plan.attach == (S3,) and plan.detach == (S2,)  # the detached disk's port takes the new one


@pytest.mark.parametrize(
    ("live", "reason"),
    [
        (None, "the pod's VM is not running"),
        (LiveVm(frozenset({S1}), 0, True), "needs 1 free PCIe hot-plug slot(s) and the VM has 0"),
        (LiveVm(frozenset({S1}), 4, False), "made before pods had a config disk"),
    ],
)
def test_when_the_vm_must_be_recreated(live: Optional[LiveVm], reason: str) -> None:
    plan = plan_containers(spec(container("a")), spec(container("a"), container("b", digest=D2)), live)
    assert not plan.in_place and reason in " ".join(plan.vm_reasons)


def test_a_volume_mounted_otherwise_recreates() -> None:
    volume = {"name": "data", "kind": "disk", "size": 1, "format": "raw"}
    ro = container("a", volumes=[{"name": "data", "path": "/d", "read_only": True}])
    rw = container("b", volumes=[{"name": "data", "path": "/d", "read_only": False}])
    plan = plan_containers(spec(ro, volumes=[volume]), spec(ro, rw, volumes=[volume]), LIVE)
    assert plan.vm_reasons == ("volume data would be mounted rw instead of ro in the guest",)


def current(pod: dict[str, Any], running: bool = True) -> CurrentPod:
    return CurrentPod("hyper-00000001", "u", copy.deepcopy(pod), "running" if running else "stopped", running)


ALL = frozenset({"containers"})


@pytest.mark.parametrize(
    ("state", "running", "recreate", "memory", "expected", "reasons"),
    [
        ("started", True, False, 128, ["replace container a: env changed"], []),
        ("present", True, False, 128, ["replace container a: env changed"], []),
        ("restarted", True, False, 128, ["recreate", "start"], ["containers changed: the containers changed and the pod's VM is not running"]),
        ("started", False, False, 128, ["recreate", "start"], ["containers changed: the containers changed and the pod's VM is not running"]),
        ("started", True, True, 128, ["recreate", "start"], ["recreate was asked for", "containers changed"]),
        ("started", True, False, 256, ["recreate", "start"], ["memory changed", "containers changed"]),
    ],
)
def test_plan_pod_changes_containers_in_place(state: str, running: bool, recreate: bool, memory: int, expected: list[str], reasons: list[str]) -> None:
    before = spec(container("a"), container("b"))
    after = spec(container("a", env={"X": "h"}), container("b"), memory=memory)
    fields = ALL | ({"memory"} if memory != 128 else set())
    plan = plan_pod(after, frozenset(fields), current(before, running), state, recreate, LIVE)
    assert plan.actions == expected and plan.recreate_reasons == reasons
    assert (plan.containers is not None) == (expected[0] != "recreate")


def test_same_containers_in_another_order_rewrite_the_boot_order_only() -> None:
    plan = plan_pod(spec(container("b"), container("a")), ALL, current(spec(container("a"), container("b"))), "started", False, LIVE)
    assert plan.actions == ["reorder containers"] and plan.containers is not None and plan.containers.changes == ()


def test_recreate_reasons() -> None:
    assert recreate_reasons(["memory"], False, None) == ["memory changed"]
    assert recreate_reasons(["containers"], True, None) == ["recreate was asked for", "containers changed"]


# -- the apply, against the fakes --------------------------------------------------------------------


class HotplugClient(test_pod.FakeClient):
    """A FakeClient whose domains take disks while they run; the live XML numbers the ports and puts a device on each, as libvirt does."""

    def xml_desc(self, dom: test_pod.FakeDomain) -> str:
        root = ET.fromstring(dom.xml)
        devices = root.find("devices")
        ports = [c for c in devices.iterfind("controller") if c.get("model") == "pcie-root-port"]  # type: ignore[union-attr]
        for index, port in enumerate(ports, start=1):
            port.set("index", str(index))
        users = [d for d in devices if d.tag in ("disk", "interface")]  # type: ignore[union-attr]
        for bus, device in zip(range(1, len(ports) + 1), users):
            ET.SubElement(device, "address", type="pci", bus=str(bus), slot="0")
        return ET.tostring(root, encoding="unicode")

    def attach_device(self, dom: test_pod.FakeDomain, xml: str, persistent: bool = True) -> None:
        root = ET.fromstring(dom.xml)
        disk = ET.fromstring(xml)
        self.log.append(f"attach {disk.findtext('serial')} {disk.find('target').get('dev')}")  # type: ignore[union-attr]
        root.find("devices").append(disk)  # type: ignore[union-attr]
        dom.xml = ET.tostring(root, encoding="unicode")

    def detach_device(self, dom: test_pod.FakeDomain, xml: str, persistent: bool = True) -> None:
        target = ET.fromstring(xml).find("target").get("dev")  # type: ignore[union-attr]
        root = ET.fromstring(dom.xml)
        devices = root.find("devices")
        for disk in list(devices.iterfind("disk")):  # type: ignore[union-attr]
            if disk.find("target").get("dev") == target:  # type: ignore[union-attr]
                self.log.append(f"detach {disk.findtext('serial')}")
                devices.remove(disk)  # type: ignore[union-attr]
        dom.xml = ET.tostring(root, encoding="unicode")


class FileTransport(test_selfboot.BootingTransport):
    """qemu-ga's file calls too: what the host writes into the guest is kept in ``written``."""

    written: dict[str, bytes] = {}

    def send(self, json_text: str, timeout: int) -> str:
        import base64  # pylint: disable=import-outside-toplevel

        request = json.loads(json_text)
        name = request["execute"]
        if name == "guest-file-open":
            self.state.requests.append(name)
            self._path = request["arguments"]["path"]
            FileTransport.written[self._path] = b""
            return json.dumps({"return": 7})
        if name == "guest-file-write":
            self.state.requests.append(name)
            data = base64.b64decode(request["arguments"]["buf-b64"])
            FileTransport.written[self._path] += data
            return json.dumps({"return": {"count": len(data), "eof": False}})
        return super().send(json_text, timeout)


class SerialImages(test_pod.FakeImages):
    """Each container's container.json names its own image's serial (one disk a digest)."""

    def prepare(self, pod: Any) -> Any:
        _containers, disks = super().prepare(pod)
        ready = [PreparedContainer(c.name, {"root": {"path": "rootfs"}, "of": c.name}, {"serial": image_serial(str(c.digest))}) for c in pod.containers]
        return ready, disks


class LiveGuestPod(test_pod.FakeGuestPod):
    """A guest whose containers can be removed one by one; every start gets a new pid."""

    pids = [1000]

    def start(self, name: str) -> None:
        self.calls.append(f"start {name}")
        self._maybe_fail(f"start {name}")
        LiveGuestPod.pids[0] += 1
        self.guest[name] = {"status": "running", "pid": LiveGuestPod.pids[0], "exit_code": None, "restarts": 0}

    def remove(self, name: str, timeout: Optional[float] = None) -> bool:
        self.calls.append(f"remove {name} {timeout:g}")
        self._maybe_fail(f"remove {name}")
        return self.guest.pop(name, None) is not None


@pytest.fixture
def ip(sb: test_pod.Harness) -> test_pod.Harness:
    sb.client = HotplugClient(console_lines=40)
    FileTransport.written = {}
    deps = sb.deps

    def live() -> Any:
        session = deps()
        session.make_transport = lambda dom, name: FileTransport(dom, sb.agent)
        session.make_images = lambda root: SerialImages(root, sb)
        session.make_guest_pod = lambda agent: LiveGuestPod(sb.calls, sb.fail, sb.guest, sb.settles)
        return session

    sb.deps = live  # type: ignore[method-assign]
    return sb


sb = test_selfboot.sb  # the fixture of self-booting pods, with a config disk


def pods_of(h: test_pod.Harness) -> dict[str, Any]:
    (dom,) = h.pods()
    return {c["name"]: c for c in dom.meta["spec"]["containers"]}


def booted(h: test_pod.Harness, names: list[str]) -> dict[str, int]:
    """The pids the guest gave the containers at boot (the guest's own hyper-boot started them)."""
    for number, name in enumerate(names):
        h.guest[name] = {"status": "running", "pid": 10 + number, "exit_code": None, "restarts": 0}
    return {name: h.guest[name]["pid"] for name in names}


def config_names(h: test_pod.Harness) -> list[str]:
    (dom,) = h.pods()
    entries = {e.path: e.data for e in read_tar(read_archive(config_path(str(h.root), dom.vm_name)))}
    return [line.split()[1] for line in entries[PLAN].decode().splitlines() if line.startswith("start ")]


def test_an_env_change_replaces_that_container_only(ip: test_pod.Harness) -> None:
    ip.run()
    (dom,) = ip.pods()
    pids = booted(ip, ["web", "sleeper"])
    ip.calls.clear()
    sleeper = {**test_pod.SLEEPER, "env": {"MODE": "loud"}}
    check = ip.run(check_mode=True, containers=[test_pod.WEB, sleeper])
    assert check["actions"] == ["replace container sleeper: env changed"] and check["changed"] is True
    assert check["container_changes"] == [{"name": "sleeper", "action": "replace", "reasons": ["env changed"]}]
    assert ip.calls == ["digests check_mode=True"] and "sleeper" in ip.guest and ip.guest["sleeper"]["pid"] == pids["sleeper"]
    ip.calls.clear()
    result = ip.run(containers=[test_pod.WEB, sleeper])
    assert result["actions"] == ["replace container sleeper: env changed"] and "containers_changed" in result["timings"]
    assert ip.pods() == [dom] and dom.active  # the same VM
    assert ip.guest["web"]["pid"] == pids["web"] and ip.guest["sleeper"]["pid"] != pids["sleeper"]
    assert ip.calls == ["digests check_mode=False", "prepare", "remove sleeper 5", "start sleeper", "wait sleeper"]
    assert [c["name"] for c in result["diff"]["after"]["containers"]] == ["web", "sleeper"]
    assert result["diff"]["after"]["containers"][1]["env"] == {"MODE": "********"}
    # What travels with the domain: the stored spec, the host's env copy, the config disk the guest boots from.
    assert pods_of(ip)["sleeper"]["env"]["MODE"].startswith("hmac-sha256:")
    assert json.loads((ip.root / "pods" / dom.vm_name / "env.json").read_text())["sleeper"] == {"MODE": "loud"}
    tar = FileTransport.written["/run/hyper/.hyper-inplace.tar"]
    assert b"containers/sleeper/config.json" in tar and b"containers/web/" not in tar
    assert config_names(ip) == ["web", "sleeper"]
    again = ip.run(containers=[test_pod.WEB, sleeper])
    assert (again["changed"], again["actions"]) == (False, [])


def test_a_new_image_is_hot_plugged_and_the_old_one_detached(ip: test_pod.Harness) -> None:
    ip.run()
    (dom,) = ip.pods()
    booted(ip, ["web", "sleeper"])
    ip.digests["docker://busybox:1.37"] = D2
    result = ip.run(containers=[test_pod.WEB, {**test_pod.SLEEPER, "image": "docker://busybox:1.37"}])
    assert result["actions"] == ["replace container sleeper: image changed"], result.get("recreate_reasons")
    assert [line for line in ip.client.log if line.startswith("attach")] == [f"attach {S2} vdd"]  # vda, vdb, vdc: the image, the scratch and the config disk
    assert pods_of(ip)["sleeper"]["digest"] == D2
    # web's image stays; sleeper now runs web's image again: its own is detached after its removal.
    result = ip.run(containers=[test_pod.WEB, test_pod.SLEEPER])
    assert result["actions"] == ["replace container sleeper: image changed"], result.get("recreate_reasons")
    assert f"detach {S2}" in ip.client.log
    assert ["umount", f"/run/hyper/images/{S2}"] in ip.agent.execs
    assert S2 not in dom.xml


def test_add_and_remove_a_container(ip: test_pod.Harness) -> None:
    ip.run()
    pids = booted(ip, ["web", "sleeper"])
    extra = {"name": "extra", "image": "docker://busybox:1.36", "command": ["sleep", "99"]}
    added = ip.run(containers=[test_pod.WEB, test_pod.SLEEPER, extra])
    assert added["actions"] == ["add container extra"] and "remove" not in " ".join(ip.calls)
    assert config_names(ip) == ["web", "sleeper", "extra"]
    assert ip.run(containers=[test_pod.WEB, test_pod.SLEEPER, extra])["changed"] is False
    removed = ip.run(containers=[test_pod.WEB, extra])
    assert removed["actions"] == ["remove container sleeper"]
    assert "sleeper" not in ip.guest and ip.guest["web"]["pid"] == pids["web"]
    assert config_names(ip) == ["web", "extra"] and list(pods_of(ip)) == ["web", "extra"]
    assert ["rm", "-rf", "/run/hyper/files/sleeper"] in ip.agent.execs


def test_a_vm_without_free_slots_is_recreated_with_the_reason(ip: test_pod.Harness) -> None:
    ip.run()
    (dom,) = ip.pods()
    dom.xml = dom.xml.replace('model="pcie-root-port"', 'model="pcie-root-port-gone"')  # as defined before pods had slots
    ip.digests["docker://busybox:1.37"] = D2
    result = ip.run(containers=[test_pod.WEB, {**test_pod.SLEEPER, "image": "docker://busybox:1.37"}])
    assert result["actions"] == ["recreate", "start"]
    assert "free PCIe hot-plug slot" in result["recreate_reasons"][0] and "sleeper" in result["recreate_reasons"][0]
    assert ip.pods()[0] is not dom


def test_a_container_that_fails_to_start_keeps_the_old_spec(ip: test_pod.Harness) -> None:
    ip.run()
    booted(ip, ["web", "sleeper"])
    ip.fail["start sleeper"] = ContainerError("sleeper", "exited with code 1")
    sleeper = {**test_pod.SLEEPER, "env": {"MODE": "loud"}}
    with pytest.raises(Exception, match=r"pod pe-test-1 \(VM hyper-[0-9a-f]+\): starting container sleeper failed"):
        ip.run(containers=[test_pod.WEB, sleeper])
    assert pods_of(ip)["sleeper"]["env"] == {}  # the next run plans the same change again
    del ip.fail["start sleeper"]
    assert ip.run(containers=[test_pod.WEB, sleeper])["actions"] == ["replace container sleeper: env changed"]


def test_an_old_pod_without_a_config_disk_is_recreated(tmp_path: Path) -> None:
    old = test_pod.Harness(tmp_path)
    (tmp_path / "host.json").write_text('{"accelerator": "tcg", "format": 1}')
    image = tmp_path / "images" / "default"
    image.mkdir(parents=True)
    (image / "vmlinuz").write_bytes(b"kernel")
    (image / "initrd.img").write_bytes(b"initrd")
    (image / "manifest.json").write_text("{}")
    (tmp_path / "run").mkdir()
    old.run()
    result = old.run(containers=[test_pod.WEB, {**test_pod.SLEEPER, "env": {"A": "b"}}])
    assert result["actions"] == ["recreate", "start"]
    assert "config disk" in result["recreate_reasons"][0]


# -- the service container hyper_service adds --------------------------------------------------------


def test_keep_service_containers() -> None:
    haproxy = {**container("haproxy", digest=D2), "service": True}
    current = spec(container("a"), haproxy)
    assert keep_service_containers(spec(container("a")), current)["containers"] == [container("a"), haproxy]
    listed = keep_service_containers(spec(container("haproxy", digest=D2), container("a")), current)["containers"]
    assert listed == [haproxy, container("a")]  # listed by the task: marked, in the task's order
    assert keep_service_containers(spec(container("a")), spec(container("a"), container("b")))["containers"] == [container("a")]


def test_with_service_container() -> None:
    made = with_service_container(spec(), spec(container("a")), {"name": "haproxy", "image": "oci:/x:haproxy"}, lambda c: container(str(c["name"]), D2))
    assert made["containers"] == [container("a"), {**container("haproxy", D2), "service": True}]
    with pytest.raises(SpecError, match="container"):
        with_service_container(spec(), spec(), {"name": "Bad!", "image": "x"}, dict)
    with pytest.raises(SpecError, match="service_image"):
        with_service_container(spec(), spec(), {"name": "haproxy", "image": ""}, dict)


def test_hyper_service_adds_its_container_in_place_and_hyper_pod_keeps_it(ip: test_pod.Harness) -> None:
    ip.run()
    (dom,) = ip.pods()
    pids = booted(ip, ["web", "sleeper"])
    ip.digests["oci:/images:haproxy"] = D2
    request = {"name": "pe-test-1", "root": str(ip.root), "state": "present", ADD_PARAM: {"name": "haproxy", "image": "oci:/images:haproxy"}}
    checked = ensure_pod(request, True, False, ip.deps())
    assert checked["actions"] == ["add container haproxy"] and "haproxy" not in pods_of(ip)
    added = ensure_pod(request, False, False, ip.deps())
    assert added["actions"] == ["add container haproxy"] and ip.pods() == [dom]
    assert pods_of(ip)["haproxy"]["service"] is True and pods_of(ip)["haproxy"]["digest"] == D2
    assert {n: ip.guest[n]["pid"] for n in pids} == pids
    assert f"attach {S2} vdd" in ip.client.log and config_names(ip) == ["web", "sleeper", "haproxy"]
    assert ensure_pod(request, False, False, ip.deps())["changed"] is False
    # The pod's own task, unchanged: the service container stays.
    again = ip.run()
    assert (again["changed"], again["actions"]) == (False, [])
    changed = ip.run(containers=[{**test_pod.WEB, "env": {"A": "b"}}, test_pod.SLEEPER])
    assert changed["actions"] == ["replace container web: env changed"] and list(pods_of(ip)) == ["web", "sleeper", "haproxy"]


def test_containers_started_in_place_wait_the_tasks_settle(ip: test_pod.Harness) -> None:
    ip.run()
    booted(ip, ["web", "sleeper"])
    ip.settles.clear()
    sleeper = {**test_pod.SLEEPER, "env": {"MODE": "calm"}}
    result = ip.run(containers=[test_pod.WEB, sleeper], wait_settle=1.5)
    assert result["actions"] == ["replace container sleeper: env changed"]
    assert ip.settles == [1.5]
