# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Guest reboot loops (hostd/reboots.py): counted on a fake host clock, stopped, restarted through the back-off, then left stopped."""

from __future__ import annotations

from typing import Any, Optional

import pytest

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import LibvirtFailure
from ansible_collections.hyper.pods.plugins.module_utils._hyper.hostd.crashes import keeps_crashing, summarise
from ansible_collections.hyper.pods.plugins.module_utils._hyper.hostd.journal import read_events
from ansible_collections.hyper.pods.plugins.module_utils._hyper.hostd.reboots import (
    MAX_LOOP_RESTARTS,
    REBOOT_LOOP_COUNT,
    REBOOT_LOOP_WINDOW,
    REBOOT_REPEAT,
    RebootCounter,
    decide_loop,
)
from ansible_collections.hyper.pods.plugins.module_utils._hyper.hostd.service import REBOOTED, STARTED, STOPPED, HostService
from ansible_collections.hyper.pods.plugins.module_utils._hyper.hostd.state import write_desired
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.store import CurrentPod

VM = "hyper-0000000b"
DESTROYED = 1

# -- the counter ---------------------------------------------------------------------------------------


def test_repeats_of_one_reboot_count_once() -> None:
    counter = RebootCounter()
    assert [counter.rebooted(t) for t in (10.0, 10.04, 10.5, 10.0 + REBOOT_REPEAT)] == [1, 0, 0, 2]


def test_a_loop_is_count_reboots_within_the_window() -> None:
    counter = RebootCounter()
    for i in range(REBOOT_LOOP_COUNT - 1):
        counter.rebooted(100.0 + 4 * i)
        assert not counter.looping()
    assert counter.rebooted(100.0 + 4 * REBOOT_LOOP_COUNT) == REBOOT_LOOP_COUNT and counter.looping()
    counter.clear()
    assert not counter.looping() and counter.rebooted(200.0) == 1


def test_reboots_older_than_the_window_drop_out() -> None:
    counter = RebootCounter()
    spacing = REBOOT_LOOP_WINDOW / (REBOOT_LOOP_COUNT - 1)  # a reboot now and then, never COUNT within the window
    counts = [counter.rebooted(i * spacing) for i in range(3 * REBOOT_LOOP_COUNT)]
    assert max(counts) == REBOOT_LOOP_COUNT - 1 and not counter.looping()


@pytest.mark.parametrize(
    ("policy", "desired", "attempt", "restart", "gave_up", "words"),
    [
        ("always", "running", 1, True, False, "restart 1 of at most"),
        ("on-failure", "running", MAX_LOOP_RESTARTS, True, False, f"restart {MAX_LOOP_RESTARTS} of"),
        ("always", "running", MAX_LOOP_RESTARTS + 1, False, True, "left stopped"),
        ("never", "running", 1, False, False, "restart_policy is never"),
        ("always", "stopped", 1, False, False, "desired state is stopped"),
        ("always", "", 1, False, False, "desired state is unknown"),
    ],
)
def test_decide_loop(policy: str, desired: str, attempt: int, restart: bool, gave_up: bool, words: str) -> None:
    decision = decide_loop(policy, desired, attempt, 5)
    assert (decision.restart, decision.gave_up) == (restart, gave_up)
    assert words in decision.why and "rebooted 5 times within 120 s" in decision.why


# -- the host service ------------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeClient:
    def __init__(self, running: dict[str, bool], fail: bool = False) -> None:
        self.running = running
        self.fail = fail
        self.destroyed = 0

    def destroy(self, dom: Any) -> bool:
        if self.fail:
            raise LibvirtFailure("destroying domain: busy")
        was = self.running["value"]
        self.running["value"] = False
        self.destroyed += 1
        return was


def make(tmp_path: Any, policy: str, fail_destroy: bool = False) -> tuple[HostService, Clock, list[str], FakeClient]:
    clock = Clock()
    started: list[str] = []
    running = {"value": True}
    client = FakeClient(running, fail_destroy)

    def start_pod(name: str) -> None:
        started.append(name)
        running["value"] = True

    svc = HostService(str(tmp_path), "test:///default", start_pod=start_pod, clock=clock, check_pod=lambda _name: "busy")
    svc.client = client  # type: ignore[assignment]

    def lookup(vm_id: str) -> Optional[tuple[Any, CurrentPod]]:
        if vm_id != VM:
            return None
        return "dom", CurrentPod(VM, "u", {"name": "pod1", "restart_policy": policy}, "running" if running["value"] else "stopped", running["value"])

    svc._pod = lookup  # type: ignore[method-assign]  # pylint: disable=protected-access
    write_desired(str(tmp_path), VM, "running")
    return svc, clock, started, client


def loop(svc: HostService, clock: Clock, start: float, period: float = 4.0) -> float:
    """Reboot events of a guest that reboots every ``period`` s until the service stops it; the wall time after."""
    when = start
    for _i in range(REBOOT_LOOP_COUNT):
        svc.handle(VM, REBOOTED, 0, when)
        svc.handle(VM, REBOOTED, 0, when + 0.05)  # QEMU's second reset of the same reboot
        when += period
        clock.now += period
    return when


