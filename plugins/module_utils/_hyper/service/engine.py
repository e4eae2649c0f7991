# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""ensure_services: the hyper_service module's one call. Spec → state file → plan (pure) → apply with rollback.

The haproxy configuration is rendered on the controller (action plugin ``hyper_service``) from the
final service list; without it (``config`` None) the module only reports that list, which the
action plugin renders and sends back with its hash.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import HyperError, SpecError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.agent import GuestAgent
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.layout import check_container_name as check_name
from ansible_collections.hyper.pods.plugins.module_utils._hyper.host.info import DEFAULT_ROOT
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.config_disk import Services, update_services
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.names import check_pod_name
from ansible_collections.hyper.pods.plugins.module_utils._hyper.service.haproxy import DEFAULT_RELOAD_TIMEOUT, HaproxyGuest, ServiceGuestApi
from ansible_collections.hyper.pods.plugins.module_utils._hyper.service.plan import ServicePlan, plan_services, services_hash
from ansible_collections.hyper.pods.plugins.module_utils._hyper.service.spec import check_state, final_services, normalise_services, vip_prefix
from ansible_collections.hyper.pods.plugins.module_utils._hyper.session import Session
from ansible_collections.hyper.pods.plugins.module_utils._hyper.virt.client import DEFAULT_URI

DEFAULT_CONTAINER = "haproxy"


@dataclass
class ApplyCounts:
    """What an apply did, for the result and the benchmark."""

    vip_operations: int = 0
    reloads: int = 0
    # Seconds the reloads took, from the reload request to the master's answer that it is done.
    reload_seconds: float = 0.0
    rolled_back: list[str] = field(default_factory=list)


def apply_plan(guest: ServiceGuestApi, plan: ServicePlan, counts: Optional[ApplyCounts] = None) -> ApplyCounts:
    """Carry out ``plan.actions``; if validation or the reload fails, put the previous config and VIPs back and raise.

    Order: validate (nothing changed yet) → add new VIPs → install the config → reload → remove old
    VIPs → write the state file. A failed reload leaves haproxy serving the previous configuration
    (the master keeps the old worker), so the rollback only restores the file and the addresses.
    """
    counts = counts or ApplyCounts()
    actions = plan.actions
    if "validate_config" in actions:
        guest.validate(plan.after_config)
    added: list[str] = []
    installed = False
    try:
        if "add_vips" in actions:
            guest.add_vips(plan.vips_add)
            added = list(plan.vips_add)
            counts.vip_operations += len(added)
        if "install_config" in actions:
            guest.install_config()
            installed = True
        if "reload" in actions:
            counts.reloads += 1
            started = time.monotonic()
            guest.reload()
            counts.reload_seconds += time.monotonic() - started
    except HyperError:
        _roll_back(guest, plan, added, installed, counts)
        raise
    if "remove_vips" in actions:
        guest.remove_vips(plan.vips_remove)
        counts.vip_operations += len(plan.vips_remove)
    if "write_state" in actions:
        guest.write_state(plan.state)
    return counts


def _roll_back(guest: ServiceGuestApi, plan: ServicePlan, added: list[str], installed: bool, counts: ApplyCounts) -> None:
    """Best effort: every step is tried, and none hides the error that got us here."""
    if installed:
        with contextlib.suppress(HyperError):
            guest.write_config(plan.before_config)
            counts.rolled_back.append("config")
    else:
        with contextlib.suppress(HyperError):
            guest.discard_candidate()
    if added:
        with contextlib.suppress(HyperError):
            guest.remove_vips(added)
            counts.vip_operations += len(added)
            counts.rolled_back.append("vips")


def run_services(
    guest: ServiceGuestApi,
    params: Mapping[str, Any],
    check_mode: bool,
    diff: bool = False,
    listed: Optional[list[dict[str, Any]]] = None,
    persist: Optional[Callable[[ServicePlan], None]] = None,
) -> dict[str, Any]:
    """Plan and apply against one service container; the module result. ``listed``: the services already normalised.

    ``persist`` keeps the applied services on the host (the pod's config disk), so they survive a guest restart.
    """
    state = check_state(params.get("state"))
    listed = normalise_services(params.get("services"), state) if listed is None else listed
    purge = bool(params.get("purge"))
    config = params.get("config")
    guest.check_running()
    current = guest.read_state()
    services = final_services((current or {}).get("services") or [], listed, state, purge)
    digest = services_hash(services)
    if config is None:
        # First phase of the action plugin: the list it must render.
        return {"changed": False, "services": services, "services_hash": digest}
    if not isinstance(config, str):
        raise SpecError("config", type(config).__name__, "must be the rendered configuration text")
    expected = params.get("services_hash")
    if expected is not None and expected != digest:
        raise HyperError("the pod's services changed while the configuration was rendered (another task?); run the task again")
    plan = plan_services(current, guest.read_config(), services, config)
    result: dict[str, Any] = {
        "changed": plan.changed,
        "actions": list(plan.actions),
        "services": services,
        "services_hash": digest,
        "config_changed": plan.config_changed,
        "reloaded": False,
        "vips_added": plan.vips_add,
        "vips_removed": plan.vips_remove,
    }
    if diff:
        result["diff"] = plan.diff(guest.config_path)
    if check_mode or not plan.changed:
        if persist is not None and not check_mode:
            persist(plan)  # a pod whose host copy predates the config disk gets it now
        return result
    counts = apply_plan(guest, plan)
    if persist is not None:
        persist(plan)
    result["reloaded"] = counts.reloads > 0
    if counts.reloads:
        result["reload_seconds"] = round(counts.reload_seconds, 3)
    return result


def persist_services(root: str, vm_id: str, container: str) -> Callable[[ServicePlan], None]:
    """The ``persist`` of run_services for one pod: its services into its config disk (pod/config_disk.py)."""

    def persist(plan: ServicePlan) -> None:
        update_services(root, vm_id, Services(container, plan.after_config, dict(plan.state), tuple(vip_prefix(v) for v in plan.after_vips)))

    return persist


def default_guest(agent: GuestAgent, container: str, reload_timeout: float) -> ServiceGuestApi:
    return HaproxyGuest(agent, container, reload_timeout=reload_timeout)


@dataclass
class ServiceSession(Session):
    """A session that also makes the client of a pod's service container; tests replace it with a fake."""

    make_guest: Callable[[GuestAgent, str, float], ServiceGuestApi] = default_guest


def ensure_services(params: Mapping[str, Any], check_mode: bool, diff: bool = False, session: Optional[ServiceSession] = None) -> dict[str, Any]:
    """The hyper_service module's one call: find the running pod, then ``run_services`` on its haproxy container."""
    pod = check_pod_name(params.get("pod"), "pod")
    container = check_name(params.get("container") or DEFAULT_CONTAINER)
    timeout = params.get("timeout")
    timeout = DEFAULT_RELOAD_TIMEOUT if timeout is None else timeout
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
        raise SpecError("timeout", timeout, "must be a number of seconds above 0")
    # Checked before the pod is looked up: bad input fails the same whatever the host holds.
    listed = normalise_services(params.get("services"), check_state(params.get("state")))
    task = session or ServiceSession(str(params.get("uri") or DEFAULT_URI))
    with task:
        found = task.running(pod)
        agent = task.pod_agent(found)
        started = time.monotonic()
        persist = persist_services(str(params.get("root") or DEFAULT_ROOT), found.current.vm_id, container)
        result = run_services(task.make_guest(agent, container, float(timeout)), params, check_mode, diff, listed, persist)
        result["duration"] = round(time.monotonic() - started, 3)
    return result
