# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Action plugin of hyper_service: renders the haproxy configuration with Jinja2 on the controller.

The final service list depends on what the pod has (``state=absent`` or ``purge=false`` keep or
drop services the task does not list), so unless the task lists every service (``purge=true``,
``state=present``) the module is called once to read it. The configuration is rendered from
that list and sent with the list's hash; the module refuses it if the pod's services changed
in between.
"""

from __future__ import annotations

from typing import Any, Optional

from ansible.plugins.action import ActionBase

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import SpecError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.service.plan import services_hash
from ansible_collections.hyper.pods.plugins.module_utils._hyper.service.spec import check_state, final_services, normalise_services
from ansible_collections.hyper.pods.plugins.plugin_utils._adapter import action_failure, refuse_internal
from ansible_collections.hyper.pods.plugins.plugin_utils._service_render import RenderError, render_services

MODULE = "hyper.pods.hyper_service"
# Options only this plugin sets.
INTERNAL_OPTIONS = ("config", "services_hash")
TRUE = (True, "yes", "true", "True", "on", "1")


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp: Optional[str] = None, task_vars: Optional[dict[str, Any]] = None) -> dict[str, Any]:
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        args = dict(self._task.args)
        refused = refuse_internal(args, INTERNAL_OPTIONS, "hyper_service", "use template to shape the configuration")
        if refused:
            result.update(failed=True, msg=refused)
            return result
        template = args.pop("template", None)
        try:
            state = check_state(args.get("state"))
            if state == "present" and args.get("purge") in TRUE:
                # Every service is listed: the final list needs nothing from the pod.
                services: list[dict[str, Any]] = final_services([], normalise_services(args.get("services"), state), state, True)
            else:
                first = self._execute_module(module_name=MODULE, module_args=args, task_vars=task_vars)
                if first.get("failed"):
                    result.update(first)
                    return result
                services = list(first.get("services") or [])
            config = render_services(self, template, services, task_vars, args.get("pod"), str(args.get("container") or "haproxy"))
        except (SpecError, RenderError) as err:
            return action_failure(result, err)
        args.update(config=config, services_hash=services_hash(services))
        result.update(self._execute_module(module_name=MODULE, module_args=args, task_vars=task_vars))
        return result
