# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""ensure_pod and pod_info against a fake libvirt, a fake agent transport, a fake GuestPod and fake images."""

from __future__ import annotations

import hashlib
import json
import os
import re
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Optional, Sequence

import pytest

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import (
    AgentTimeout,
    ContainerError,
    DomainNotFound,
    DomainNotRunning,
    HyperError,
    ImageError,
    LibvirtFailure,
    SpecError,
)
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.containers import PreparedContainer
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.settle import DEFAULT_SETTLE, SettleWatch, not_running_reason
from ansible_collections.hyper.pods.plugins.module_utils._hyper.host.boot_slots import BootQueueTimeout, BootSlots
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.boot import PodError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.engine import ensure_pod
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.session import PodSession
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.spec import ContainerSpec
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.stored import StoredPod
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.view import pod_info
from ansible_collections.hyper.pods.plugins.module_utils._hyper.virt.client import parse_metadata
from ansible_collections.hyper.pods.plugins.module_utils._hyper.virt.domain_xml import DiskSpec
from ansible_collections.hyper.pods.tests.unit.plugins.module_utils.fake_agent import FakeClock
from ansible_collections.hyper.pods.tests.unit.plugins.module_utils.fake_network import FakePodNetwork, FakePorts

# -- fakes -----------------------------------------------------------------------------------------


class FakeDomain:
    def __init__(self, xml: str) -> None:
        root = ET.fromstring(xml)
        self.xml = xml
        self.vm_name = root.findtext("name") or ""
        self.uuid = str(uuid.uuid4())
        self.title = root.findtext("title")
        self.memory = int(root.findtext("memory") or 0)
        self.cmdline = root.findtext("os/cmdline")
        self.console = str(root.find("devices/serial/source").get("path"))  # type: ignore[union-attr]
        meta = root.find("metadata/*")
        self.meta: Any = parse_metadata(ET.tostring(meta, encoding="unicode")) if meta is not None else None
        self.serials = [d.findtext("serial") for d in root.findall("devices/disk")]
        self.active = False
        self.defined = True
        self.auto = False

    def name(self) -> str:
        return self.vm_name

    def autostart(self) -> int:
        return int(self.auto)

    def setAutostart(self, flag: int) -> int:  # pylint: disable=invalid-name
        self.auto = bool(flag)
        return 0

    def UUIDString(self) -> str:  # pylint: disable=invalid-name
        return self.uuid


class FakeClient:
    def __init__(self, console_lines: int = 0, start_error: Optional[HyperError] = None) -> None:
        self.domains: list[FakeDomain] = []
        self.log: list[str] = []
        self.console_lines = console_lines
        self.start_error = start_error

    def __enter__(self) -> FakeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def live(self) -> list[FakeDomain]:
        return [d for d in self.domains if d.defined]

    def list_domains(self, prefix: str = "") -> list[FakeDomain]:
        return [d for d in self.live() if d.vm_name.startswith(prefix)]

    def lookup(self, name: str) -> FakeDomain:
        for dom in self.live():
            if dom.vm_name == name:
                return dom
        raise DomainNotFound(f"domain {name}: no such domain")

    def get_metadata(self, dom: FakeDomain) -> Any:
        return dom.meta

    def set_metadata(self, dom: FakeDomain, value: Any) -> None:
        self.log.append(f"set_metadata {dom.vm_name}")
        dom.meta = json.loads(json.dumps(value))

    def state(self, dom: FakeDomain) -> str:
        return "running" if dom.active else "shutoff"

    def is_active(self, dom: FakeDomain) -> bool:
        return dom.active

    def define(self, xml: str) -> FakeDomain:
        dom = FakeDomain(xml)
        self.log.append(f"define {dom.vm_name}")
        self.domains.append(dom)
        return dom

    def start(self, dom: FakeDomain) -> None:
        self.log.append(f"start {dom.vm_name}")
        if self.start_error is not None:
            raise self.start_error
        with open(dom.console, "w", encoding="utf-8") as handle:
            handle.writelines(f"console line {n}\n" for n in range(self.console_lines))
        dom.active = True

    def destroy(self, dom: FakeDomain) -> bool:
        self.log.append(f"destroy {dom.vm_name}")
        was, dom.active = dom.active, False
        return was

    def undefine(self, dom: FakeDomain) -> None:
        self.log.append(f"undefine {dom.vm_name}")
        dom.defined = False


