# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""plan_pod: pure comparison of the desired pod with the stored one → actions and a before/after diff."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import SpecError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.inplace import ContainerPlan, LiveVm, plan_containers, recreate_reasons
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.spec import FIELD_OPTIONS, STATES
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.store import CurrentPod

# A change to any of these needs a new VM: they are in the domain XML, the kernel command line,
# or the guest's containers, none of which a running guest can take over.
RECREATE_FIELDS = ("accelerator", "containers", "guest", "hostname", "kernel_args", "memory", "vcpus", "volumes", "networks", "dns", "scratch_size", "log_size")
# Only in the metadata: updated in place.
METADATA_FIELDS = ("labels",)
# Host-side only (nftables): updated in place, with the metadata.
PORT_FIELDS = ("ports",)
# The pod restart policy and libvirt autostart: the metadata and the domain's autostart flag, in place.
RESTART_FIELDS = ("restart_policy", "autostart")
ACTIONS = ("create", "recreate", "start", "stop", "restart", "remove", "update_labels", "update_ports", "update_restart", "purge_volumes")
RUNNING = "running"
STOPPED = "stopped"
ABSENT = "absent"


@dataclass(frozen=True)
class Plan:
    actions: list[str]
    before: dict[str, Any]
    after: dict[str, Any]
    changed: bool
    # Stored-spec fields the user set that differ from the stored spec.
    differences: list[str] = field(default_factory=list)
    # The containers changed in the running VM (pod/inplace.py); None when they did not change or a new VM takes them.
    containers: Optional[ContainerPlan] = None
    # Why the plan makes a new VM of an existing pod (the result's recreate_reasons).
    recreate_reasons: list[str] = field(default_factory=list)

    @property
    def spec(self) -> dict[str, Any]:
        """The spec the pod has after the plan (``after`` without ``state``); empty when removed."""
        return {k: v for k, v in self.after.items() if k != "state"}

    @property
    def new_vm(self) -> bool:
        return "create" in self.actions or "recreate" in self.actions


def _view(spec: Mapping[str, Any], state: str) -> dict[str, Any]:
    view = copy.deepcopy(dict(spec))
    view["state"] = state
    return view


def plan_pod(
    desired: Mapping[str, Any],
    user_set: frozenset[str],
    current: Optional[CurrentPod],
    state: str,
    recreate: bool = False,
    live: Optional[LiveVm] = None,
) -> Plan:
    """What to do to bring ``current`` (None: no such pod) to ``desired`` in ``state``.

    ``desired`` is the stored form of the requested spec (``PodSpec.to_stored``); fields not in
    ``user_set`` are taken from the current pod instead of compared. ``recreate`` forces a new VM
    (unless the pod is to be absent). ``restarted`` always restarts, so it always changes.
    ``live`` describes the running VM: a change of the containers alone is then made in it
    (pod/inplace.py) when it can be; without it (or for ``restarted``) a new VM takes them.
    """
    if state not in STATES:
        raise SpecError("state", state, f"must be one of {', '.join(STATES)}")
    unknown = sorted(set(user_set) - set(FIELD_OPTIONS))
    if unknown:
        raise ValueError(f"user_set holds unknown fields {unknown}")
    if state == "absent":
        if current is None:
            return Plan([], {"state": ABSENT}, {"state": ABSENT}, False)
        before = _view(current.spec, RUNNING if current.running else STOPPED)
        return Plan(["remove"], before, {"state": ABSENT}, True)

    want_running = state in ("started", "restarted")
    if current is None:
        return Plan(["create", "start"] if want_running else ["create"], {"state": ABSENT}, _view(desired, RUNNING if want_running else STOPPED), True)

    merged = {key: copy.deepcopy(desired[key] if key in user_set and key in desired else value) for key, value in current.spec.items()}
    for key in user_set:
        merged.setdefault(key, copy.deepcopy(desired.get(key)))
    differences = sorted(key for key in user_set if desired.get(key) != current.spec.get(key))
    needs_vm = recreate or any(key in RECREATE_FIELDS for key in differences)
    # present keeps the run state of an existing pod; a new VM then runs if the old one did.
    run_after = want_running or (state == "present" and current.running)
    containers: Optional[ContainerPlan] = None
    if not recreate and [key for key in differences if key in RECREATE_FIELDS] == ["containers"]:
        in_vm = live if current.running and run_after and state != "restarted" else None
        containers = plan_containers(current.spec, merged, in_vm)
        needs_vm = not containers.in_place
    reasons = recreate_reasons([k for k in differences if k in RECREATE_FIELDS], recreate, containers) if needs_vm else []

    actions: list[str] = []
    if needs_vm:
        actions.append("recreate")
        if run_after:
            actions.append("start")
    else:
        if containers is not None:
            actions += containers.actions
        if any(key in METADATA_FIELDS for key in differences):
            actions.append("update_labels")
        if any(key in PORT_FIELDS for key in differences):
            actions.append("update_ports")
        if any(key in RESTART_FIELDS for key in differences):
            actions.append("update_restart")
        if state == "restarted":
            actions.append("restart" if current.running else "start")
        elif state == "started" and not current.running:
            actions.append("start")
        elif state == "stopped" and current.running:
            actions.append("stop")
    before = _view(current.spec, RUNNING if current.running else STOPPED)
    after = _view(merged, RUNNING if run_after else STOPPED)
    return Plan(actions, before, after, bool(actions), differences, None if needs_vm else containers, reasons)


# env values are secrets (the module declares env no_log). Ansible masks only this run's values, so
# the stored ones in ``before`` (a secret being replaced, a pod being removed) would show in clear.
MASK = "********"
MASK_CHANGED = "******** (changed)"


def masked_diff(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The diff with every container env value masked; an after value that differs says so, without showing either."""
    old_env = {str(c.get("name")): dict(c.get("env") or {}) for c in before.get("containers") or [] if isinstance(c, Mapping)}

    def masked(view: Mapping[str, Any], compare: bool) -> dict[str, Any]:
        out = copy.deepcopy(dict(view))
        for container in out.get("containers") or []:
            if isinstance(container, dict) and isinstance(container.get("env"), Mapping):
                old = old_env.get(str(container.get("name")), {})
                container["env"] = {key: MASK_CHANGED if compare and key in old and old[key] != value else MASK for key, value in container["env"].items()}
        return out

    return {"before": masked(before, False), "after": masked(after, True)}
