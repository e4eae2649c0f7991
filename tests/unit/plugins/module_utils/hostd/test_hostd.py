# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The host service's pure parts: the restart decision, the back-off, the journal, the desired state, the stored options."""

from __future__ import annotations

import os
import stat
from typing import Any

import pytest

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import SpecError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.hostd import journal
from ansible_collections.hyper.pods.plugins.module_utils._hyper.hostd.backoff import Backoff, delay_for
from ansible_collections.hyper.pods.plugins.module_utils._hyper.hostd.info import check_since
from ansible_collections.hyper.pods.plugins.module_utils._hyper.hostd.policy import decide
from ansible_collections.hyper.pods.plugins.module_utils._hyper.hostd.state import forget_desired, read_desired, running_pid, write_desired
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.plan import plan_pod
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.spec import normalise_pod
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.store import CurrentPod
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.stored import StoredPod

# (policy, desired, libvirt reason) → (restart, journal kind)
DECISIONS = [
    ("always", "running", "failed", True, "crashed"),
    ("always", "running", "crashed", True, "crashed"),
    ("always", "running", "shutdown", True, "stopped"),
    ("always", "running", "destroyed", False, "stopped"),
    ("always", "stopped", "failed", False, "crashed"),
    ("always", "stopped", "shutdown", False, "stopped"),
    ("always", "unknown", "crashed", False, "crashed"),
    ("on-failure", "running", "failed", True, "crashed"),
    ("on-failure", "running", "crashed", True, "crashed"),
    ("on-failure", "running", "shutdown", False, "stopped"),
    ("on-failure", "running", "destroyed", False, "stopped"),
    ("on-failure", "stopped", "crashed", False, "crashed"),
    ("never", "running", "failed", False, "crashed"),
    ("never", "running", "crashed", False, "crashed"),
    ("never", "running", "shutdown", False, "stopped"),
    ("bogus", "running", "failed", False, "crashed"),
    ("always", "running", "saved", False, "stopped"),
    ("always", "running", "migrated", False, "stopped"),
]


@pytest.mark.parametrize(("policy", "desired", "reason", "restart", "kind"), DECISIONS)
def test_decide(policy: str, desired: str, reason: str, restart: bool, kind: str) -> None:
    decision = decide(policy, desired, reason)
    assert (decision.restart, decision.kind) == (restart, kind)
    assert decision.why


@pytest.mark.parametrize(("attempt", "delay"), [(1, 1.0), (2, 2.0), (3, 4.0), (6, 32.0), (7, 60.0), (100, 60.0), (10**6, 60.0)])
def test_delay_doubles_up_to_the_cap(attempt: int, delay: float) -> None:
    assert delay_for(attempt) == delay


def test_delay_refuses_attempt_zero() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        delay_for(0)


def test_backoff_doubles_while_the_pod_dies_soon_and_resets_after_a_stable_run() -> None:
    backoff = Backoff(stable=100.0)
    now = 0.0
    delays = []
    for _boot in range(4):
        backoff.started(now)
        now += 5.0  # dies 5 s after each start
        delays.append(backoff.next(now))
        now += delays[-1][1]
    assert delays == [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0)]
    backoff.started(now)
    assert backoff.next(now + 100.0) == (1, 1.0)  # a stable run: from the start again
    assert backoff.next(now + 101.0) == (2, 2.0)  # a failed restart (no start between) counts on


def test_journal_is_private_bounded_and_filtered(tmp_path: Any) -> None:
    root = str(tmp_path)
    for i in range(2 * journal.MAX_EVENTS + 1):
        journal.record(root, "pod1", "started", now=float(i), vm_id="hyper-0000000a")
    path = journal.journal_path(root, "pod1")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
    with open(path, encoding="utf-8") as handle:
        assert len(handle.readlines()) == journal.MAX_EVENTS
    events = journal.read_events(root, "pod1")
    assert len(events) == journal.MAX_EVENTS
    assert events[-1]["time"] == 2 * journal.MAX_EVENTS
    assert [e["time"] for e in journal.read_events(root, "pod1", since=398.0)] == [399.0, 400.0]
    assert journal.read_events(root, "other") == []


def test_journal_skips_lines_that_do_not_parse_and_bounds_text(tmp_path: Any) -> None:
    root = str(tmp_path)
    entry = journal.record(root, "pod1", "crashed", now=1.0, reason="x" * 10000, attempt=2)
    assert len(entry["reason"]) == journal.MAX_TEXT
    with open(journal.journal_path(root, "pod1"), "a", encoding="utf-8") as handle:
        handle.write('not json\n[1]\n{"time": 2, "event": "evil"}\n' + "x" * 10000 + "\n")
    assert [e["event"] for e in journal.read_events(root, "pod1")] == ["crashed"]
    with pytest.raises(ValueError, match="unknown event"):
        journal.record(root, "pod1", "bogus")
    with pytest.raises(SpecError):
        journal.record(root, "../etc", "started")