class FakeTransport:
    """qemu-ga as far as the engine uses it directly: ping, and guest-exec of sync (recorded in ``execs``)."""

    def __init__(self, dom: FakeDomain, agent: FakeAgentState) -> None:
        self.dom = dom
        self.state = agent

    def send(self, json_text: str, timeout: int) -> str:
        request = json.loads(json_text)
        self.state.requests.append(request["execute"])
        if not self.dom.active:
            raise DomainNotRunning("domain is not running")
        if not self.state.up:
            raise AgentTimeout("guest agent is not available for now")
        if request["execute"] == "guest-exec":
            args = request["arguments"]
            self.state.execs.append([args["path"], *args["arg"]])
            return json.dumps({"return": {"pid": 500 + len(self.state.execs)}})
        if request["execute"] == "guest-exec-status":
            return json.dumps({"return": {"exited": self.state.sync_works, "exitcode": 0}})
        return json.dumps({"return": {}})


class FakeAgentState:
    def __init__(self) -> None:
        self.up = True
        self.sync_works = True
        self.requests: list[str] = []
        self.execs: list[list[str]] = []


class FakeGuestPod:
    """GuestPod's API; every call is recorded in ``calls`` (shared by all instances of one test)."""

    def __init__(self, calls: list[str], fail: dict[str, HyperError], guest: dict[str, dict[str, Any]], settles: Optional[list[float]] = None) -> None:
        self.calls = calls
        self.fail = fail
        self.guest = guest
        self.settles = settles if settles is not None else []

    def _maybe_fail(self, what: str) -> None:
        if what in self.fail:
            raise self.fail[what]

    def write_container(self, name: str, config: dict[str, Any], meta: dict[str, Any]) -> None:
        self.calls.append(f"write {name}")
        self._maybe_fail(f"write {name}")
        assert config == {"config-of": name} and meta["name"] == name

    def start(self, name: str) -> None:
        self.calls.append(f"start {name}")
        self._maybe_fail(f"start {name}")
        self.guest[name] = {"status": "running", "pid": 100 + len(self.guest), "exit_code": None, "restarts": 0}

    def stop(self, name: str, timeout: float) -> None:
        self.calls.append(f"stop {name} {timeout:g}")
        self._maybe_fail(f"stop {name}")
        self.guest[name] = {"status": "stopped", "pid": None, "exit_code": 143, "restarts": 0}

    def stop_many(self, items: Sequence[tuple[str, Optional[float]]]) -> None:
        self.calls.append("stop_many " + ", ".join(f"{name} {timeout:g}" for name, timeout in items if timeout is not None))
        self._maybe_fail("stop_many")
        for name, _timeout in items:
            self.guest[name] = {"status": "stopped", "pid": None, "exit_code": 137, "restarts": 0}

    def status(self) -> dict[str, dict[str, Any]]:
        self._maybe_fail("status")
        return {k: dict(v) for k, v in self.guest.items()}

    def logs(self, name: str, lines: int, since: Optional[float] = None) -> str:
        self.calls.append(f"logs {name} {lines}" + (f" since {since}" if since is not None else ""))
        return f"log of {name}\nline 2\n"

    def wait_running(self, names: Sequence[str], timeout: float, settle: float = DEFAULT_SETTLE) -> None:
        self.calls.append(f"wait {','.join(names)}")
        self.settles.append(settle)
        self._maybe_fail("wait")

    def wait_settled(self, watch: SettleWatch, timeout: float, first: Any = None, *, poll_cap: float = 0.5, missing: str = "") -> dict[str, Any]:
        """The real settle logic (guest/settle.py) over the guest's answers; after ``first``, the guest's containers do not change."""
        self.calls.append(f"wait_settled {','.join(watch.names)}")
        self.settles.append(watch.settle)
        self._maybe_fail("wait")
        states, sent, answered = first if first is not None else (self.status(), 0.0, 0.0)
        for _round in range(100):
            verdict = watch.observe(states, sent, answered)
            if verdict.up:
                return {n: states[n] for n in watch.names}
            if verdict.failed is not None:
                reason = f"is not in the guest: {missing}" if verdict.missing else not_running_reason(states[verdict.failed])
                raise ContainerError(verdict.failed, reason)
            sent = answered = answered + max(verdict.settle_left, 0.05)
            if first is None:
                states = self.status()
        raise AssertionError("the settle never ended")


