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

import os
from typing import Any, Optional

from ansible.errors import AnsibleError
from ansible.plugins.action import ActionBase

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import SpecError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.service_plan import services_hash
from ansible_collections.hyper.pods.plugins.module_utils._hyper.service_spec import check_state, final_services, normalise_services

try:
    from ansible.template import trust_as_template
except ImportError:  # ansible-core < 2.19 templates any string

    def trust_as_template(value: Any) -> Any:  # type: ignore[misc]
        return value


MODULE = "hyper.pods.hyper_service"
DEFAULT_TEMPLATE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "templates", "haproxy.cfg.j2")
# Options only this plugin sets.
INTERNAL_OPTIONS = ("config", "services_hash")


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp: Optional[str] = None, task_vars: Optional[dict[str, Any]] = None) -> dict[str, Any]:
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        args = dict(self._task.args)
        for option in INTERNAL_OPTIONS:
            if args.get(option) is not None:
                result.update(failed=True, msg=f"option {option} is set by the hyper_service action plugin; use template to shape the configuration")
                return result
        template = args.pop("template", None)
        try:
            path = DEFAULT_TEMPLATE if template is None else self._find_needle("templates", str(template))
            with open(path, encoding="utf-8") as handle:
                source = handle.read()
        except (AnsibleError, OSError) as err:
            result.update(failed=True, msg=f"option template={template!r}: cannot read it: {err}")
            return result

        try:
            state = check_state(args.get("state"))
            if state == "present" and args.get("purge") in (True, "yes", "true", "True"):
                # Every service is listed: the final list needs nothing from the pod.
                services: list[dict[str, Any]] = final_services([], normalise_services(args.get("services"), state), state, True)
            else:
                first = self._execute_module(module_name=MODULE, module_args=args, task_vars=task_vars)
                if first.get("failed"):
                    result.update(first)
                    return result
                services = list(first.get("services") or [])
        except SpecError as err:
            result.update(failed=True, msg=err.message, option=err.option)
            return result

        variables = dict(task_vars)
        variables.update(
            services=services,
            hyper_service={"pod": args.get("pod"), "container": args.get("container") or "haproxy"},
            ansible_managed=task_vars.get("ansible_managed") or "Ansible managed",
        )
        try:
            templar = self._templar.copy_with_new_env(searchpath=[os.path.dirname(path)], available_variables=variables)
            config = templar.template(trust_as_template(source), escape_backslashes=False)
        except AnsibleError as err:
            result.update(failed=True, msg=f"option template={template or DEFAULT_TEMPLATE!r}: rendering failed: {err}")
            return result
        args.update(config=str(config if config is not None else ""), services_hash=services_hash(services))
        result.update(self._execute_module(module_name=MODULE, module_args=args, task_vars=task_vars))
        return result
