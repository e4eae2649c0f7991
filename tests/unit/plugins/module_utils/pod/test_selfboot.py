# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The host's side of a self-booting pod (pod/selfboot.py): the one ready answer, read as hostile input."""

from __future__ import annotations

import time
from typing import Any, Optional

import pytest

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import AgentTimeout, SpecError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.agent import ExecResult, ExecTimeout
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.selfboot import MAX_REASON, WAIT_POLL, guest_reason, wait_argv, wait_for_boot


def result(stderr: bytes) -> ExecResult:
    return ExecResult(1, 1, None, b"", stderr, False, False, 0.1)


def state(status: str, pid: Optional[int] = 10, code: Optional[int] = None, restarts: int = 0) -> dict[str, Any]:
    return {"status": status, "pid": pid, "exit_code": code, "restarts": restarts}


@pytest.mark.parametrize(
    ("stderr", "expected"),
    [
        (b"hyper-boot: mounting volume data failed: no disk\n", "mounting volume data failed: no disk"),
        (b"", "hyper-boot ended with exit code 1"),
        (b"evil\x1b[2J\x00line", "evil?[2J?line"),
        (b"\xff\xfe", "\ufffd\ufffd"),
    ],
)
def test_guest_reason(stderr: bytes, expected: str) -> None:
    assert guest_reason(result(stderr)) == expected


def test_guest_reason_is_bounded() -> None:
    assert len(guest_reason(result(b"x" * 10_000_000))) == MAX_REASON


def test_wait_argv() -> None:
    assert wait_argv(12.7, ["web", "db"]) == ["/usr/sbin/hyper-boot", "wait", "12", "web", "db"]
    assert wait_argv(0.2) == ["/usr/sbin/hyper-boot", "wait", "1"]
    with pytest.raises(SpecError):
        wait_argv(5, ["-rf"])


# -- the engine, with a config disk ------------------------------------------------------------------

import base64  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import stat  # noqa: E402
from pathlib import Path  # noqa: E402

from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.containers import PreparedContainer  # noqa: E402
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.settle import DEFAULT_SETTLE  # noqa: E402
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.boot import PodError  # noqa: E402
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.config_disk import config_path, read_archive, read_tar  # noqa: E402
from ansible_collections.hyper.pods.tests.unit.plugins.module_utils.pod import test_pod  # noqa: E402


class BootingTransport(test_pod.FakeTransport):
    """qemu-ga of a guest that brought its pod up: ``hyper-boot wait`` prints every container running (or ``answer``)."""

    answer: dict[str, Any] = {}
    names: list[str] = ["web", "sleeper"]

    def send(self, json_text: str, timeout: int) -> str:
        request = json.loads(json_text)
        if request["execute"] == "guest-exec-status" and self.state.execs and self.state.execs[-1][0] == "/usr/sbin/hyper-boot":
            names = self.names
            status = self.answer or {"rc": 0, "out": {n: {"status": "running", "pid": 10, "exit_code": None, "restarts": 0} for n in names}}
            reply: dict[str, Any] = {
                "exited": True,
                "exitcode": status["rc"],
                "out-data": base64.b64encode(json.dumps(status.get("out", {})).encode()).decode(),
            }
            if status.get("err"):
                reply["err-data"] = base64.b64encode(status["err"]).decode()
            self.state.requests.append("guest-exec-status")
            return json.dumps({"return": reply})
        return super().send(json_text, timeout)


class BootableImages(test_pod.FakeImages):
    """Runtime configs and container.json as the guest takes them (rootfs, an image serial)."""

    def prepare(self, pod: Any) -> Any:
        containers, disks = super().prepare(pod)
        ready = [PreparedContainer(c.name, {"root": {"path": "rootfs"}, "of": c.name}, {"serial": disks[0].serial}) for c in containers]
        return ready, disks


@pytest.fixture
def sb(tmp_path: Path) -> test_pod.Harness:
    (tmp_path / "host.json").write_text('{"accelerator": "tcg", "format": 1}')
    image = tmp_path / "images" / "default"
    image.mkdir(parents=True)
    (image / "vmlinuz").write_bytes(b"kernel")
    (image / "initrd.img").write_bytes(b"initrd")
    (image / "manifest.json").write_text(json.dumps({"kernel_args": "console=ttyS0 quiet"}))
    (tmp_path / "run").mkdir()
    harness = test_pod.Harness(tmp_path)
    harness.self_boot = True
    BootingTransport.answer = {}
    deps = harness.deps

    def booting() -> Any:
        session = deps()
        session.make_transport = lambda dom, name: BootingTransport(dom, harness.agent)
        session.make_images = lambda root: BootableImages(root, harness)
        return session

    harness.deps = booting  # type: ignore[method-assign]
    return harness