class FakeImages:
    def __init__(self, root: str, owner: Harness) -> None:
        self.owner = owner

    def digests(self, containers: Sequence[ContainerSpec], pull: str, check_mode: bool, auth: Any = None) -> dict[str, Optional[str]]:
        self.owner.calls.append(f"digests check_mode={check_mode}")
        self.owner.pulls.append((pull, auth))
        return {c.name: self.owner.digests.get(c.image, "sha256:" + "1" * 64) for c in containers}

    def prepare(self, pod: StoredPod) -> tuple[list[PreparedContainer], list[DiskSpec]]:
        self.owner.calls.append("prepare")
        if self.owner.prepare_error is not None:
            raise self.owner.prepare_error
        containers = [PreparedContainer(c.name, {"config-of": c.name}, {"name": c.name}) for c in pod.containers]
        digests = sorted({str(c.digest) for c in pod.containers})
        disks = [DiskSpec(f"/cache/disks/{d[7:]}.img", f"vd{chr(97 + i)}", "hyper-img-" + d[7:17]) for i, d in enumerate(digests)]
        return containers, disks


class Harness:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.client = FakeClient(console_lines=40)
        self.agent = FakeAgentState()
        self.calls: list[str] = []
        self.settles: list[float] = []  # the settle of each wait for running containers
        self.fail: dict[str, HyperError] = {}
        self.guest: dict[str, dict[str, Any]] = {}
        self.digests: dict[str, str] = {}
        self.pulls: list[tuple[str, Any]] = []
        self.prepare_error: Optional[HyperError] = None
        self.clock = FakeClock()
        self.net_log: list[str] = []
        self.ports = FakePorts(self.net_log)
        self.net_fail: Optional[HyperError] = None
        self.self_boot = False  # these tests drive the guest over the agent; test_selfboot.py covers the config disk

    def deps(self) -> PodSession:
        return PodSession(
            open_client=lambda uri: self.client,  # type: ignore[arg-type,return-value]
            make_images=lambda root: FakeImages(root, self),
            make_transport=lambda dom, name: FakeTransport(dom, self.agent),
            make_guest_pod=lambda agent: FakeGuestPod(self.calls, self.fail, self.guest, self.settles),
            clock=self.clock,
            sleep=self.clock.sleep,
            make_network=lambda client: FakePodNetwork(client, self.net_log, self.ports, fail=self.net_fail),
            self_boot=self.self_boot,
        )

    def params(self, **kwargs: Any) -> dict[str, Any]:
        base: dict[str, Any] = {"name": "pe-test-1", "root": str(self.root), "containers": [WEB, SLEEPER]}
        base.update(kwargs)
        return base

    def run(self, check_mode: bool = False, diff: bool = True, **kwargs: Any) -> dict[str, Any]:
        return ensure_pod(self.params(**kwargs), check_mode, diff, self.deps())

    def info(self, **params: Any) -> dict[str, Any]:
        return pod_info(params, False, self.deps())

    def pods(self) -> list[FakeDomain]:
        return self.client.live()


WEB = {"name": "web", "image": "docker://busybox:1.36", "command": ["httpd", "-f", "-p", "8080"]}
SLEEPER = {"name": "sleeper", "image": "docker://busybox:1.36", "command": ["sleep", "3600"], "stop_timeout": 5}


@pytest.fixture
def h(tmp_path: Path) -> Harness:
    (tmp_path / "host.json").write_text('{"accelerator": "tcg", "format": 1}')
    image = tmp_path / "images" / "default"
    image.mkdir(parents=True)
    (image / "vmlinuz").write_bytes(b"kernel")
    (image / "initrd.img").write_bytes(b"initrd")
    (image / "manifest.json").write_text(json.dumps({"kernel_args": "console=ttyS0 quiet"}))
    (tmp_path / "run").mkdir()
    return Harness(tmp_path)


# -- tests -----------------------------------------------------------------------------------------


