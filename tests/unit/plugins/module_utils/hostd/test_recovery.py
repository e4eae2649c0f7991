# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The journal's bounds and removal, the removed pod's journal swept by the service, hyper_pod's crash report."""

from __future__ import annotations

import os
from typing import Any, Optional

import pytest

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import HyperError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.hostd import crashes, journal
from ansible_collections.hyper.pods.plugins.module_utils._hyper.hostd.adopt import BUSY, RESTART, RUNS, verdict
from ansible_collections.hyper.pods.plugins.module_utils._hyper.hostd.service import STARTED, STOPPED, UNDEFINED, HostService
from ansible_collections.hyper.pods.plugins.module_utils._hyper.hostd.state import write_desired
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.store import CurrentPod

VM = "hyper-0000000a"


# -- the journal ---------------------------------------------------------------------------


def test_journal_is_bounded_in_bytes(tmp_path: Any) -> None:
    root = str(tmp_path)
    for i in range(300):
        journal.record(root, "pod1", "restart_failed", now=float(i), error="e" * 400, action="a" * 400)
    size = os.path.getsize(journal.journal_path(root, "pod1"))
    assert size <= journal.MAX_BYTES
    events = journal.read_events(root, "pod1")
    assert events and events[-1]["time"] == 299.0
    assert [e["time"] for e in events] == sorted(e["time"] for e in events)