def events(tmp_path: Any) -> list[Any]:
    return read_events(str(tmp_path), "pod1")


def test_a_reboot_loop_is_stopped_and_restarted_through_the_back_off(tmp_path: Any) -> None:
    svc, clock, started, client = make(tmp_path, "always")
    svc.handle(VM, STARTED, 0, 1.0)
    loop(svc, clock, 2.0)
    assert client.destroyed == 1
    svc.handle(VM, STOPPED, DESTROYED, 22.0)  # libvirt's event of the destroy: already journaled, not "stopped"
    (crash,) = [e for e in events(tmp_path) if e["event"] == "crashed"]
    assert crash["reason"] == "reboot_loop" and crash["reboots"] == REBOOT_LOOP_COUNT and (crash["attempt"], crash["delay"]) == (1, 1.0)
    assert [e["reboots"] for e in events(tmp_path) if e["event"] == "rebooted"] == list(range(1, REBOOT_LOOP_COUNT + 1))
    assert [e["event"] for e in events(tmp_path)].count("stopped") == 0
    due, attempt, delay, _vm = svc.pending["pod1"]
    assert (attempt, delay) == (1, 1.0) and started == []  # the back-off's delay first
    clock.now = due
    svc.run_due()
    assert started == ["pod1"]
    assert events(tmp_path)[-1]["event"] == "restarted"


def test_after_the_most_restarts_the_vm_is_left_stopped(tmp_path: Any) -> None:
    svc, clock, started, client = make(tmp_path, "on-failure")
    when = 2.0
    for _round in range(MAX_LOOP_RESTARTS + 1):
        svc.handle(VM, STARTED, 0, when)
        when = loop(svc, clock, when + 1.0)
        svc.handle(VM, STOPPED, DESTROYED, when)
        for _tick in range(70):  # the back-off's delays: 1, 2, 4 s
            clock.now += 1.0
            svc.run_due()
    assert client.destroyed == MAX_LOOP_RESTARTS + 1
    assert started == ["pod1"] * MAX_LOOP_RESTARTS
    crashes = [e for e in events(tmp_path) if e["event"] == "crashed"]
    assert [e.get("attempt") for e in crashes] == [*range(1, MAX_LOOP_RESTARTS + 1), None]
    assert crashes[-1]["gave_up"] is True and "left stopped" in crashes[-1]["action"]
    assert svc.pending == {}
    # What hyper_pod's crash report makes of it: a pod that keeps crashing (a task on it fails, naming the loop).
    summary = summarise(events(tmp_path))
    assert summary is not None and summary["last_reason"] == "reboot_loop" and summary["restarts"] == MAX_LOOP_RESTARTS
    assert keeps_crashing(summary, float(crashes[-1]["time"]) + 1)


def test_a_stable_run_resets_the_count_of_restarts(tmp_path: Any) -> None:
    svc, clock, _started, _client = make(tmp_path, "always")
    svc.handle(VM, STARTED, 0, 1.0)
    loop(svc, clock, 2.0)
    clock.now += 10.0
    svc.run_due()
    svc.handle(VM, STARTED, 0, 40.0)
    clock.now += 600.0  # up for ten minutes: the back-off resets
    loop(svc, clock, 700.0)
    crashes = [e for e in events(tmp_path) if e["event"] == "crashed"]
    assert [e["attempt"] for e in crashes] == [1, 1]


@pytest.mark.parametrize(("policy", "desired"), [("never", "running"), ("always", "stopped")])
def test_a_loop_is_stopped_but_not_restarted_against_the_policy(tmp_path: Any, policy: str, desired: str) -> None:
    svc, clock, started, client = make(tmp_path, policy)
    write_desired(str(tmp_path), VM, desired)
    loop(svc, clock, 2.0)
    clock.now += 600.0
    svc.run_due()
    assert client.destroyed == 1 and started == []
    (crash,) = [e for e in events(tmp_path) if e["event"] == "crashed"]
    assert "attempt" not in crash and "not restarted" in crash["action"]


def test_reboots_now_and_then_are_no_loop(tmp_path: Any) -> None:
    svc, _clock, _started, client = make(tmp_path, "always")
    for i in range(12):
        svc.handle(VM, REBOOTED, 0, 2.0 + i * 30.0)
    assert client.destroyed == 0 and svc.pending == {}
    assert [e["event"] for e in events(tmp_path)] == ["rebooted"] * 12


def test_a_destroy_that_fails_is_logged_and_journals_nothing_more(tmp_path: Any) -> None:
    svc, clock, _started, _client = make(tmp_path, "always", fail_destroy=True)
    loop(svc, clock, 2.0)
    assert svc.pending == {} and svc.loop_stops == set()
    assert [e["event"] for e in events(tmp_path)] == ["rebooted"] * REBOOT_LOOP_COUNT