def test_create_and_start(h: Harness) -> None:
    result = h.run()
    assert result["changed"] is True
    assert result["actions"] == ["create", "start"]
    (dom,) = h.pods()
    assert re.fullmatch(r"hyper-[0-9a-f]{8}", dom.vm_name)
    assert dom.title == "pe-test-1" and dom.active and dom.memory == 128
    assert dom.cmdline == "console=ttyS0 quiet hyper.hostname=pe-test-1 hyper.log_size=10485760"
    assert dom.console == str(h.root / "run" / f"{dom.vm_name}.console.log")
    assert dom.serials == ["hyper-img-1111111111", "hyper-scratch"]  # one disk for the image both containers share, then the scratch disk
    meta = dom.meta
    assert meta["name"] == "pe-test-1" and meta["spec_hash"].startswith("sha256:")
    assert [c["name"] for c in meta["spec"]["containers"]] == ["web", "sleeper"]
    assert meta["spec"]["guest"] == {
        "image": "default",
        "kernel": str(h.root / "images" / "default" / "vmlinuz"),
        "initrd": str(h.root / "images" / "default" / "initrd.img"),
        "initrd_sha256": hashlib.sha256(b"initrd").hexdigest(),
    }
    assert h.calls == ["digests check_mode=False", "prepare", "write web", "start web", "write sleeper", "start sleeper", "wait web,sleeper"]
    pod = result["pod"]
    assert (pod["name"], pod["vm_id"], pod["uuid"], pod["state"], pod["memory"], pod["vcpus"]) == ("pe-test-1", dom.vm_name, dom.uuid, "running", 128, 1)
    assert [(c["name"], c["state"], c["pid"]) for c in pod["containers"]] == [("web", "running", 100), ("sleeper", "running", 101)]
    assert result["diff"]["before"] == {"state": "absent"}
    assert result["diff"]["after"]["state"] == "running"


def test_a_rebuilt_guest_image_recreates_only_when_guest_image_is_given(h: Harness) -> None:
    h.run()
    (h.root / "images" / "default" / "initrd.img").write_bytes(b"initrd, rebuilt")
    assert h.run()["changed"] is False
    result = h.run(guest_image="default")
    assert result["actions"] == ["recreate", "start"]
    assert h.pods()[0].meta["spec"]["guest"]["initrd_sha256"] == hashlib.sha256(b"initrd, rebuilt").hexdigest()


def test_same_again_is_not_changed(h: Harness) -> None:
    h.run()
    h.calls.clear()
    result = h.run()
    assert (result["changed"], result["actions"]) == (False, [])
    assert len(h.pods()) == 1
    assert h.calls == ["digests check_mode=False"]
    assert result["pod"]["state"] == "running"
    assert result["diff"]["before"] == result["diff"]["after"]


def test_check_mode_creates_nothing_and_pulls_nothing(h: Harness) -> None:
    result = h.run(check_mode=True)
    assert (result["changed"], result["actions"]) == (True, ["create", "start"])
    assert h.pods() == [] and h.client.log == []
    assert h.calls == ["digests check_mode=True"]
    assert result["pod"]["vm_id"] is None and result["pod"]["state"] == "running"
    assert os.listdir(h.root / "run") == []


def test_memory_change_recreates_with_a_diff(h: Harness) -> None:
    h.run()
    old = h.pods()[0]
    h.calls.clear()
    check = h.run(check_mode=True, memory=256)
    assert check["actions"] == ["recreate", "start"] and h.pods() == [old]
    result = h.run(memory=256)
    assert result["actions"] == ["recreate", "start"]
    (new,) = h.pods()
    assert new.vm_name != old.vm_name and new.memory == 256
    assert not old.defined and not os.path.exists(old.console)
    assert result["diff"]["before"]["memory"] == 128 and result["diff"]["after"]["memory"] == 256
    assert result["pod"]["vm_id"] == new.vm_name
    # The old VM was stopped gracefully before it went.
    assert "stop_many web 10, sleeper 5" in h.calls


def test_options_not_given_are_not_compared(h: Harness) -> None:
    h.run(memory=256, labels={"a": "1"})
    result = h.run(containers=None)
    assert (result["changed"], result["pod"]["memory"], result["pod"]["labels"]) == (False, 256, {"a": "1"})