def test_a_line_of_many_long_fields_is_cut_to_parse_again(tmp_path: Any) -> None:
    root = str(tmp_path)
    fields = {f"f{i}": "x" * 1000 for i in range(12)}
    entry = journal.record(root, "pod1", "crashed", now=1.0, **fields)
    assert all(len(str(v)) <= journal.MAX_TEXT // 5 for k, v in entry.items() if k.startswith("f"))
    assert [e["event"] for e in journal.read_events(root, "pod1")] == ["crashed"]


def test_a_big_journal_is_read_from_its_end(tmp_path: Any) -> None:
    root = str(tmp_path)
    journal.record(root, "pod1", "created", now=1.0)
    with open(journal.journal_path(root, "pod1"), "a", encoding="utf-8") as handle:  # written by something else: no cut
        handle.write(("junk" * 100 + "\n") * 2000)
        handle.write('{"time": 5.0, "event": "started"}\n')
    assert [e["event"] for e in journal.read_events(root, "pod1")] == ["started"]


def test_the_journal_goes_with_the_pod(tmp_path: Any) -> None:
    root = str(tmp_path)
    journal.record(root, "pod1", "created", now=1.0)
    crashes.mark_seen(root, "pod1", 2.0)
    journal.remove_journal(root, "pod1")
    assert os.listdir(os.path.join(root, "hostd", "events")) == []
    journal.remove_journal(root, "pod1")  # again: no error
    assert crashes.last_seen(root, "pod1") == 0.0


def test_a_journal_that_cannot_be_read_is_an_error_that_says_so(tmp_path: Any) -> None:
    root = str(tmp_path)
    os.makedirs(journal.journal_path(root, "pod1"))  # a directory where the file should be: EISDIR, as EACCES would be
    with pytest.raises(HyperError, match=r"pod pod1: cannot read its events in .*pod1.jsonl: .*root-only"):
        journal.read_events(root, "pod1")


def test_the_journal_is_root_only(tmp_path: Any) -> None:
    root = str(tmp_path)
    journal.record(root, "pod1", "created", now=1.0)
    assert os.stat(journal.journal_path(root, "pod1")).st_mode & 0o777 == 0o600
    assert os.stat(os.path.join(root, "hostd")).st_mode & 0o777 == 0o700
    assert os.stat(os.path.join(root, "hostd", "events")).st_mode & 0o777 == 0o700


# -- the service sweeps the journal of a pod removed while it wrote ---------------------------


class FakeDomain:
    def __init__(self, name: str) -> None:
        self._name = name

    def name(self) -> str:
        return self._name


class FakeClient:
    def __init__(self) -> None:
        self.domains: list[str] = []

    def list_domains(self, prefix: str = "") -> list[FakeDomain]:
        return [FakeDomain(d) for d in self.domains if d.startswith(prefix)]


def service(tmp_path: Any, pods: dict[str, str]) -> tuple[HostService, FakeClient]:
    svc = HostService(str(tmp_path), "test:///default", start_pod=lambda _name: None, clock=lambda: 1000.0, check_pod=lambda _name: "busy")
    client = FakeClient()
    svc.client = client  # type: ignore[assignment]

    def lookup(vm_id: str) -> Optional[tuple[Any, CurrentPod]]:
        if vm_id not in pods or vm_id not in client.domains:
            return None
        return None, CurrentPod(vm_id, "u", {"name": pods[vm_id], "restart_policy": "always"}, "stopped", False)

    svc._pod = lookup  # type: ignore[method-assign]  # pylint: disable=protected-access
    return svc, client


def test_a_removed_pods_journal_written_again_is_swept(tmp_path: Any) -> None:
    root = str(tmp_path)
    svc, client = service(tmp_path, {VM: "pod1"})
    client.domains = [VM]
    svc.handle(VM, STOPPED, 1, 5.0)  # the removal's stop, handled while the domain was still there
    assert journal.read_events(root, "pod1")
    client.domains = []  # undefined, the journal removed by the task, written again by the stop above
    svc.handle(VM, UNDEFINED, 0, 6.0)
    svc.sweep_journals()
    assert not os.path.exists(journal.journal_path(root, "pod1")) or not journal.read_events(root, "pod1")
    assert svc.orphans == set()


def test_a_recreated_pod_keeps_its_journal(tmp_path: Any) -> None:
    root = str(tmp_path)
    new_vm = "hyper-0000000b"
    svc, client = service(tmp_path, {VM: "pod1", new_vm: "pod1"})
    client.domains = [VM]
    svc.handle(VM, STOPPED, 1, 5.0)
    client.domains = [new_vm]  # the pod's new VM
    svc.handle(VM, UNDEFINED, 0, 6.0)
    svc.sweep_journals()
    assert journal.read_events(root, "pod1")


def test_a_pod_held_by_a_task_is_swept_later(tmp_path: Any) -> None:
    from ansible_collections.hyper.pods.plugins.module_utils._hyper.host.locks import pod_lock  # pylint: disable=import-outside-toplevel

    root = str(tmp_path)
    svc, client = service(tmp_path, {VM: "pod1"})
    client.domains = [VM]
    svc.handle(VM, STOPPED, 1, 5.0)
    client.domains = []
    svc.handle(VM, UNDEFINED, 0, 6.0)
    with pod_lock(root, "pod1"):
        svc.sweep_journals()
        assert svc.orphans == {"pod1"} and journal.read_events(root, "pod1")
    svc.sweep_journals()
    assert svc.orphans == set() and not journal.read_events(root, "pod1")


# -- hyper_pod's crash report ----------------------------------------------------------------


def crash(t: float, reason: str = "crashed", attempt: Optional[int] = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"time": t, "event": "crashed", "reason": reason, "action": f"restart_policy always: the VM {reason}"}
    if attempt is not None:
        entry.update(attempt=attempt, delay=float(2 ** (attempt - 1)))
    return entry


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        pytest.param([], None, id="nothing"),
        pytest.param([{"time": 1.0, "event": "started"}, {"time": 2.0, "event": "stopped", "reason": "destroyed"}], None, id="no-crash"),
        pytest.param(
            [crash(1.0, "failed", 1), {"time": 3.0, "event": "restarted", "attempt": 1, "delay": 1.0}],
            {"count": 1, "reasons": ["failed"], "restart_attempts": 1, "restarts": 1, "restarts_failed": 0},
            id="killed-and-back",
        ),
        pytest.param(
            [
                crash(1.0, "failed", 1),
                {"time": 3.0, "event": "restart_failed", "attempt": 1, "error": "guest died\nmore", "next_attempt": 2},
                crash(4.0),
                {"time": 8.0, "event": "restart_failed", "attempt": 2, "error": "kernel panic", "next_attempt": 3},
                crash(9.0),
            ],
            {"count": 3, "reasons": ["failed", "crashed"], "restart_attempts": 2, "restarts": 0, "restarts_failed": 2, "last_error": "kernel panic"},
            id="crash-loop",
        ),
    ],
)
def test_summarise(events: list[dict[str, Any]], expected: Optional[dict[str, Any]]) -> None:
    summary = crashes.summarise(events)
    if expected is None:
        assert summary is None
        return
    assert summary is not None
    assert {k: summary[k] for k in expected} == expected
    assert summary["last"] == max(e["time"] for e in events if e["event"] == "crashed")


