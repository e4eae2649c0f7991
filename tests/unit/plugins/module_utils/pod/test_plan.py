# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""plan_pod: a table of (current pod, what changed, state, recreate) → actions, plus the diff it returns."""

from __future__ import annotations

import copy
from typing import Any, Optional

import pytest

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import SpecError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.plan import MASK, MASK_CHANGED, masked_diff, plan_pod
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.store import CurrentPod

STORED: dict[str, Any] = {
    "name": "pod1",
    "hostname": "pod1",
    "vcpus": 1,
    "memory": 128,
    "accelerator": "tcg",
    "guest": {"image": "default", "kernel": "/k", "initrd": "/i", "initrd_sha256": "aa"},
    "kernel_args": "",
    "labels": {"team": "a"},
    "containers": [{"name": "web", "image": "busybox", "digest": "sha256:1", "command": None}],
}
ALL = frozenset(STORED) - {"name"}


def current(running: bool = True, **changes: Any) -> CurrentPod:
    spec = copy.deepcopy(STORED)
    spec.update(changes)
    return CurrentPod("hyper-00000001", "uuid-1", spec, "running" if running else "stopped", running)


def desired(**changes: Any) -> dict[str, Any]:
    spec = copy.deepcopy(STORED)
    spec.update(changes)
    return spec


NEW_WEB = [{"name": "web", "image": "busybox", "digest": "sha256:2", "command": None}]

CASES = [
    # (id, current, desired changes, user_set, state, recreate, actions)
    ("new started", None, {}, ALL, "started", False, ["create", "start"]),
    ("new restarted", None, {}, ALL, "restarted", False, ["create", "start"]),
    ("new present", None, {}, ALL, "present", False, ["create"]),
    ("new stopped", None, {}, ALL, "stopped", False, ["create"]),
    ("new absent", None, {}, ALL, "absent", False, []),
    ("running started same", current(), {}, ALL, "started", False, []),
    ("stopped started same", current(False), {}, ALL, "started", False, ["start"]),
    ("running stopped", current(), {}, ALL, "stopped", False, ["stop"]),
    ("stopped stopped", current(False), {}, ALL, "stopped", False, []),
    ("running present", current(), {}, ALL, "present", False, []),
    ("stopped present", current(False), {}, ALL, "present", False, []),
    ("running restarted", current(), {}, ALL, "restarted", False, ["restart"]),
    ("stopped restarted", current(False), {}, ALL, "restarted", False, ["start"]),
    ("running absent", current(), {}, ALL, "absent", False, ["remove"]),
    ("stopped absent", current(False), {}, ALL, "absent", False, ["remove"]),
    ("absent ignores recreate", current(), {}, ALL, "absent", True, ["remove"]),
    ("memory", current(), {"memory": 256}, ALL, "started", False, ["recreate", "start"]),
    ("vcpus", current(), {"vcpus": 2}, ALL, "started", False, ["recreate", "start"]),
    ("hostname", current(), {"hostname": "www"}, ALL, "started", False, ["recreate", "start"]),
    ("kernel_args", current(), {"kernel_args": "debug"}, ALL, "started", False, ["recreate", "start"]),
    ("accelerator", current(), {"accelerator": "kvm"}, ALL, "started", False, ["recreate", "start"]),
    ("guest rebuilt", current(), {"guest": {**STORED["guest"], "initrd_sha256": "bb"}}, ALL, "started", False, ["recreate", "start"]),
    ("image digest", current(), {"containers": NEW_WEB}, ALL, "started", False, ["recreate", "start"]),
    ("memory while stopped", current(False), {"memory": 256}, ALL, "stopped", False, ["recreate"]),
    ("memory, present keeps running", current(), {"memory": 256}, ALL, "present", False, ["recreate", "start"]),
    ("memory, present keeps stopped", current(False), {"memory": 256}, ALL, "present", False, ["recreate"]),
    ("memory, restarted", current(), {"memory": 256}, ALL, "restarted", False, ["recreate", "start"]),
    ("forced recreate", current(), {}, ALL, "started", True, ["recreate", "start"]),
    ("forced recreate stopped", current(), {}, ALL, "stopped", True, ["recreate"]),
    ("labels only", current(), {"labels": {"team": "b"}}, ALL, "started", False, ["update_labels"]),
    ("labels and stop", current(), {"labels": {}}, ALL, "stopped", False, ["update_labels", "stop"]),
    ("labels with memory", current(), {"labels": {}, "memory": 256}, ALL, "started", False, ["recreate", "start"]),
    ("memory not set", current(), {"memory": 256}, ALL - {"memory"}, "started", False, []),
    ("containers not set", current(), {"containers": []}, frozenset({"memory"}), "started", False, []),
    ("nothing set", current(), {"memory": 999, "labels": {}, "hostname": "x"}, frozenset(), "started", False, []),
    ("accelerator auto", current(), {"accelerator": "kvm"}, ALL - {"accelerator"}, "started", False, []),
]