def test_env_values_never_reach_the_diff(h: Harness) -> None:
    web = {**WEB, "env": {"TOKEN": "first-secret", "MODE": "quiet"}}
    created = h.run(containers=[web, SLEEPER])
    assert created["diff"]["after"]["containers"][0]["env"] == {"TOKEN": "********", "MODE": "********"}
    rotated = h.run(containers=[{**web, "env": {"TOKEN": "second-secret", "MODE": "quiet"}}, SLEEPER])
    assert rotated["actions"] == ["recreate", "start"]
    assert rotated["diff"]["before"]["containers"][0]["env"] == {"TOKEN": "********", "MODE": "********"}
    assert rotated["diff"]["after"]["containers"][0]["env"] == {"TOKEN": "******** (changed)", "MODE": "********"}
    # The metadata keeps a keyed digest only; the clear value is in the VM's root-only env.json (pod/secrets.py).
    (dom,) = h.pods()
    assert dom.meta["spec"]["containers"][0]["env"]["TOKEN"].startswith("hmac-sha256:")
    assert "second-secret" not in json.dumps(dom.meta)
    assert json.loads((h.root / "pods" / dom.vm_name / "env.json").read_text())["web"]["TOKEN"] == "second-secret"
    removed = h.run(state="absent", containers=None)  # no env given: Ansible's no_log could not mask these
    assert "secret" not in json.dumps([created, rotated, removed])


def test_labels_are_updated_in_place(h: Harness) -> None:
    h.run(labels={"team": "a"})
    dom = h.pods()[0]
    result = h.run(labels={"team": "b"})
    assert result["actions"] == ["update_labels"]
    assert h.pods() == [dom] and dom.meta["spec"]["labels"] == {"team": "b"}
    assert result["pod"]["labels"] == {"team": "b"}


def test_stop_then_start(h: Harness) -> None:
    h.run()
    dom = h.pods()[0]
    h.calls.clear()
    stopped = h.run(state="stopped")
    assert stopped["actions"] == ["stop"]
    # All containers in one stop_many (the guest stops them in parallel), then sync, then destroy.
    assert h.calls[-1] == "stop_many web 10, sleeper 5"
    assert not any(c.startswith("stop ") for c in h.calls)
    assert h.agent.execs == [["sync"]]
    assert "guest-shutdown" not in h.agent.requests
    assert not dom.active and dom.defined
    assert h.client.log[-1] == f"destroy {dom.vm_name}"
    assert list(stopped["timings"]) == ["containers_stopped", "synced", "destroyed"]
    assert stopped["pod"]["state"] == "stopped"
    assert [c["state"] for c in stopped["pod"]["containers"]] == ["stopped", "stopped"]
    assert h.run(state="stopped")["changed"] is False
    h.calls.clear()
    started = h.run(state="started")
    assert started["actions"] == ["start"]
    assert h.calls == ["digests check_mode=False", "prepare", "write web", "start web", "write sleeper", "start sleeper", "wait web,sleeper"]
    assert h.pods() == [dom] and dom.active


def test_the_pod_stop_timeout_caps_each_container_stop_timeout(h: Harness) -> None:
    h.run()
    h.run(state="stopped", stop_timeout=3)
    assert h.calls[-1] == "stop_many web 3, sleeper 3"


def test_a_sync_that_hangs_does_not_hold_up_the_stop(h: Harness) -> None:
    h.run()
    dom = h.pods()[0]
    h.agent.sync_works = False
    before = h.clock.now
    result = h.run(state="stopped")
    assert not dom.active and h.client.log[-1] == f"destroy {dom.vm_name}"
    assert h.agent.execs == [["sync"]]  # not killed: a sync in D state would not die anyway
    assert "synced" not in result["timings"]
    assert h.clock.now - before == pytest.approx(3.0)  # SYNC_TIMEOUT


def test_a_container_that_will_not_stop_still_gets_sync_and_destroy(h: Harness) -> None:
    h.run()
    dom = h.pods()[0]
    h.fail["stop_many"] = ContainerError("web", "stop failed in the VM: crun kill: no such process")
    result = h.run(state="stopped")
    assert result["changed"] is True and not dom.active
    assert h.agent.execs == [["sync"]]  # the containers that did stop keep what they wrote
    assert h.client.log[-1] == f"destroy {dom.vm_name}"