def test_crash_text_names_the_reason_and_the_attempts() -> None:
    summary = crashes.summarise([crash(1.0, "failed", 1), {"time": 3.0, "event": "restart_failed", "attempt": 1, "error": "no agent\nx"}, crash(4.0)])
    assert summary is not None
    text = crashes.crash_text("web", summary)
    assert "pod web crashed 2 times" in text and "failed, crashed" in text and "1 restart attempt, 1 failed (the last: no agent)" in text
    one = crashes.summarise([crash(1.0, "failed")])
    assert one is not None and "crashed once" in crashes.crash_text("web", one)


@pytest.mark.parametrize(
    ("count", "ago", "loop"),
    [(2, 1.0, False), (3, 1.0, True), (3, 119.0, True), (3, 121.0, False), (10, 5.0, True)],
)
def test_keeps_crashing(count: int, ago: float, loop: bool) -> None:
    summary = crashes.summarise([crash(float(i)) for i in range(count)])
    assert summary is not None
    assert crashes.keeps_crashing(summary, float(count - 1) + ago) is loop


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_task_reports_the_crashes_since_the_last_one_once(tmp_path: Any) -> None:
    root = str(tmp_path)
    params = {"name": "pod1", "root": root, "state": "started"}
    journal.record(root, "pod1", "crashed", now=100.0, reason="failed", attempt=1, delay=1.0, action="restart_policy always: the VM failed")
    journal.record(root, "pod1", "restarted", now=102.0, attempt=1, delay=1.0)
    clock = Clock(110.0)
    result = crashes.with_crash_report(params, False, lambda: {"changed": False, "actions": []}, clock)
    assert result["crashes"]["count"] == 1 and result["crashes"]["reasons"] == ["failed"]
    assert "libvirt's reason: failed" in result["warnings"][0] and "1 restart attempt" in result["warnings"][0]
    clock.now = 120.0
    assert "crashes" not in crashes.with_crash_report(params, False, lambda: {"changed": False}, clock)  # reported once


def test_check_mode_reports_but_keeps_the_mark(tmp_path: Any) -> None:
    root = str(tmp_path)
    params = {"name": "pod1", "root": root}
    journal.record(root, "pod1", "crashed", now=100.0, reason="crashed")
    for _run in range(2):
        assert crashes.with_crash_report(params, True, lambda: {"changed": False}, Clock(110.0))["crashes"]["count"] == 1


def test_a_failed_task_names_the_crash(tmp_path: Any) -> None:
    root = str(tmp_path)
    journal.record(root, "pod1", "crashed", now=100.0, reason="crashed", attempt=3, delay=4.0)

    def boot() -> dict[str, Any]:
        raise HyperError("pod pod1 (VM hyper-0000000a): waiting for the guest agent failed: the VM stopped", {"step": "waiting for the guest agent"})

    with pytest.raises(HyperError) as caught:
        crashes.with_crash_report({"name": "pod1", "root": root}, False, boot, Clock(110.0))
    assert "waiting for the guest agent failed" in caught.value.message and "crashed once since the last hyper_pod task" in caught.value.message
    assert caught.value.details["step"] == "waiting for the guest agent" and caught.value.details["crashes"]["count"] == 1


def test_a_failed_task_without_crashes_is_left_as_it_is(tmp_path: Any) -> None:
    err = HyperError("bad")

    def fail() -> dict[str, Any]:
        raise err

    with pytest.raises(HyperError) as caught:
        crashes.with_crash_report({"name": "pod1", "root": str(tmp_path)}, False, fail, Clock(1.0))
    assert caught.value is err