def test_desired_state(tmp_path: Any) -> None:
    root = str(tmp_path)
    assert read_desired(root, "hyper-0000000a") is None
    write_desired(root, "hyper-0000000a", "running")
    assert read_desired(root, "hyper-0000000a") == "running"
    write_desired(root, "hyper-0000000a", "stopped")
    assert read_desired(root, "hyper-0000000a") == "stopped"
    forget_desired(root, "hyper-0000000a")
    assert read_desired(root, "hyper-0000000a") is None
    assert read_desired(root, "../../etc/passwd") is None
    with pytest.raises(ValueError):
        write_desired(root, "hyper-0000000a", "paused")


def test_running_pid_needs_a_live_service(tmp_path: Any) -> None:
    root = str(tmp_path)
    assert running_pid(root) is None
    os.makedirs(os.path.join(root, "hostd"))
    with open(os.path.join(root, "hostd", "hyper-hostd.pid"), "w", encoding="ascii") as handle:
        handle.write(f"{os.getpid()}\n")  # alive, but pytest, not the service
    assert running_pid(root) is None


@pytest.mark.parametrize(("value", "since"), [(None, 0.0), (0, 0.0), (12.5, 12.5), ("7", 7.0)])
def test_since(value: object, since: float) -> None:
    assert check_since(value) == since


@pytest.mark.parametrize("value", ["yesterday", -1, [1]])
def test_bad_since(value: object) -> None:
    with pytest.raises(SpecError, match="since"):
        check_since(value)


# -- the options in the stored spec and the plan ------------------------------------------------


def _stored(**params: Any) -> dict[str, Any]:
    spec, _user_set = normalise_pod({"name": "pod1", **params})
    return spec.to_stored(accelerator="tcg", guest={"image": "default", "kernel": "/k", "initrd": "/i", "initrd_sha256": None}, digests={})


def test_defaults_are_stored() -> None:
    stored = _stored()
    assert (stored["restart_policy"], stored["autostart"]) == ("never", False)
    assert StoredPod.from_json(stored).to_json() == stored


def test_a_pod_from_before_the_options_keeps_its_stored_form() -> None:
    old = {k: v for k, v in _stored().items() if k not in ("restart_policy", "autostart")}
    pod = StoredPod.from_json(old)
    assert (pod.restart_policy, pod.autostart) == (None, None)
    assert pod.to_json() == old


@pytest.mark.parametrize(("option", "value"), [("restart_policy", "sometimes"), ("restart_policy", 1), ("autostart", "yes")])
def test_bad_options_name_the_option(option: str, value: object) -> None:
    with pytest.raises(SpecError, match=option):
        normalise_pod({"name": "pod1", option: value})


@pytest.mark.parametrize(
    ("params", "running", "state", "actions"),
    [
        ({"restart_policy": "always"}, True, "started", ["update_restart"]),
        ({"autostart": True}, False, "present", ["update_restart"]),
        ({"restart_policy": "never"}, True, "started", []),
        ({"restart_policy": "on-failure", "autostart": True}, True, "stopped", ["update_restart", "stop"]),
        ({"restart_policy": "always", "memory": 256}, True, "started", ["recreate", "start"]),
    ],
)
def test_a_change_is_an_in_place_update(params: dict[str, Any], running: bool, state: str, actions: list[str]) -> None:
    current = CurrentPod("hyper-0000000a", "u", _stored(), "running" if running else "stopped", running)
    desired = _stored(**params)
    _spec, user_set = normalise_pod({"name": "pod1", **params})
    assert plan_pod(desired, user_set, current, state).actions == actions


def test_setting_the_policy_on_a_pod_from_before_is_an_update() -> None:
    old = {k: v for k, v in _stored().items() if k not in ("restart_policy", "autostart")}
    current = CurrentPod("hyper-0000000a", "u", old, "running", True)
    _spec, user_set = normalise_pod({"name": "pod1", "restart_policy": "always"})
    assert plan_pod(_stored(restart_policy="always"), user_set, current, "started").actions == ["update_restart"]
    _spec, none_set = normalise_pod({"name": "pod1"})
    assert plan_pod(_stored(), none_set, current, "started").actions == []