def test_an_agent_lost_during_the_stop_means_destroy_without_sync(h: Harness) -> None:
    h.run()
    dom = h.pods()[0]
    h.fail["stop_many"] = AgentTimeout("hyper-x: guest agent is not available for now")
    h.run(state="stopped")
    assert h.agent.execs == [] and h.client.log[-1] == f"destroy {dom.vm_name}"


def test_stop_destroys_when_the_agent_is_gone(h: Harness) -> None:
    h.run()
    dom = h.pods()[0]
    h.agent.up = False
    h.run(state="stopped")
    assert not dom.active and f"destroy {dom.vm_name}" in h.client.log
    assert not any(c.startswith("stop") for c in h.calls)


def test_restarted_restarts_every_time(h: Harness) -> None:
    h.run()
    for _attempt in range(2):
        result = h.run(state="restarted")
        assert (result["changed"], result["actions"]) == (True, ["restart"])
    assert len(h.pods()) == 1 and h.pods()[0].active


def test_present_defines_without_starting(h: Harness) -> None:
    result = h.run(state="present")
    assert result["actions"] == ["create"]
    (dom,) = h.pods()
    assert not dom.active and not any(c.startswith("write") for c in h.calls)
    assert result["pod"]["state"] == "stopped"


def test_absent_removes_the_vm_and_its_files_only(h: Harness) -> None:
    h.run()
    dom = h.pods()[0]
    result = h.run(state="absent", containers=None)
    assert result["actions"] == ["remove"] and result["pod"] == {}
    assert h.pods() == [] and not os.path.exists(dom.console)
    assert not os.path.exists(h.root / "scratch" / f"{dom.vm_name}.raw")  # the scratch disk goes with the VM
    assert result["diff"]["after"] == {"state": "absent"}
    assert os.path.exists(h.root / "images" / "default" / "initrd.img")
    assert h.run(state="absent")["changed"] is False


def test_container_that_exits_at_once_leaves_nothing(h: Harness) -> None:
    h.fail["wait"] = ContainerError("web", "exited with code 1 while starting", ["httpd: bind: Address in use"])
    with pytest.raises(PodError) as err:
        h.run()
    message = err.value.message
    assert "pod pe-test-1" in message and "waiting for the containers to run" in message and "container web: exited" in message
    assert "httpd: bind: Address in use" in message
    assert err.value.details["container"] == "web" and err.value.details["log_tail"] == ["httpd: bind: Address in use"]
    assert h.pods() == [] and os.listdir(h.root / "run") == []


def test_container_start_failure_names_it_with_its_log(h: Harness) -> None:
    h.fail["start sleeper"] = HyperError("hyper-container start sleeper: no disk with serial hyper-img-1111111111")
    with pytest.raises(PodError) as err:
        h.run()
    assert "starting the container sleeper failed" in err.value.message
    assert "log of sleeper" in err.value.message
    assert h.pods() == []


def test_agent_that_never_answers_fails_with_the_console_tail(h: Harness) -> None:
    h.agent.up = False
    with pytest.raises(PodError) as err:
        h.run(wait_timeout=5)
    assert "waiting for the guest agent failed" in err.value.message
    assert "console line 39" in err.value.message
    assert err.value.details["console_tail"][-1] == "console line 39"
    assert h.clock.now - 1000.0 < 10
    assert h.pods() == [] and os.listdir(h.root / "run") == []


def test_a_kernel_panic_is_named_in_the_message(h: Harness) -> None:
    h.agent.up = False
    h.client.console_lines = 0
    original = h.client.start

    def start_and_panic(dom: FakeDomain) -> None:
        original(dom)
        with open(dom.console, "w", encoding="utf-8") as handle:
            handle.write("[    1.4] Kernel panic - not syncing: VFS: Unable to mount root fs\n")
            handle.writelines(f"[    1.5] trace line {n}\n" for n in range(30))
        dom.active = False

    h.client.start = start_and_panic  # type: ignore[method-assign]
    with pytest.raises(PodError) as err:
        h.run()
    assert "the guest kernel panicked: [    1.4] Kernel panic - not syncing: VFS: Unable to mount root fs" in err.value.message
    assert h.pods() == []