def test_a_pod_brought_back_since_its_crashes_does_not_fail_the_task() -> None:
    summary = crashes.summarise([crash(1.0), crash(2.0), crash(3.0), {"time": 4.0, "event": "restarted", "attempt": 3}])
    assert summary is not None and not crashes.keeps_crashing(summary, 5.0)


def test_a_pod_that_keeps_crashing_fails_the_task_unless_it_gets_a_new_vm(tmp_path: Any) -> None:
    root = str(tmp_path)
    for i in range(3):
        journal.record(root, "pod1", "crashed", now=100.0 + i, reason="crashed")
    with pytest.raises(HyperError, match=r"pod pod1 keeps crashing: pod pod1 crashed 3 times .*crashed"):
        crashes.with_crash_report({"name": "pod1", "root": root}, True, lambda: {"changed": True, "actions": ["start"]}, Clock(110.0))
    result = crashes.with_crash_report({"name": "pod1", "root": root}, False, lambda: {"changed": True, "actions": ["recreate", "start"]}, Clock(110.0))
    assert result["crashes"]["count"] == 3


def test_no_report_for_a_removal_or_a_bad_name(tmp_path: Any) -> None:
    root = str(tmp_path)
    journal.record(root, "pod1", "crashed", now=100.0, reason="crashed")
    assert crashes.with_crash_report({"name": "pod1", "root": root, "state": "absent"}, False, lambda: {"changed": True}, Clock(110.0)) == {"changed": True}
    assert crashes.with_crash_report({"name": "../x", "root": root}, False, lambda: {"ok": 1}, Clock(110.0)) == {"ok": 1}


# -- a pod that runs without a task having started it (libvirt's autostart) ---------------------


@pytest.mark.parametrize(
    ("status", "expired", "outcome"),
    [
        ({"web": {}, "db": {}}, False, RUNS),
        ({"web": {}, "db": {}, "other": {}}, True, RUNS),
        ({}, False, None),  # a guest that brings the pod up itself may not have written them yet
        ({"web": {}}, False, None),
        ({}, True, RESTART),  # a bare guest: started again, the start path hands the containers over
        ({"web": {}}, True, RESTART),
        (None, False, None),
        (None, True, BUSY),  # its agent never answered: left to its STOPPED event
    ],
)
def test_verdict(status: Optional[dict[str, Any]], expired: bool, outcome: Optional[str]) -> None:
    assert verdict(status, ["web", "db"], expired) == outcome


def adopting(tmp_path: Any, outcome: str, running: bool = True) -> tuple[HostService, list[str], list[str]]:
    checked: list[str] = []
    started: list[str] = []
    state = {"running": running}

    def check(name: str) -> str:
        checked.append(name)
        if outcome == RESTART:
            state["running"] = False  # check_running_pod destroyed the bare VM
        return outcome

    def start(name: str) -> None:
        started.append(name)
        state["running"] = True

    svc = HostService(str(tmp_path), "test:///default", start_pod=start, clock=lambda: 1000.0, check_pod=check)
    client = FakeClient()
    client.domains = [VM]
    svc.client = client  # type: ignore[assignment]

    def lookup(vm_id: str) -> Optional[tuple[Any, CurrentPod]]:
        if vm_id != VM:
            return None
        return None, CurrentPod(VM, "u", {"name": "pod1", "restart_policy": "always"}, "running" if state["running"] else "stopped", state["running"])

    svc._pod = lookup  # type: ignore[method-assign]  # pylint: disable=protected-access
    return svc, checked, started


def test_an_autostarted_pod_that_runs_gets_its_port_rules(tmp_path: Any) -> None:
    write_desired(str(tmp_path), VM, "running")
    svc, checked, started = adopting(tmp_path, RUNS)
    svc.reconcile()
    assert checked == ["pod1"] and started == ["pod1"]  # ensure_pod on a running pod: the port rules rebuilt
    assert [e["event"] for e in journal.read_events(str(tmp_path), "pod1")] == []


def test_an_autostarted_bare_guest_is_started_again(tmp_path: Any) -> None:
    write_desired(str(tmp_path), VM, "running")
    svc, checked, started = adopting(tmp_path, RESTART)
    svc.handle(VM, STARTED, 0, 5.0)  # libvirt's autostart, seen as it happens
    assert checked == ["pod1"] and started == ["pod1"]
    restarted = [e for e in journal.read_events(str(tmp_path), "pod1") if e["event"] == "restarted"]
    assert len(restarted) == 1 and restarted[0]["why"] == "adopt"


