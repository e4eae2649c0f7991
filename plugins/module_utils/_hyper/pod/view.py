# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""The ``pod`` dict both pod modules return, and pod_info: the hyper_pod_info module's one call.

Run state comes from libvirt, the spec from the domain metadata, container state from the guest
(one ``hyper-container status`` through the agent) while the VM runs.
"""

from __future__ import annotations

import contextlib
from typing import Any, Mapping, Optional

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import HyperError, SpecError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.host.info import DEFAULT_ROOT
from ansible_collections.hyper.pods.plugins.module_utils._hyper.network.networks import network_view, static_view
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.boot import PodRuntime
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.health import container_health
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.names import check_pod_name
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.plan import Plan
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.session import PodSession
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.store import CurrentPod, FoundPod
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.stored import StoredContainer, StoredPod
from ansible_collections.hyper.pods.plugins.module_utils._hyper.storage.scratch import scratch_usage
from ansible_collections.hyper.pods.plugins.module_utils._hyper.virt.client import DEFAULT_URI

MAX_LOG_LINES = 10000


def _container_view(container: StoredContainer, status: Optional[Mapping[str, Any]], pod_running: bool) -> dict[str, Any]:
    """One container: what the spec says, and what the guest reports (``unknown`` when it cannot be asked)."""
    if not pod_running:
        state = "stopped"
    elif status is None:
        state = "unknown"
    else:
        state = str(status.get("status") or "unknown")
    live = status or {}
    return {
        "name": container.name,
        "image": container.image,
        "digest": container.digest,
        "restart_policy": container.restart_policy,
        "state": state,
        "pid": live.get("pid") if pod_running else None,
        "exit_code": live.get("exit_code"),
        "restarts": live.get("restarts") or 0,
        **container.options.view(),
        "health": container_health(container, live, pod_running and status is not None),
    }


def _view(pod: StoredPod, vm_id: Optional[str], uuid: Optional[str], state: str, running: bool) -> dict[str, Any]:
    return {
        "name": pod.name,
        "vm_id": vm_id,
        "uuid": uuid,
        "state": state,
        "vcpus": pod.vcpus,
        "memory": pod.memory,
        "hostname": pod.hostname,
        "accelerator": pod.accelerator,
        "guest_image": pod.guest.image,
        "labels": dict(pod.labels),
        "containers": [],
        "volumes": [v.to_json() for v in pod.volumes],
        **network_view(pod),
    }


def pod_view(session: PodSession, found: Optional[FoundPod], logs: int = 0, since: Optional[float] = None, root: Optional[str] = None) -> dict[str, Any]:
    """The ``pod`` dict of a pod as it is now; ``logs`` > 0 adds that many last log lines per container (after ``since``).

    With the state ``root``, ``scratch`` tells the scratch disk's size and what it takes on the host.
    """
    if found is None:
        return {}
    current = found.current
    pod = current.pod
    view = _view(pod, current.vm_id, current.uuid, current.state, current.running)
    if root is not None and current.vm_id:
        view["scratch"] = scratch_usage(root, current.vm_id)
    statuses: Optional[Mapping[str, Any]] = None
    tails: dict[str, str] = {}
    runtime = PodRuntime(session)
    if current.running and pod.containers:
        statuses, tails = runtime.status(found.dom, current.vm_id, logs, [c.name for c in pod.containers], since)
    if current.running and view["networks"]:
        with contextlib.suppress(HyperError):  # an agent that does not answer: addresses unknown, as container states
            view["addresses"] = session.make_network(session.client).addresses(runtime.agent(found.dom, current.vm_id), current.vm_id, pod)
    for container in pod.containers:
        status = statuses.get(container.name) if statuses is not None else None
        item = _container_view(container, status if statuses is not None else None, current.running)
        if statuses is not None and status is None:
            item["state"] = "missing"  # the guest does not know it (not started since the VM booted)
        if logs > 0:
            item["logs"] = tails.get(container.name, "").splitlines()
        view["containers"].append(item)
    return view


def predicted_view(plan: Plan, current: Optional[CurrentPod]) -> dict[str, Any]:
    """The ``pod`` dict the plan leads to, for check mode (no guest is asked; container states are predicted)."""
    state = str(plan.after.get("state"))
    if state == "absent":
        return {}
    pod = StoredPod.from_json(plan.spec)
    keep_vm = current is not None and not plan.new_vm
    view = _view(pod, current.vm_id if keep_vm and current else None, current.uuid if keep_vm and current else None, state, state == "running")
    view["addresses"] = static_view(pod) if state == "running" else []
    container_state = "running" if state == "running" else "stopped"
    for container in pod.containers:
        view["containers"].append(_container_view(container, {"status": container_state}, state == "running"))
    return view


def pod_info(params: Mapping[str, Any], check_mode: bool = False, session: Optional[PodSession] = None) -> dict[str, Any]:
    """``{"pods": [...], "exists": bool when a name was given}``; never changes anything."""
    name = params.get("name")
    if name is not None:
        check_pod_name(name)
    labels = params.get("labels") or {}
    if not isinstance(labels, Mapping) or not all(isinstance(v, str) for v in labels.values()):
        raise SpecError("labels", labels, "must be a mapping of strings to strings")
    logs = int(params.get("logs") or 0)
    since = float(params["since"]) if params.get("since") else None
    if not 0 <= logs <= MAX_LOG_LINES:
        raise SpecError("logs", logs, f"must be between 0 and {MAX_LOG_LINES}")
    task = session or PodSession(str(params.get("uri") or DEFAULT_URI))
    with task:
        pods = []
        for found in task.pods():
            pod = found.current.pod
            if name is not None and pod.name != name:
                continue
            if any(dict(pod.labels).get(key) != value for key, value in labels.items()):
                continue
            pods.append(pod_view(task, found, logs, since, str(params.get("root") or DEFAULT_ROOT)))
    result: dict[str, Any] = {"changed": False, "pods": pods}
    if name is not None:
        result["exists"] = bool(pods)
    return result