def test_failure_to_start_the_vm_leaves_nothing(h: Harness) -> None:
    h.client.start_error = LibvirtFailure("starting domain: Cannot access storage file")
    with pytest.raises(PodError, match="starting the VM failed: starting domain: Cannot access storage file"):
        h.run()
    assert h.pods() == [] and os.listdir(h.root / "scratch") == []


def test_the_scratch_disk_and_log_size(h: Harness) -> None:
    h.run(scratch_size="256M", log_size="2M")
    (dom,) = h.pods()
    path = h.root / "scratch" / f"{dom.vm_name}.raw"
    assert os.stat(path).st_size == 256 << 20 and dom.serials[-1] == "hyper-scratch"
    assert str(dom.cmdline).endswith(" hyper.log_size=2097152")
    assert dom.meta["spec"]["scratch_size"] == 256 << 20 and dom.meta["spec"]["log_size"] == 2 << 20
    assert h.run(scratch_size="256M", log_size="2M")["changed"] is False
    assert h.run()["changed"] is False  # not given: not compared
    result = h.run(scratch_size="0")
    assert result["actions"] == ["recreate", "start"]
    (new,) = h.pods()
    assert "hyper-scratch" not in new.serials and not path.exists() and os.listdir(h.root / "scratch") == []


@pytest.mark.parametrize(
    ("option", "value", "needle"),
    [("scratch_size", "10M", "between 64M and 16T"), ("log_size", "2G", "between 1M and 1G"), ("scratch_size", "lots", "such as 512M")],
)
def test_a_bad_scratch_or_log_size_changes_nothing(h: Harness, option: str, value: str, needle: str) -> None:
    with pytest.raises(SpecError, match=f"option {option}='{value}': .*{needle}"):
        h.run(False, True, **{option: value})
    assert h.pods() == [] and not (h.root / "scratch").exists()


def hold_every_boot_slot(h: Harness, queue_timeout: float) -> Any:
    """host.json with one boot slot, held by a boot of another pod (another task)."""
    (h.root / "host.json").write_text(json.dumps({"accelerator": "tcg", "format": 1, "boot_slots": 1, "boot_queue_timeout": queue_timeout}))
    other = BootSlots.for_root(str(h.root)).hold("pod other")
    other.__enter__()
    return other


def test_a_boot_that_gets_no_slot_in_time_leaves_nothing(h: Harness) -> None:
    other = hold_every_boot_slot(h, 5)
    try:
        with pytest.raises(BootQueueTimeout, match="waited 5 s for a boot slot, and all 1 of the host's boot slots stayed busy"):
            h.run()
    finally:
        other.__exit__(None, None, None)
    assert h.pods() == [] and os.listdir(h.root / "run") == []
    assert h.calls == ["digests check_mode=False", "prepare"]  # no container was written
    assert sum(h.clock.sleeps) >= 5  # it queued for the slot, on the harness clock


def test_a_boot_of_an_existing_pod_that_gets_no_slot_keeps_its_definition(h: Harness) -> None:
    h.run(state="present")
    dom = h.pods()[0]
    other = hold_every_boot_slot(h, 0)
    try:
        with pytest.raises(BootQueueTimeout):
            h.run()
    finally:
        other.__exit__(None, None, None)
    assert h.pods() == [dom] and not dom.active
    assert h.run()["actions"] == ["start"]  # the slot is free again


def test_the_wait_for_a_boot_slot_is_in_the_timings(h: Harness) -> None:
    deps = h.deps()
    ensure_pod(h.params(name="pe-test-2"), False, False, deps)
    assert deps.timings["boot_slot_wait"] == 0.0 and "containers_running" in deps.timings


def test_image_failure_happens_before_libvirt_hears_of_the_pod(h: Harness) -> None:
    h.prepare_error = ImageError("cannot unpack image 'docker://busybox:1.36'")
    with pytest.raises(ImageError):
        h.run()
    assert h.client.log == []


def test_image_failure_on_recreate_keeps_the_old_pod(h: Harness) -> None:
    h.run()
    old = h.pods()[0]
    h.prepare_error = ImageError("cannot unpack")
    with pytest.raises(ImageError):
        h.run(memory=256)
    assert h.pods() == [old] and old.active


