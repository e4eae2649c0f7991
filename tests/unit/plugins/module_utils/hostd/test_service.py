# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""HostService without libvirt: lifecycle events → journal, scheduled restarts with back-off, pods left alone."""

from __future__ import annotations

from typing import Any, Optional

import pytest

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import HyperError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.hostd.journal import read_events
from ansible_collections.hyper.pods.plugins.module_utils._hyper.hostd.service import DEFINED, REBOOTED, STARTED, STOPPED, HostService
from ansible_collections.hyper.pods.plugins.module_utils._hyper.hostd.state import write_desired
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.store import CurrentPod

VM = "hyper-0000000a"
FAILED, SHUTDOWN, DESTROYED = 5, 0, 1


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(tmp_path: Any, spec: Optional[dict[str, Any]], fail: int = 0) -> tuple[HostService, Clock, list[str], dict[str, bool]]:
    clock = Clock()
    started: list[str] = []
    running = {"value": False}
    failures = {"left": fail}

    def start_pod(name: str) -> None:
        if failures["left"]:
            failures["left"] -= 1
            raise HyperError("the guest did not answer")
        started.append(name)
        running["value"] = True

    svc = HostService(str(tmp_path), "test:///default", start_pod=start_pod, clock=clock, check_pod=lambda _name: "busy")
    svc.client = object()  # type: ignore[assignment]

    def lookup(vm_id: str) -> Optional[tuple[Any, CurrentPod]]:
        if spec is None or vm_id != VM:
            return None
        return None, CurrentPod(VM, "u", spec, "running" if running["value"] else "stopped", running["value"])

    svc._pod = lookup  # type: ignore[method-assign]  # pylint: disable=protected-access
    return svc, clock, started, running


def test_a_killed_pod_is_restarted_after_its_delay(tmp_path: Any) -> None:
    svc, clock, started, _running = make(tmp_path, {"name": "pod1", "restart_policy": "always"})
    write_desired(str(tmp_path), VM, "running")
    svc.handle(VM, STARTED, 0, 1.0)
    svc.handle(VM, STOPPED, FAILED, 2.0)
    svc.run_due()
    assert started == []  # 1 s back-off first
    clock.now += 1.0
    svc.run_due()
    assert started == ["pod1"]
    events = read_events(str(tmp_path), "pod1")
    assert [e["event"] for e in events] == ["started", "crashed", "restarted"]
    assert (events[1]["reason"], events[1]["attempt"], events[1]["delay"]) == ("failed", 1, 1.0)
    assert events[2]["attempt"] == 1


def test_a_pod_that_keeps_failing_backs_off(tmp_path: Any) -> None:
    svc, clock, started, _running = make(tmp_path, {"name": "pod1", "restart_policy": "on-failure"}, fail=3)
    write_desired(str(tmp_path), VM, "running")
    svc.handle(VM, STOPPED, FAILED, 2.0)
    for _step in range(20):
        clock.now += 1.0
        svc.run_due()
    assert started == ["pod1"]  # after 1 + 2 + 4 + 8 s
    failed = [e for e in read_events(str(tmp_path), "pod1") if e["event"] == "restart_failed"]
    assert [(e["attempt"], e["next_delay"]) for e in failed] == [(1, 2.0), (2, 4.0), (3, 8.0)]


@pytest.mark.parametrize(
    ("spec", "desired", "reason", "kind"),
    [
        ({"name": "pod1", "restart_policy": "never"}, "running", FAILED, "crashed"),
        ({"name": "pod1", "restart_policy": "always"}, "stopped", FAILED, "crashed"),
        ({"name": "pod1", "restart_policy": "always"}, None, FAILED, "crashed"),
        ({"name": "pod1", "restart_policy": "on-failure"}, "running", SHUTDOWN, "stopped"),
        ({"name": "pod1", "restart_policy": "always"}, "running", DESTROYED, "stopped"),
    ],
)
def test_no_restart(tmp_path: Any, spec: dict[str, Any], desired: Optional[str], reason: int, kind: str) -> None:
    svc, clock, started, _running = make(tmp_path, spec)
    if desired:
        write_desired(str(tmp_path), VM, desired)
    svc.handle(VM, STOPPED, reason, 2.0)
    clock.now += 600
    svc.run_due()
    assert started == []
    assert [e["event"] for e in read_events(str(tmp_path), "pod1")] == [kind]


def test_pods_without_the_restart_metadata_are_left_alone(tmp_path: Any) -> None:
    svc, clock, started, _running = make(tmp_path, None)
    write_desired(str(tmp_path), VM, "running")
    for event, detail in ((DEFINED, 0), (STARTED, 0), (STOPPED, FAILED)):
        svc.handle(VM, event, detail, 2.0)
    clock.now += 600
    svc.run_due()
    assert started == []
    assert read_events(str(tmp_path), "pod1") == []


def test_a_restart_is_dropped_when_a_task_stopped_the_pod_meanwhile(tmp_path: Any) -> None:
    svc, clock, started, _running = make(tmp_path, {"name": "pod1", "restart_policy": "always"})
    write_desired(str(tmp_path), VM, "running")
    svc.handle(VM, STOPPED, FAILED, 2.0)
    write_desired(str(tmp_path), VM, "stopped")
    clock.now += 600
    svc.run_due()
    assert started == []
    assert svc.pending == {}


def test_a_guest_reboot_in_place_is_journaled_and_not_restarted(tmp_path: Any) -> None:
    svc, clock, started, _running = make(tmp_path, {"name": "pod1", "restart_policy": "always"})
    write_desired(str(tmp_path), VM, "running")
    svc.handle(VM, STARTED, 0, 1.0)
    svc.handle(VM, REBOOTED, 0, 2.0)
    svc.handle(VM, REBOOTED, 0, 2.04)  # QEMU resets more than once for one reboot: journaled once
    svc.handle(VM, REBOOTED, 0, 2.5)
    clock.now += 120.0
    svc.run_due()
    assert started == []  # the VM kept running: the guest brought the pod up again itself
    assert [e["event"] for e in read_events(str(tmp_path), "pod1")] == ["started", "rebooted"]


def test_two_reboots_apart_are_both_journaled(tmp_path: Any) -> None:
    svc, _clock, _started, _running = make(tmp_path, {"name": "pod1", "restart_policy": "never"})
    svc.handle(VM, REBOOTED, 0, 2.0)
    svc.handle(VM, REBOOTED, 0, 12.0)
    assert [e["time"] for e in read_events(str(tmp_path), "pod1")] == [2.0, 12.0]