def test_a_pod_stopped_by_a_task_or_started_by_the_service_is_not_taken_over(tmp_path: Any) -> None:
    root = str(tmp_path)
    write_desired(root, VM, "stopped")
    svc, checked, _started = adopting(tmp_path, RUNS)
    svc.reconcile()
    svc.handle(VM, STARTED, 0, 5.0)  # virsh start outside a task: the desired state is stopped
    assert checked == []
    write_desired(root, VM, "running")
    svc.own_starts["pod1"] = (4.0, 6.0)  # the service's own restart
    svc.handle(VM, STARTED, 0, 5.0)
    assert checked == []
    svc.handle(VM, STARTED, 0, 7.0)
    assert checked == ["pod1"]


def test_a_busy_pod_is_left_to_its_task(tmp_path: Any) -> None:
    write_desired(str(tmp_path), VM, "running")
    svc, checked, started = adopting(tmp_path, BUSY)
    svc.reconcile()
    assert checked == ["pod1"] and started == []


class OffDomain:
    def __init__(self, reason: int) -> None:
        self.reason = reason

    def state(self) -> list[int]:
        return [5, self.reason]  # VIR_DOMAIN_SHUTOFF, its reason


@pytest.mark.parametrize(
    ("policy", "reason", "restarted"),
    [
        ("always", 6, True),  # QEMU killed while the service was down: replayed at its start
        ("on-failure", 3, True),  # a guest panic
        ("on-failure", 1, False),  # a clean guest poweroff
        ("always", 1, True),
        ("never", 6, False),
        ("always", 2, False),  # destroyed on request
        ("always", 0, False),  # off since libvirtd started (a host reboot): libvirt's autostart decides
    ],
)
def test_reconcile_applies_the_policy_to_libvirts_shutoff_reason(tmp_path: Any, policy: str, reason: int, restarted: bool) -> None:
    root = str(tmp_path)
    write_desired(root, VM, "running")
    started: list[str] = []
    svc = HostService(root, "test:///default", start_pod=started.append, clock=lambda: 1000.0, check_pod=lambda _name: "busy")
    client = FakeClient()
    client.domains = [VM]
    svc.client = client  # type: ignore[assignment]
    state = {"running": False}

    def lookup(vm_id: str) -> Optional[tuple[Any, CurrentPod]]:
        return OffDomain(reason), CurrentPod(vm_id, "u", {"name": "pod1", "restart_policy": policy}, "stopped", state["running"])

    svc._pod = lookup  # type: ignore[method-assign]  # pylint: disable=protected-access
    svc.reconcile()
    assert started == (["pod1"] if restarted else [])
    missed = [e for e in journal.read_events(root, "pod1") if e.get("missed")]
    assert len(missed) == (1 if restarted else 0)


def test_a_guest_that_shuts_down_during_its_start_crashed(tmp_path: Any) -> None:
    from ansible_collections.hyper.pods.plugins.module_utils._hyper.host.locks import pod_lock  # pylint: disable=import-outside-toplevel

    root = str(tmp_path)
    write_desired(root, VM, "running")
    svc, client = service(tmp_path, {VM: "pod1"})
    client.domains = [VM]
    svc.own_starts["pod1"] = (10.0, 20.0)
    svc.handle(VM, STOPPED, 0, 15.0)  # reset during the service's own start: a panic at boot
    svc.handle(VM, STOPPED, 0, 30.0)  # a poweroff of a running guest
    with pod_lock(root, "pod1"):
        svc.handle(VM, STOPPED, 0, 40.0)  # during a task's start
        svc.handle(VM, STOPPED, 1, 41.0)  # the task's own destroy is no crash
    events = journal.read_events(root, "pod1")
    assert [(e["event"], e["reason"], e.get("during_start", False)) for e in events] == [
        ("crashed", "shutdown", True),
        ("stopped", "shutdown", False),
        ("crashed", "shutdown", True),
        ("stopped", "destroyed", False),
    ]