def test_failed_start_of_an_existing_pod_keeps_its_definition(h: Harness) -> None:
    h.run(state="present")
    dom = h.pods()[0]
    h.fail["wait"] = ContainerError("web", "exited with code 1")
    with pytest.raises(PodError):
        h.run()
    assert h.pods() == [dom] and not dom.active


def test_missing_guest_image_is_an_error_before_anything(h: Harness) -> None:
    with pytest.raises(ImageError, match="guest image 'other' not found"):
        h.run(guest_image="other")
    assert h.client.log == []


def test_two_vms_with_one_pod_name_are_an_error_naming_both(h: Harness) -> None:
    h.run()
    first = h.pods()[0]
    twin = FakeDomain(first.xml.replace(first.vm_name, "hyper-deadbeef"))
    h.client.domains.append(twin)
    with pytest.raises(LibvirtFailure) as err:
        h.run()
    assert first.vm_name in err.value.message and "hyper-deadbeef" in err.value.message


def test_a_new_image_digest_recreates(h: Harness) -> None:
    h.run()
    old = h.pods()[0]
    h.digests["docker://busybox:1.36"] = "sha256:" + "2" * 64
    result = h.run()
    assert result["actions"] == ["recreate", "start"]
    assert h.pods()[0].serials == ["hyper-img-2222222222", "hyper-scratch"] and not old.defined


def test_info_filters_and_reports_containers_and_logs(h: Harness) -> None:
    h.run(labels={"tier": "web"})
    h.run(name="pe-test-2", labels={"tier": "db"}, containers=[], state="present")
    everything = h.info()
    assert [p["name"] for p in everything["pods"]] == ["pe-test-1", "pe-test-2"] and "exists" not in everything
    assert everything["changed"] is False
    web = h.info(labels={"tier": "web"})["pods"]
    assert [p["name"] for p in web] == ["pe-test-1"]
    one = h.info(name="pe-test-1", logs=5)
    assert one["exists"] is True
    assert one["pods"][0]["containers"][0]["logs"] == ["log of web", "line 2"]
    assert "logs web 5" in h.calls
    assert h.info(name="pe-test-3") == {"changed": False, "pods": [], "exists": False}


def test_info_when_the_guest_does_not_answer(h: Harness) -> None:
    h.run()
    h.fail["status"] = AgentTimeout("guest agent is not available for now")
    (pod,) = h.info(name="pe-test-1")["pods"]
    assert pod["state"] == "running"
    assert {c["state"] for c in pod["containers"]} == {"unknown"}


# -- wait_healthy (pod/health.py) ----------------------------------------------------------------------


def test_wait_healthy_fails_with_the_checks_output_and_leaves_the_pod_running(h: Harness) -> None:
    checked = [{**WEB, "healthcheck": {"test": ["CMD", "wget", "-q", "localhost:8080"], "interval": 1}}, SLEEPER]
    with pytest.raises(HyperError) as failed:
        h.run(containers=checked, wait_healthy=True, wait_healthy_timeout=5)
    assert "container web: did not become healthy within 5s; the check has not finished once yet" in failed.value.message
    assert failed.value.details["step"] == "waiting for the containers to be healthy"
    (dom,) = h.pods()
    assert dom.active, "the pod is left running, to be looked at"
    bad = {"status": "unhealthy", "failing_streak": 3, "log": [{"exit_code": 1, "duration": 0.2, "age": 1.0, "output": "wget: can't connect\n"}]}
    h.guest["web"]["health"] = bad
    with pytest.raises(HyperError, match=r"container web: is unhealthy \(3 failed checks in a row\); last check: exit code 1, output:\nwget: can't"):
        h.run(containers=checked, wait_healthy=True)
    h.guest["web"]["health"] = {**bad, "status": "healthy", "failing_streak": 0}
    result = h.run(containers=checked, wait_healthy=True)
    assert result["changed"] is False
    web = result["pod"]["containers"][0]
    assert web["health"]["status"] == "healthy" and web["healthcheck"]["test"] == ["wget", "-q", "localhost:8080"]
    assert result["pod"]["containers"][1]["health"] is None
    # Without wait_healthy, or in check mode, nobody waits.
    h.guest["web"]["health"] = bad
    assert h.run(containers=checked)["changed"] is False
    assert h.run(check_mode=True, containers=checked, wait_healthy=True)["changed"] is False
