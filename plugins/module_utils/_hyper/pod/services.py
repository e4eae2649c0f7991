# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""hyper_pod with ``services``: the pod (with its haproxy container added), then its services, in one task.

The pod goes through ``ensure_pod`` unchanged; the services then go through the same
``run_services`` as hyper_service, with the listed services as the whole list (purge).
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import HyperError, SpecError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.layout import check_container_name
from ansible_collections.hyper.pods.plugins.module_utils._hyper.host.info import DEFAULT_ROOT
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.engine import ensure_pod
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.names import check_pod_name
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.service_container import ADD_PARAM
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.session import PodSession
from ansible_collections.hyper.pods.plugins.module_utils._hyper.service.engine import DEFAULT_CONTAINER, ensure_services, persist_services, run_services
from ansible_collections.hyper.pods.plugins.module_utils._hyper.service.haproxy import CONFIG_PATH, DEFAULT_RELOAD_TIMEOUT
from ansible_collections.hyper.pods.plugins.module_utils._hyper.service.plan import plan_services, services_hash
from ansible_collections.hyper.pods.plugins.module_utils._hyper.service.spec import check_state, final_services, normalise_services
from ansible_collections.hyper.pods.plugins.module_utils._hyper.virt.client import DEFAULT_URI

# Where the haproxy_image role puts its image by default.
DEFAULT_SERVICE_IMAGE = "oci:/var/lib/hyper/local-images/oci:haproxy"


def with_service_container(params: Mapping[str, Any]) -> dict[str, Any]:
    """The pod's containers plus the haproxy container, unless one called ``haproxy`` is listed (or containers are not given)."""
    containers = params.get("containers")
    if params.get("services") is None or containers is None:
        return dict(params)
    if any(isinstance(c, Mapping) and c.get("name") == DEFAULT_CONTAINER for c in containers):
        return dict(params)
    image = params.get("service_image") or DEFAULT_SERVICE_IMAGE
    return {**params, "containers": [*containers, {"name": DEFAULT_CONTAINER, "image": image}]}


def ensure_pod_with_services(params: Mapping[str, Any], check_mode: bool, diff: bool = False, session: Optional[PodSession] = None) -> dict[str, Any]:
    """hyper_pod's one call: ``ensure_pod``, then, with ``services`` and a running pod, the pod's services.

    One session serves both: libvirt is opened once and the pods are listed once.
    """
    task = session or PodSession(str(params.get("uri") or DEFAULT_URI))
    with task:
        if params.get("services") is None:
            return ensure_pod(params, check_mode, diff, task)
        listed = final_services([], normalise_services(params["services"], "present"), "present", True)  # SpecError before any change
        params = with_service_container(params)
        result = ensure_pod(params, check_mode, diff, task)
        state = str(params.get("state") or "started")
        if state in ("absent", "stopped"):
            return result
        result["services"] = listed
        result["services_applied"] = False
        new_vm = any(action in ("create", "recreate") for action in result.get("actions") or [])
        if check_mode and new_vm:
            return result  # nothing to read yet: the services go into the new VM's fresh haproxy container
        if params.get("service_config") is None:
            raise SpecError("services", [s["name"] for s in listed], "need the hyper_pod action plugin to render the haproxy configuration")
        found = task.find(str(params["name"]))
        if found is None or not found.current.running:
            return result  # a pod that does not run gets its services once started
        guest = task.make_guest(task.pod_agent(found), DEFAULT_CONTAINER, DEFAULT_RELOAD_TIMEOUT)
        services = {"services": params["services"], "state": "present", "purge": True}
        persist = persist_services(str(params.get("root") or DEFAULT_ROOT), found.current.vm_id, DEFAULT_CONTAINER)
        out = run_services(
            guest, {**services, "config": params["service_config"], "services_hash": params.get("services_hash")}, check_mode, listed=listed, persist=persist
        )
    result.update(services=out["services"], services_applied=not check_mode, service_actions=out["actions"])
    result["changed"] = bool(result.get("changed")) or bool(out["changed"])
    return result


def ensure_service_on_pod(params: Mapping[str, Any], check_mode: bool, diff: bool = False, session: Optional[PodSession] = None) -> dict[str, Any]:
    """hyper_service's one call: ``ensure_services``; a running pod without its service container gets it first, in place.

    The container is added as one container change (pod/inplace.py; the other containers keep running) and
    marked in the stored spec, so that the pod's own hyper_pod task keeps it (pod/service_container.py).
    Before the configuration is rendered (no ``config``) and in check mode nothing is added: the services
    are planned against an empty haproxy container.
    """
    pod = check_pod_name(params.get("pod"), "pod")
    container = check_container_name(params.get("container") or DEFAULT_CONTAINER, "container")
    state = check_state(params.get("state"))
    listed = normalise_services(params.get("services"), state)  # SpecError before the pod is looked up
    task = session or PodSession(str(params.get("uri") or DEFAULT_URI))
    with task:
        found = task.running(pod)
        if found.current.pod.container(container) is not None:
            return ensure_services(params, check_mode, diff, task)
        services = final_services([], listed, state, bool(params.get("purge")))
        digest = services_hash(services)
        if state == "absent":  # nothing to remove from a pod without services
            return {"changed": False, "actions": [], "services": services, "services_hash": digest, "container_added": False}
        config = params.get("config")
        if config is None:  # the action plugin's first phase: the list to render
            return {"changed": False, "services": services, "services_hash": digest}
        if not isinstance(config, str):
            raise SpecError("config", type(config).__name__, "must be the rendered configuration text")
        if params.get("services_hash") not in (None, digest):
            raise HyperError("the pod's services changed while the configuration was rendered (another task?); run the task again")
        image = params.get("service_image") or DEFAULT_SERVICE_IMAGE
        request = {"name": pod, "root": params.get("root"), "uri": params.get("uri"), "state": "present", ADD_PARAM: {"name": container, "image": image}}
        if check_mode:
            pod_result = ensure_pod(request, True, False, task)
            plan = plan_services(None, "", services, config)
            result: dict[str, Any] = {
                "changed": True,
                "actions": [*pod_result["actions"], *plan.actions],
                "services": services,
                "services_hash": digest,
                "config_changed": plan.config_changed,
                "reloaded": False,
                "vips_added": plan.vips_add,
                "vips_removed": plan.vips_remove,
                "container_added": True,
            }
            if diff:
                result["diff"] = plan.diff(CONFIG_PATH)
            return result
        pod_result = ensure_pod(request, False, False, task)
        task.forget()
        result = ensure_services(params, False, diff, task)
    result.update(changed=True, actions=[*pod_result["actions"], *result.get("actions", [])], container_added=True)
    if pod_result.get("recreate_reasons"):
        result["recreate_reasons"] = pod_result["recreate_reasons"]
    return result