def test_create_boots_from_the_config_disk(sb: test_pod.Harness) -> None:
    web = {**test_pod.WEB, "env": {"TOKEN": "hunter2"}}
    result = sb.run(containers=[web, test_pod.SLEEPER])
    assert result["changed"] and result["actions"] == ["create", "start"]
    (dom,) = sb.pods()
    assert dom.serials[-1] == "hyper-config"
    # A guest reboot restarts the VM in place (it boots the pod again itself); a poweroff ends it.
    assert "<on_reboot>restart</on_reboot>" in dom.xml and "<on_poweroff>destroy</on_poweroff>" in dom.xml
    # The host wrote nothing into the guest and started nothing there: one wait for the pod's own boot.
    assert not [c for c in sb.calls if c.startswith(("write", "start"))]
    assert [e[:2] for e in sb.agent.execs if e[0] == "/usr/sbin/hyper-boot"] == [["/usr/sbin/hyper-boot", "wait"]]
    # The guest's wait names no container (it returns once the boot carried out its plan); the host's settle does.
    assert sb.agent.execs[-1][2:] == ["120"]
    assert "wait_settled web,sleeper" in sb.calls and sb.settles == [DEFAULT_SETTLE]
    path = config_path(str(sb.root), dom.vm_name)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    entries = {e.path: e.data for e in read_tar(read_archive(path))}
    assert entries["boot/plan"] == b"net 52:54:00:00:00:00 dhcp 10.88.0.1 1\nstart web\nstart sleeper\n"
    assert json.loads(entries["containers/web/config.json"]) == {"root": {"path": "rootfs"}, "of": "web"}
    assert json.loads(entries["containers/web/container.json"])["serial"] == dom.serials[0]
    assert "hunter2" not in json.dumps(dom.meta)
    assert sb.run(containers=[web, test_pod.SLEEPER])["changed"] is False  # sealed values compare equal


def test_a_start_of_a_stopped_pod_is_the_domain_start_and_one_wait(sb: test_pod.Harness) -> None:
    # What the host service's restart runs too (ensure_pod, state started, no containers in the task).
    web = {**test_pod.WEB, "env": {"TOKEN": "hunter2"}}
    sb.run(containers=[web, test_pod.SLEEPER])
    assert sb.run(containers=None, state="stopped")["actions"] == ["stop"]
    sb.calls.clear()
    del sb.agent.execs[:]
    started = sb.run(containers=None, state="started")
    assert started["actions"] == ["start"]
    assert not [c for c in sb.calls if c.startswith(("write", "start"))]  # nothing written or started over the agent
    assert [e[:2] for e in sb.agent.execs] == [["/usr/sbin/hyper-boot", "wait"]]
    (dom,) = sb.pods()
    # The disk was rebuilt from the stored spec with the clear value from the host's root-only copy.
    entries = {e.path: e.data for e in read_tar(read_archive(config_path(str(sb.root), dom.vm_name)))}
    assert entries["boot/plan"].endswith(b"start web\nstart sleeper\n")
    assert "hunter2" not in json.dumps(dom.meta)


def test_a_failed_boot_names_the_guest_reason_and_leaves_nothing(sb: test_pod.Harness) -> None:
    BootingTransport.answer = {"rc": 1, "err": b"hyper-boot: mounting volume data failed: no disk\n"}
    with pytest.raises(PodError, match="waiting for the pod's boot failed: mounting volume data failed: no disk"):
        sb.run()
    assert sb.pods() == []
    assert not list((sb.root / "pods").glob("*"))  # no config disk, no env.json left


def test_a_guest_that_panics_at_boot_fails_the_start_at_once(sb: test_pod.Harness) -> None:
    # With on_reboot=restart the VM stays active (the guest resets in place): the console's panic ends the wait.
    sb.agent.up = False
    original = sb.client.start

    def start_and_panic(dom: Any) -> None:
        original(dom)
        with open(dom.console, "w", encoding="utf-8") as handle:
            handle.write("[    1.4] Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)\n")

    sb.client.start = start_and_panic  # type: ignore[method-assign]
    started = time.monotonic()
    with pytest.raises(PodError) as err:
        sb.run()
    assert time.monotonic() - started < 30  # not the agent's whole timeout
    assert "waiting for the guest agent failed: the guest's kernel panicked before its agent answered" in err.value.message
    assert "the guest kernel panicked: [    1.4] Kernel panic - not syncing: VFS" in err.value.message
    assert sb.pods() == []


def test_a_container_that_exited_at_boot(sb: test_pod.Harness) -> None:
    BootingTransport.answer = {"rc": 0, "out": {"web": {"status": "exited", "pid": None, "exit_code": 2, "restarts": 0}, "sleeper": state("running")}}
    with pytest.raises(PodError, match="container web: exited with code 2") as err:
        sb.run()
    assert err.value.details["container"] == "web" and "log of web" in str(err.value)


# -- pods made before: env values in clear in the metadata, no env.json, no config disk -------------