@pytest.mark.parametrize(("current_pod", "changes", "user_set", "state", "recreate", "actions"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_actions(current_pod: Optional[CurrentPod], changes: dict[str, Any], user_set: frozenset[str], state: str, recreate: bool, actions: list[str]) -> None:
    plan = plan_pod(desired(**changes), user_set, current_pod, state, recreate)
    assert plan.actions == actions
    assert plan.changed is bool(actions)


def test_diff_of_a_memory_change() -> None:
    plan = plan_pod(desired(memory=256), ALL, current(), "started")
    assert plan.before["memory"] == 128 and plan.after["memory"] == 256
    assert plan.before["state"] == plan.after["state"] == "running"
    assert {k for k in plan.after if plan.after[k] != plan.before[k]} == {"memory"}
    assert plan.differences == ["memory"]


def test_fields_not_set_are_kept_from_the_stored_spec() -> None:
    plan = plan_pod(desired(memory=256, vcpus=4, labels={}), frozenset({"memory"}), current(), "started")
    assert plan.spec["memory"] == 256
    assert plan.spec["vcpus"] == 1
    assert plan.spec["labels"] == {"team": "a"}
    assert plan.spec["containers"] == STORED["containers"]
    assert "state" not in plan.spec


def test_new_pod_diff_and_spec() -> None:
    plan = plan_pod(desired(), ALL, None, "stopped")
    assert plan.before == {"state": "absent"}
    assert plan.after == {**STORED, "state": "stopped"}
    assert plan.new_vm


def test_removal_diff() -> None:
    plan = plan_pod({}, frozenset(), current(False), "absent")
    assert plan.before["state"] == "stopped" and plan.before["memory"] == 128
    assert plan.after == {"state": "absent"}
    assert plan.spec == {}


def test_plan_does_not_touch_its_inputs() -> None:
    want, pod = desired(memory=256), current()
    snapshot = (copy.deepcopy(want), copy.deepcopy(dict(pod.spec)))
    plan = plan_pod(want, ALL, pod, "started")
    plan.after["containers"][0]["name"] = "changed"
    assert (want, dict(pod.spec)) == snapshot


def test_unknown_state_and_fields_are_refused() -> None:
    with pytest.raises(SpecError):
        plan_pod(desired(), ALL, None, "running")
    with pytest.raises(ValueError, match="unknown fields"):
        plan_pod(desired(), frozenset({"colour"}), None, "started")


# -- masked_diff: env values are secrets ------------------------------------------------------------


def _pod(env: Optional[dict[str, str]], state: str = "running", name: str = "web") -> dict[str, Any]:
    return {"name": "pod1", "state": state, "containers": [{"name": name, "image": "busybox", "env": env}]}


@pytest.mark.parametrize(
    ("before", "after", "want_before", "want_after"),
    [
        # create: nothing before
        ({"state": "absent"}, _pod({"TOKEN": "s3cr3t"}), None, {"TOKEN": MASK}),
        # remove: the stored values are in no_log of nobody; masked all the same
        (_pod({"TOKEN": "old"}), {"state": "absent"}, {"TOKEN": MASK}, None),
        # unchanged value, changed value, new key, removed key
        (
            _pod({"SAME": "a", "ROTATED": "old", "GONE": "x"}),
            _pod({"SAME": "a", "ROTATED": "new", "ADDED": "y"}),
            {"SAME": MASK, "ROTATED": MASK, "GONE": MASK},
            {"SAME": MASK, "ROTATED": MASK_CHANGED, "ADDED": MASK},
        ),
        # a container renamed is another container: nothing to compare with
        (_pod({"T": "a"}, name="old"), _pod({"T": "b"}, name="new"), {"T": MASK}, {"T": MASK}),
        # no env at all stays as it is
        (_pod(None), _pod({}), "keep", "keep"),
    ],
)
def test_masked_diff_hides_every_env_value(before: dict[str, Any], after: dict[str, Any], want_before: Any, want_after: Any) -> None:
    original = copy.deepcopy((before, after))
    diff = masked_diff(before, after)
    for side, want, source in (("before", want_before, before), ("after", want_after, after)):
        got = diff[side]
        if want is None:
            assert got == source
        elif want == "keep":
            assert got["containers"][0]["env"] == source["containers"][0]["env"]
        else:
            assert got["containers"][0]["env"] == want
            assert {k: v for k, v in got.items() if k != "containers"} == {k: v for k, v in source.items() if k != "containers"}
    assert (before, after) == original  # the plan's own views are untouched (after is what gets stored)


def test_masked_diff_of_a_real_plan_keeps_everything_but_the_values() -> None:
    old = current(containers=[{"name": "web", "image": "busybox", "digest": "sha256:1", "env": {"TOKEN": "old-secret"}}])
    plan = plan_pod(desired(containers=[{"name": "web", "image": "busybox", "digest": "sha256:1", "env": {"TOKEN": "new-secret"}}]), ALL, old, "started")
    assert plan.actions == ["recreate", "start"]
    diff = masked_diff(plan.before, plan.after)
    assert "secret" not in repr(diff)
    assert diff["after"]["containers"][0] == {"name": "web", "image": "busybox", "digest": "sha256:1", "env": {"TOKEN": MASK_CHANGED}}
    assert plan.after["containers"][0]["env"] == {"TOKEN": "new-secret"}