def test_an_old_pod_is_still_managed_and_moves_its_values_out_of_the_metadata(tmp_path: Path) -> None:
    (tmp_path / "host.json").write_text('{"accelerator": "tcg", "format": 1}')
    image = tmp_path / "images" / "default"
    image.mkdir(parents=True)
    (image / "vmlinuz").write_bytes(b"kernel")
    (image / "initrd.img").write_bytes(b"initrd")
    (image / "manifest.json").write_text(json.dumps({"kernel_args": "console=ttyS0 quiet"}))
    (tmp_path / "run").mkdir()
    old = test_pod.Harness(tmp_path)  # self_boot False: booted over the agent, as older versions did
    web = {**test_pod.WEB, "env": {"TOKEN": "hunter2"}}
    old.run(containers=[web, test_pod.SLEEPER])
    (dom,) = old.pods()
    assert "<on_reboot>destroy</on_reboot>" in dom.xml  # its guest would come back empty from a reboot
    # What an older version stored: the clear value in the metadata, and no env.json.
    spec = dom.meta["spec"]
    spec["containers"][0]["env"] = {"TOKEN": "hunter2"}
    dom.meta = {**dom.meta, "spec": spec}
    (tmp_path / "pods" / dom.vm_name / "env.json").unlink()
    again = old.run(containers=[web, test_pod.SLEEPER])
    assert again["changed"] is False  # the same task: no change, although the stored form differs
    assert old.run(containers=[web, test_pod.SLEEPER], labels={"a": "b"})["actions"] == ["update_labels"]
    assert "hunter2" not in json.dumps(dom.meta)  # rewritten with digests at that change …
    assert json.loads((tmp_path / "pods" / dom.vm_name / "env.json").read_text()) == {"web": {"TOKEN": "hunter2"}}  # … kept root-only
    # A new VM without the containers in the task gets the value from the host's copy.
    recreated = old.run(containers=None, memory=256)
    assert recreated["actions"] == ["recreate", "start"]
    (new,) = old.pods()
    assert json.loads((tmp_path / "pods" / new.vm_name / "env.json").read_text()) == {"web": {"TOKEN": "hunter2"}}


# -- the host's wait for the guest's answer ----------------------------------------------------------


class WaitAgent:
    """spawn/poll/kill of GuestAgent: ``polls`` answers in order (None: still running, an exception: raised)."""

    name = "hyper-00000001"

    def __init__(self, polls: list[Any]) -> None:
        self.polls = polls
        self.killed: list[int] = []

    def spawn(self, argv: Any) -> int:
        return 7

    def poll(self, pid: int) -> Any:
        answer = self.polls.pop(0) if self.polls else None
        if isinstance(answer, Exception):
            raise answer
        return answer

    def kill(self, pid: int) -> bool:
        self.killed.append(pid)
        return True


DONE = ExecResult(pid=7, rc=0, signal=None, stdout=b"{}", stderr=b"", stdout_truncated=False, stderr_truncated=False, duration=0.0)


@pytest.mark.parametrize(
    ("polls", "sleeps"),
    [
        ([DONE], []),
        ([None, None, DONE], [WAIT_POLL, WAIT_POLL]),
        ([AgentTimeout("slow"), DONE], [WAIT_POLL]),  # a lost status answer is asked again
    ],
)
def test_the_wait_is_collected_every_poll_interval(polls: list[Any], sleeps: list[float]) -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    assert wait_for_boot(WaitAgent(polls), ["/usr/sbin/hyper-boot", "wait", "5"], 5.0, lambda: now[0], sleep) is DONE  # type: ignore[arg-type]
    assert slept == sleeps


def test_a_wait_that_never_returns_is_killed() -> None:
    now = [0.0]
    agent = WaitAgent([])

    def sleep(seconds: float) -> None:
        now[0] += seconds

    with pytest.raises(ExecTimeout, match="ran longer than 1s"):
        wait_for_boot(agent, ["/usr/sbin/hyper-boot"], 1.0, lambda: now[0], sleep)  # type: ignore[arg-type]
    assert agent.killed == [7]


# -- wait_settle -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("params", "settle"), [({}, DEFAULT_SETTLE), ({"wait_settle": 0}, 0.0), ({"wait_settle": 2.5}, 2.5)])
def test_the_start_waits_the_tasks_settle(sb: test_pod.Harness, params: dict[str, Any], settle: float) -> None:
    sb.run(containers=[test_pod.WEB, test_pod.SLEEPER], **params)
    assert sb.settles == [settle]


def test_without_wait_there_is_no_settle(sb: test_pod.Harness) -> None:
    sb.run(containers=[test_pod.WEB, test_pod.SLEEPER], wait=False)
    assert sb.settles == [] and not [c for c in sb.calls if c.startswith("wait")]


def test_a_bad_settle_fails_before_anything_is_made(sb: test_pod.Harness) -> None:
    with pytest.raises(SpecError, match="wait_settle"):
        sb.run(containers=[test_pod.WEB], wait_settle=-1)
    assert sb.pods() == []


def test_a_container_missing_from_the_guests_answer(sb: test_pod.Harness) -> None:
    BootingTransport.names = ["web"]
    try:
        with pytest.raises(PodError, match="container sleeper: is not in the guest: its config disk did not list it"):
            sb.run(containers=[test_pod.WEB, test_pod.SLEEPER])
    finally:
        BootingTransport.names = ["web", "sleeper"]
    assert sb.pods() == []
